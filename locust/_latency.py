"""Latency at the resolution it happens: an HDR histogram in microseconds, mergeable.

Locust's own statistics round response times to whole milliseconds (two significant
digits above 100 ms), so a sub-millisecond endpoint reads p95 = 0 and a gate below 1 ms
can never fail. Every Locust process records each request here in microseconds with
three significant digits (HdrHistogram: values within 0.1% of each other share a
bucket); workers ship the encoded histogram to the master, which adds them up.
Imports nothing from Locust, so it can be tested on its own.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from bisect import bisect_left
from itertools import accumulate

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000  # one hour: anything slower is clamped (and shows as max)
SIGNIFICANT_DIGITS = 3
# A histogram of these settings encodes its counts in a few kB: a payload that inflates
# beyond this is not one of the lab's (a rogue worker's zlib bomb).
MAX_INFLATED = 1 << 20
_EXT = struct.Struct(">II")  # cookie, length of the zlib part
_HEADER = struct.Struct(">IIIIQQd")  # cookie, length, offset, digits, lowest, highest, ratio


def plausible(encoded: str) -> bool:
    """Whether an encoded histogram has this module's settings and a bounded size, checked
    before HdrHistogram allocates what its header asks for."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) < _EXT.size or _EXT.unpack_from(raw)[1] != len(raw) - _EXT.size:
        return False
    inflate = zlib.decompressobj()
    try:
        payload = inflate.decompress(raw[_EXT.size:], MAX_INFLATED)
    except zlib.error:
        return False
    if inflate.unconsumed_tail or len(payload) < _HEADER.size:
        return False
    _, _, _, digits, lowest, highest, _ = _HEADER.unpack_from(payload)
    return (digits, lowest, highest) == (SIGNIFICANT_DIGITS, LOWEST_US, HIGHEST_US)


class Latency:
    """Response times (ms in, ms out) recorded in whole microseconds, and the failures."""

    def __init__(self) -> None:
        self.hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.sum_ms = 0.0  # exact, not the histogram's bucket midpoints
        self.failures = 0

    @property
    def total(self) -> int:
        return int(self.hist.get_total_count())

    @property
    def max_ms(self) -> float:
        return self.hist.get_max_value() / 1000.0 if self.total else 0.0

    @property
    def mean_ms(self) -> float:
        return self.sum_ms / self.total if self.total else 0.0

    def add(self, ms: float, failed: bool = False) -> None:
        us = min(max(round(ms * 1000.0), LOWEST_US), HIGHEST_US)
        self.hist.record_value(us)
        self.sum_ms += ms
        self.failures += failed

    def percentile(self, q: float) -> float:
        """The value at quantile ``q`` (0..1) in ms; 0 when nothing was recorded."""
        if not self.total:
            return 0.0
        return self.hist.get_value_at_percentile(q * 100.0) / 1000.0

    def figures(self) -> dict[str, float]:
        return {"p50": self.percentile(0.5), "p95": self.percentile(0.95),
                "p99": self.percentile(0.99), "max": self.max_ms, "mean": self.mean_ms}

    def count_at_or_below(self, bounds_s: tuple[float, ...]) -> list[int]:
        """Cumulative counts at or below each bound (seconds): Prometheus buckets.

        A value sits in a bucket of its equivalent range; the range's top decides, so a
        bound splits at most one HDR bucket (0.1% wide) the wrong way.
        """
        limits = [round(b * 1_000_000) for b in bounds_s]
        within = [0] * (len(limits) + 1)  # per bucket, above the last bound at the end
        for item in self.hist.get_recorded_iterator():
            within[bisect_left(limits, item.value_iterated_to)] += \
                item.count_added_in_this_iter_step
        return list(accumulate(within[:-1]))

    def dump(self) -> dict[str, object]:
        encoded = self.hist.encode() if self.total else b""
        return {"hdr": encoded.decode("ascii"), "sum_ms": self.sum_ms,
                "failures": self.failures}

    def merge(self, data: dict[str, object]) -> None:
        """Add another process's dump; ValueError (nothing added) if it is not one."""
        encoded = str(data.get("hdr") or "")
        sum_ms = data.get("sum_ms") or 0.0
        failures = data.get("failures") or 0
        if not isinstance(sum_ms, (int, float)) or not isinstance(failures, int):
            raise ValueError("not a latency dump")
        if encoded:
            if not plausible(encoded):
                raise ValueError("not a histogram of the lab's settings")
            self.hist.decode_and_add(encoded.encode("ascii"))
        self.sum_ms += float(sum_ms)
        self.failures += failures
