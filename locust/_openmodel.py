"""The open model: requests leave on a fixed schedule, whatever the server's response times.

A closed-model user waits for each answer before the next request, so a slow server
silently receives less load, and the latency it reports leaves out the time requests
would have waited (coordinated omission). Here each Locust process keeps one schedule
of intended send times at its share of the total rate; users are only the pool that
carries the sends. A user takes the next slot, sleeps until its intended time and sends.
When every user is busy, slots fall behind: those sends are counted as late, and each
request's latency is measured from its intended time as well as from its actual send.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from _latency import Latency


@dataclass
class OpenModelStats:
    """What the schedule observed; workers ship these to the master in their reports."""

    intended: Latency = field(default_factory=Latency)  # from the intended send time
    sent: int = 0
    late: int = 0
    dropped: int = 0
    window_s: float = 0.0  # the measured window, set where the figures are reported

    @property
    def send_rate(self) -> float:
        """Sends per second whose intended time fell in the measured window."""
        return self.sent / self.window_s if self.window_s > 0 else 0.0

    def dump(self) -> dict:
        return {"intended": self.intended.dump(), "sent": self.sent, "late": self.late,
                "dropped": self.dropped}

    def merge(self, data: dict) -> None:
        self.intended.merge(data.get("intended", {}))
        self.sent += int(data.get("sent", 0))
        self.late += int(data.get("late", 0))
        self.dropped += int(data.get("dropped", 0))


class Pacer:
    """One process's schedule. Its rate is the total rate times this process's share of the
    users, so master + workers together issue the total whatever the split."""

    def __init__(self) -> None:
        self.next_t: float | None = None
        self.last_rate = 0.0  # the rate of the last slot taken: the schedule's current pace

    def reset(self) -> None:
        self.next_t = None
        self.last_rate = 0.0

    @staticmethod
    def rate(total_rate: float, local_users: int, total_users: int) -> float:
        share = max(local_users, 1) / max(total_users, local_users, 1)
        return total_rate * share

    def take(self, total_rate: float, local_users: int, total_users: int) -> float:
        """Claim the next intended send time (time.perf_counter() seconds)."""
        now = time.perf_counter()
        if self.next_t is None:
            self.next_t = now
        slot = self.next_t
        self.last_rate = self.rate(total_rate, local_users, total_users)
        self.next_t = slot + 1.0 / self.last_rate
        return slot

    def backlog(self, since: float = 0.0, now: float | None = None) -> int:
        """Slots due by ``now`` (from ``since`` on) that no user took: sends never made.

        Counted at the pace of the last slot taken, not from the users running now: when
        the test stops, the users are already gone and the share would read as one user's.
        """
        if self.next_t is None or self.last_rate <= 0:
            return 0
        now = time.perf_counter() if now is None else now
        # Untaken slots lie at next_t + k / rate, k = 0, 1, ...; count those in [since, now].
        first = max(0, math.ceil((since - self.next_t) * self.last_rate - 1e-9))
        last = math.floor((now - self.next_t) * self.last_rate + 1e-9)
        return max(0, last - first + 1)
