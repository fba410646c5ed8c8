"""Load shapes as data: step ramp, spike and soak, each a list of stages.

Kept out of locustfile.py because a file that defines a shape takes over every headless
run. Pick one in the web UI with ``--class-picker``, or headless by loading only it:

    locust -f locust/locustfile.py,locust/shapes.py --class-picker           # web UI
    locust -f locust/locustfile.py,locust/shapes.py --headless StepShape ... # one shape

Stage users are fractions of the peak, ``--shape-peak-users`` (default 20), so one shape
fits a laptop and a cluster alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _add_options(parser: object) -> None:
    parser.add_argument(  # type: ignore[attr-defined]
        "--shape-peak-users", type=int, default=20,
        help="peak users of the step/spike/soak shapes (stages are fractions of it)",
    )


@dataclass(frozen=True)
class Stage:
    """Hold ``share`` × peak users until ``until_s`` seconds into the run; users start (or
    stop) at ``spawn_share_per_s`` × peak per second."""

    until_s: float
    share: float
    spawn_share_per_s: float


class StagedShape(LoadTestShape):
    """Walk through ``stages``; stop after the last one."""

    abstract = True
    stages: ClassVar[tuple[Stage, ...]] = ()

    def peak_users(self) -> int:
        options = self.runner.environment.parsed_options if self.runner else None
        return max(1, int(getattr(options, "shape_peak_users", 20) or 20))

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        peak = self.peak_users()
        for stage in self.stages:
            if elapsed < stage.until_s:
                users = max(1, round(stage.share * peak))
                return users, max(stage.spawn_share_per_s * peak, 1.0)
        return None


class StepShape(StagedShape):
    """A staircase: a quarter of the peak more every 10 s, then hold the peak."""

    abstract = False
    stages = (
        Stage(10, 0.25, 1), Stage(20, 0.5, 1), Stage(30, 0.75, 1), Stage(40, 1.0, 1),
        Stage(60, 1.0, 1),
    )


class SpikeShape(StagedShape):
    """A calm baseline, a sudden burst to the peak, then back: does the service recover?"""

    abstract = False
    stages = (Stage(15, 0.1, 1), Stage(25, 1.0, 10), Stage(45, 0.1, 10))


class SoakShape(StagedShape):
    """A short ramp, then 80% of the peak held for ten minutes."""

    abstract = False
    stages = (Stage(30, 0.8, 0.05), Stage(630, 0.8, 1))
