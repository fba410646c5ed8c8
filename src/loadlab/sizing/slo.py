"""The latency target: ``p95<200ms`` (p50, p95, p99; ms or s; ``<`` or ``<=``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loadlab.errors import UserError

PERCENTILES = ("p50", "p95", "p99")  # what a run records
_SLO = re.compile(r"^\s*(p\d+)\s*(<=|<)\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*$", re.IGNORECASE)


class SloError(UserError, ValueError):
    """A target that cannot be read (one line, exit 2)."""


@dataclass(frozen=True)
class Slo:
    percentile: str  # "p95"
    limit_ms: float
    max_error_rate: float = 0.01

    def __str__(self) -> str:
        return f"{self.percentile} < {self.limit_ms:g} ms"

    def judge(self, latency_ms: float | None, error_rate: float | None) -> bool:
        """Whether one measurement meets the target (no latency measured: it does not)."""
        if latency_ms is None or error_rate is None:
            return False
        return latency_ms <= self.limit_ms and error_rate <= self.max_error_rate


def parse_slo(text: str, max_error_rate: float = 0.01) -> Slo:
    match = _SLO.match(text or "")
    if match is None:
        raise SloError(f"--slo {text!r}: expected PERCENTILE<LIMIT, e.g. \"p95<200ms\"")
    percentile = match[1].lower()
    if percentile not in PERCENTILES:
        raise SloError(f"--slo {text!r}: the percentile is one of {', '.join(PERCENTILES)}")
    limit = float(match[3]) * (1000.0 if match[4].lower() == "s" else 1.0)
    if not 0 < limit <= 600_000:
        raise SloError(f"--slo {text!r}: the limit must be above 0 and at most 600 s")
    if not 0 <= max_error_rate <= 1:
        raise SloError(f"--max-error-rate {max_error_rate:g}: a share of the requests, 0..1")
    return Slo(percentile, limit, max_error_rate)
