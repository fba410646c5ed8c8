"""Real points for ``loadlab size``: one run of a candidate at one arrival rate, on a
service kept running for all of the candidate's points (``runner.kept``), more rounds of a
point on request (``refine``).

A candidate's first point runs on a fresh service with the whole ``--warmup``; its later
points run on the same service, already warm, with ``WARM_SHARE`` of it (Locust still
starts its users and the open model its schedule). Each point's runs are ordinary runs in
their own results directory (``points/NNN-…``, more rounds in ``…-rK``).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from loadlab import stats
from loadlab.runner.kept import KeptRuntime
from loadlab.runner.options import RunSpec
from loadlab.runner.progress import Progress
from loadlab.runner.runtimes import runtime_for
from loadlab.runner.session import Plan, run_cells
from loadlab.runs.record import Run
from loadlab.sizing.candidates import Candidate
from loadlab.sizing.search import Point, judge, window_estimate
from loadlab.sizing.slo import Slo

WARM_SHARE = 0.5  # of --warmup, for a point on a service that has already served


class Sizing(Protocol):
    """What the measurer reads of ``command.SizeSpec``."""

    @property
    def base(self) -> RunSpec: ...
    @property
    def slo(self) -> Slo: ...
    @property
    def rounds(self) -> int: ...
    @property
    def out(self) -> Path: ...
    @property
    def backpressure(self) -> int | None: ...


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Measurer:
    """Real runs of one candidate at one rate; ``close`` stops the kept service."""

    def __init__(self, spec: Sizing, progress: Progress,
                 users_for: Any, runtime: KeptRuntime | None = None) -> None:
        self.spec = spec
        self.runtime = runtime or KeptRuntime(runtime_for("native"))
        self.progress = progress
        self.users_for = users_for
        self.count = 0  # points
        self.runs = 0
        self._last: Candidate | None = None
        self._rounds: dict[tuple[Candidate, float], list[tuple[Run | None, Path]]] = {}

    def run_spec(self, candidate: Candidate, rate: float, warm: bool = False) -> RunSpec:
        base = self.spec.base
        return base.with_(
            worker_class=candidate.worker_class, workers=candidate.workers,
            threads=candidate.threads, db_pool_size=candidate.db_pool_size,
            backpressure=self.spec.backpressure, arrival_rate=round(rate, 2),
            users=self.users_for(rate, self.spec.slo),
            warmup_s=base.warmup_s * WARM_SHARE if warm else base.warmup_s)

    def _one(self, candidate: Candidate, rate: float, where: Path) -> Run | None:
        warm = self._last == candidate and self.runtime.alive()
        self._last = candidate
        outcome = run_cells([self.run_spec(candidate, rate, warm)], where, self.runtime,
                            Plan(max_error_rate=1.0, write_report=False),
                            progress=self.progress)
        self.runs += 1
        if outcome.interrupted:
            raise KeyboardInterrupt
        return outcome.runs[0] if outcome.runs else None

    def __call__(self, candidate: Candidate, rate: float) -> Point:
        self.count += 1
        where = self.spec.out / "points" / (
            f"{self.count:03d}-{_slug(candidate.label())}-{rate:g}")
        done = [(self._one(candidate, rate, where), where)]
        self._rounds[(candidate, rate)] = done
        return point_from(done, rate, self.spec.slo, self.spec.out)

    def refine(self, candidate: Candidate, point: Point, limit: int | None = None
               ) -> Point | None:
        """One more round of ``point`` (None once it has ``limit``, else ``--rounds``)."""
        done = self._rounds.get((candidate, point.rate))
        if done is None or len(done) >= (limit or self.spec.rounds):
            return None
        first = done[0][1]
        where = first.with_name(f"{first.name}-r{len(done) + 1}")
        done.append((self._one(candidate, point.rate, where), where))
        return point_from(done, point.rate, self.spec.slo, self.spec.out)

    def close(self) -> None:
        self.runtime.close()


def _window(run: dict[str, Any]) -> list[tuple[float, float]]:
    series = run.get("series") or {}
    return stats.merge_short(series.get("rps") or [], series.get("seconds") or [])


def point_from(done: list[tuple[Run | None, Path]], rate: float, slo: Slo, out: Path
               ) -> Point:
    """A point from its rounds' runs (a run's own rounds count too)."""
    where = str(done[0][1].relative_to(out)) if done else None
    rounds: list[dict[str, Any]] = []
    for run, _ in done:
        if run is not None:
            rounds += [dict(r) for r in (run.get("rounds") or [run])]
    if not rounds:
        return Point(rate, [], [], [], False, None, "no run", where)
    rps, lat, err, mean_ms, windows = [], [], [], [], []
    for r in rounds:
        if r.get("status") != "ok":
            continue
        figures = r.get("intended_latency_ms") or r.get("latency_ms") or {}
        value = figures.get(slo.percentile)
        if value is None:
            continue
        rps.append(float(r.get("rps") or 0.0))
        lat.append(float(value))
        mean = figures.get("mean") if figures.get("mean") is not None else figures.get("p50")
        if mean is not None:
            mean_ms.append(float(mean))
        requests = int(r.get("requests") or 0)
        err.append(int(r.get("failures") or 0) / requests if requests else 1.0)
        windows.append(_window(r))
    last = next(run for run, _ in reversed(done) if run is not None) if any(
        run is not None for run, _ in done) else None
    verdict: dict[str, Any] = dict(last.get("bottleneck") or {}) if last else {}
    evidence = verdict.get("evidence") if verdict else None
    if last is not None and last.get("status") != "ok":
        evidence = str(last.get("error") or last.get("status"))
    estimate = window_estimate(windows) if rps else None
    if estimate is not None:
        # The spread from the server's per-second samples; the centre from the runs' own
        # throughput (Locust's count over each window): the samples also count the
        # sampler's /healthz probes and cover the window's whole seconds only.
        estimate = replace(estimate, mean=statistics.fmean(rps))
    other = max((float((r.get("machine") or {}).get("other_cores") or 0.0) for r in rounds),
                default=0.0)
    return Point(rate, rps, lat, err, judge(slo, rate, rps, lat, err),
                 verdict.get("resource") if verdict else None, evidence, where,
                 mean_ms=mean_ms, estimate=estimate, other_cores=other)
