"""How a measured effect becomes a verdict: ``holds``, ``does not hold`` or ``inconclusive``.

Every verdict states its effect size with a 95% interval over the rounds: ``holds`` only
when the interval clears the holding threshold, ``does not hold`` when it clears the other
threshold the other way, ``inconclusive`` when it straddles one (or a figure is missing, or
the machine was busy), with the reason and how many rounds would likely decide it.

For judges: ``cell_rounds`` (a cell's rounds), ``same_rounds`` (two cells' rounds paired
by the round they ran in), ``ratio_effect``, ``rps_ratio`` and ``mean_effect`` (an
``Effect`` with its interval), ``decide`` (an effect against its
thresholds -> a ``Decision``), ``all_of`` (several decisions that must all hold),
``verdict`` (a ``Verdict`` from a decision), ``busy_machine`` (why other work leaves it
inconclusive) and the small readers of recorded rounds (``rps_of``, ``other_work``...).
Nothing here knows any particular claim.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from loadlab import stats
from loadlab.runner.rounds import run_rounds
from loadlab.runs.bottleneck import BUSY_CORES as BUSY_CORES  # the claims' modules import it here

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
Runs = dict[str, dict[str, Any]]  # recorded runs by cell name
MAX_MORE_ROUNDS = 50  # beyond this, "more rounds" is not a useful answer


@dataclass(frozen=True)
class Effect:
    """An effect size with its 95% interval over rounds (None: one round, no interval)."""

    name: str
    value: float
    low: float | None
    high: float | None
    rounds: int
    unit: str = "x"
    method: str = ""
    # From per-second samples (loadlab.stats.series_estimate): the observations the
    # interval rests on, its degrees of freedom and what one more round adds. None: the
    # rounds alone (observations = rounds, df = rounds - 1).
    observations: int | None = None
    df: float | None = None
    per_round: float = 1.0

    def text(self) -> str:
        fmt = (lambda v: f"{v:.2f}") if self.unit == "x" else (lambda v: f"{v:.0%}")
        if self.low is None or self.high is None:
            return f"{self.name} {fmt(self.value)} (one round: no interval)"
        over = f"{self.rounds} rounds"
        if self.observations is not None and self.observations != self.rounds:
            over += f" ({self.observations} batch means)"
        return f"{self.name} {fmt(self.value)} [95% {fmt(self.low)}, {fmt(self.high)}] over {over}"


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str
    more_rounds: int | None = None  # extra rounds likely to decide it; None: rounds won't
    toward: str | None = None  # the verdict those rounds would likely give (HOLDS, FAILS)


@dataclass(frozen=True)
class Verdict:
    """One entry of ``claims.json`` (its fields are the file's fields)."""

    id: str
    claim: str
    verdict: str
    evidence: str
    effect: dict[str, Any] | None = None
    reason: str = ""
    more_rounds: int | None = None


def ok(run: dict[str, Any] | None) -> bool:
    return bool(run) and run.get("status") == "ok" and bool(run.get("requests"))  # type: ignore[union-attr]


def cell_rounds(runs: Runs, name: str) -> list[dict[str, Any]]:
    """The rounds of a cell that ran well, in order.

    A run with rounds gives them; results from before rounds existed kept repetitions as
    cells named ``name#0``, ``name#1``: those are read as its rounds.
    """
    if name in runs:
        return [r for r in run_rounds(runs[name]) if ok(r)]
    reps = [r for key, r in sorted(runs.items()) if key.split("#")[0] == name]
    return [r for run in reps for r in run_rounds(run) if ok(r)]


Series = list[list[tuple[float, float]]]  # per round: (value, seconds) per interval


def round_label(run: dict[str, Any], index: int) -> str:
    """Which round of the command a recorded round is: the plan's rounds by their run id's
    ``-rN``, ``--until-decided``'s by the ``more-N/`` directory they were measured in."""
    where = str(run.get("locust_json") or "")
    extra = where.split("/", 1)[0] if where.startswith("more-") else ""
    run_id = str(run.get("run_id") or "")
    tail = run_id.rsplit("-", 1)[-1] if "-" in run_id else ""
    if tail.startswith("r") and tail[1:].isdigit():
        return f"{extra}:{tail}"
    return f"{extra}:#{index}"  # a record without a round's run id: by its place


def same_rounds(base: Sequence[dict[str, Any]], cur: Sequence[dict[str, Any]],
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rounds both cells ran, in the same order: a claim's cells measured in the same
    round of the command (``round_label``) are paired; a round only one side has is not."""
    def labelled(rounds: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(rounds):
            label = round_label(r, i)
            out[label if label not in out else f"{label}#{i}"] = r  # never two in one
        return out

    b, c = labelled(base), labelled(cur)
    both = [k for k in b if k in c]
    return [b[k] for k in both], [c[k] for k in both]


def series_of(runs: Sequence[dict[str, Any]], figure: str = "rps",
              scale: float = 1.0) -> Series | None:
    """Each round's per-second samples of ``figure`` (the record's ``series``), times
    ``scale``, its full intervals only (``loadlab.stats.steady``); None when a round has
    none (records from before they were kept). The estimators want more (two a round
    for ``series_estimate``, two in some round of each cell for ``paired_estimate``)."""
    out: Series = []
    for r in runs:
        s = r.get("series") or {}
        values = [None if v is None else float(v) * scale for v in s.get(figure) or []]
        pairs = stats.steady(values, s.get("seconds") or [])
        if not pairs:
            return None
        out.append(pairs)
    return out


def ceiling_series(runs: Sequence[dict[str, Any]], limit: float) -> Series | None:
    """Per second, the rate a CPU limit allows at the CPU cost of that second's requests
    (limit x requests / CPU seconds); None without CPU samples."""
    out: Series = []
    for r in runs:
        s = r.get("series") or {}
        rates = [None if not (q and c) else limit * float(q) / float(c) for q, c in zip(
            s.get("rps") or [], s.get("cpu_cores") or [], strict=False)]
        pairs = stats.steady(rates, s.get("seconds") or [])
        if not pairs:
            return None
        out.append(pairs)
    return out


def _from_estimate(name: str, e: stats.Estimate, unit: str, log: bool) -> Effect:
    low, high = e.interval()
    tf = math.exp if log else (lambda v: v)
    method = ("ratio of geometric means, " if log else "mean, ") + e.method
    return Effect(name, tf(e.mean), tf(low), tf(high), e.rounds, unit, method,
                  e.observations, round(e.df, 2), e.per_round)


def ratio_effect(name: str, base: Sequence[float], cur: Sequence[float],
                 base_series: Series | None = None,
                 cur_series: Series | None = None, paired: bool = False) -> Effect:
    """cur / base of two cells: from their per-second samples when both sides have them
    in every round (batch means: ``paired``, the two series' rounds matched one to one,
    blocked by round, loadlab.stats.paired_estimate; else two independent estimates,
    loadlab.stats.series_estimate), else from per-round figures (geometric means, Welch
    on the logs)."""
    if base_series is not None and cur_series is not None:
        if paired and len(base_series) == len(cur_series):
            e = stats.paired_estimate(base_series, cur_series)
            if e is not None:
                return _from_estimate(name, e, "x", log=True)
        else:
            a = stats.series_estimate(base_series, log=True)
            b = stats.series_estimate(cur_series, log=True)
            if a is not None and b is not None:
                return _from_estimate(name, stats.difference(a, b), "x", log=True)
    r = stats.ratio_ci(list(base), list(cur))
    rounds = min(len(base), len(cur))
    method = "ratio of geometric means, Welch t on the logs"
    if r is None or rounds < 2:
        value = (statistics.median(cur) / statistics.median(base)
                 if base and cur and statistics.median(base) else math.nan)
        return Effect(name, value, None, None, rounds, method=method)
    return Effect(name, r.ratio, r.low, r.high, rounds, method=method)


def rps_ratio(name: str, base: list[dict[str, Any]], cur: list[dict[str, Any]]) -> Effect:
    """cur's rate / base's, its interval from the rounds' per-second samples, the two
    cells paired by the round they ran in (``same_rounds``)."""
    pb, pc = same_rounds(base, cur)
    sb, sc = (series_of(pb), series_of(pc)) if len(pb) >= 2 else (None, None)
    return ratio_effect(name, rps_of(base), rps_of(cur), sb, sc, paired=True)


def mean_effect(name: str, values: Sequence[float], unit: str = "x",
                series: Series | None = None) -> Effect:
    """A figure measured once per round: its mean with Student's t interval; with its
    per-second samples in every round (``series``), from their batch means."""
    if series is not None:
        e = stats.series_estimate(series)
        if e is not None:
            return _from_estimate(name, e, unit, log=False)
    ci = stats.mean_ci(list(values))
    if ci is None:
        value = values[0] if values else math.nan
        return Effect(name, value, None, None, len(values), unit, "mean, Student t")
    return Effect(name, ci[0], ci[1], ci[2], len(values), unit, "mean, Student t")


def more_rounds(effect: Effect, threshold: float) -> int | None:
    """Rounds likely needed for the interval to clear ``threshold``.

    The half width shrinks as t(n-1)/sqrt(n) with n rounds (the spread staying as seen):
    the first n where it falls below the distance from the effect to the threshold.
    """
    from scipy.stats import t as student_t

    if effect.low is None or effect.high is None:
        return 1 if effect.rounds < 2 else None
    if effect.unit == "x" and min(effect.low, effect.value, threshold) > 0:
        # A ratio's interval is symmetric on the log scale (Welch on the logs).
        half = (math.log(effect.high) - math.log(effect.low)) / 2.0
        distance = abs(math.log(effect.value) - math.log(threshold))
    else:
        half = (effect.high - effect.low) / 2.0
        distance = abs(effect.value - threshold)
    n = effect.rounds
    if distance <= 0 or half <= 0 or n < 2:
        return None
    # Observations (rounds, or batch means) and degrees of freedom now; each round adds
    # per_round of both.
    obs = float(effect.observations if effect.observations is not None else n)
    df = float(effect.df if effect.df is not None else n - 1)
    now = float(student_t.ppf(0.975, max(df, 1.0))) / math.sqrt(obs)
    for more in range(1, MAX_MORE_ROUNDS + 1):
        add = effect.per_round * more
        later = float(student_t.ppf(0.975, df + add)) / math.sqrt(obs + add)
        if half * later / now < distance:
            return more
    return None


def decide(effect: Effect, holds_at: float, fails_at: float | None = None,
           higher: bool = True) -> Decision:
    """The claim says the effect is large (``higher``) or small; the interval decides.

    higher: holds when low >= holds_at; does not hold when high < fails_at.
    not higher: holds when high <= holds_at; does not hold when low > fails_at.
    ``fails_at`` defaults to ``holds_at`` (one threshold); None for no failing side.
    """
    fails = holds_at if fails_at is None else fails_at
    f = (lambda v: f"{v:.2f}") if effect.unit == "x" else (lambda v: f"{v:.0%}")
    side = ">=" if higher else "<="
    if math.isnan(effect.value):
        return Decision(UNSURE, f"{effect.name} not measured")
    if effect.low is None or effect.high is None:
        return Decision(UNSURE, f"{effect.name}: one round, no interval to judge", 1)
    lo, hi = effect.low, effect.high
    if (lo >= holds_at) if higher else (hi <= holds_at):
        return Decision(HOLDS, f"the interval clears {side} {f(holds_at)}")
    if (hi < fails) if higher else (lo > fails):
        return Decision(FAILS, f"the interval clears the other side of {f(fails)}")
    # Straddling: which threshold is the interval across, and would more rounds settle it?
    target = holds_at if abs(effect.value - holds_at) <= abs(effect.value - fails) else fails
    between = (fails <= effect.value < holds_at) if higher else (holds_at < effect.value <= fails)
    if between and fails != holds_at:
        return Decision(UNSURE, f"{effect.name} {f(effect.value)} lies between the thresholds "
                        f"{f(fails)} and {f(holds_at)}", None)
    more = more_rounds(effect, target)
    hint = (f"; about {more} more round(s) would likely decide it" if more is not None
            else "; more rounds are unlikely to decide it")
    return Decision(UNSURE, f"the interval [{f(lo)}, {f(hi)}] straddles {f(target)}{hint}",
                    more, HOLDS if target == holds_at else FAILS)


def stall_decision(effect: Effect, stalled_ms: float, unit_ms: float, short: str
                   ) -> Decision:
    """The stall claims (CPU work on the loop, a sync driver in async def): the probe on
    the stalled side >= 2x the other's holds, < 1.2x does not; a stall shorter than half
    a unit of the work that stalls it (a work item, a wait) is not that work's: ``short``
    says why instead."""
    d = decide(effect, 2.0, 1.2)
    if d.verdict == HOLDS and stalled_ms < 0.5 * unit_ms:
        return Decision(UNSURE, short)
    return d


def all_of(*decisions: Decision) -> Decision:
    """Holds when every part holds; does not hold when one does not; else inconclusive."""
    for d in decisions:
        if d.verdict == FAILS:
            return d
    unsure = [d for d in decisions if d.verdict != HOLDS]
    if not unsure:
        return Decision(HOLDS, "; ".join(dict.fromkeys(d.reason for d in decisions)))
    # To hold, every part must: the part furthest from deciding speaks for all (None: more
    # rounds will not do it). To fail, one part is enough: one nearer to failing than that
    # speaks instead (a part between its thresholds cannot block a verdict another decides).
    hardest = max(unsure, key=lambda d: math.inf if d.more_rounds is None else d.more_rounds)
    failing = [d for d in unsure if d.toward == FAILS and d.more_rounds is not None]
    nearest = min(failing, key=lambda d: d.more_rounds or 0, default=None)
    if nearest is not None and (hardest.more_rounds is None
                                or (nearest.more_rounds or 0) < hardest.more_rounds):
        return nearest
    return Decision(UNSURE, hardest.reason, hardest.more_rounds, hardest.toward)


def verdict(cid: str, text: str, decision: Decision, evidence: str,
            effect: Effect | None = None, verdict_override: str | None = None,
            why: str = "") -> Verdict:
    """A Verdict from a decision; ``verdict_override`` (with ``why``) for a busy machine."""
    final = verdict_override or decision.verdict
    reason = why or decision.reason
    if why and decision.verdict == UNSURE and final == UNSURE:
        reason = f"{why}; {decision.reason}"
    more = decision.more_rounds if final == UNSURE else None
    shown = evidence + (f"; {effect.text()}" if effect is not None else "")
    shown += f"; {final}: {reason}"
    return Verdict(cid, text, final, shown, asdict(effect) if effect is not None else None,
                   reason, more)


def busy_machine(decision: Decision, busy: float, unit: str = "cores of other work") -> str:
    """Why a decision that does not hold is only inconclusive: other work beyond
    ``BUSY_CORES`` may have slowed a side ("" when it holds or the machine was quiet)."""
    if decision.verdict == HOLDS or busy <= BUSY_CORES:
        return ""
    return f"the machine was busy ({busy:.2f} {unit})"


def other_work(*groups: list[dict[str, Any]]) -> float:
    """The most work other than the service and Locust seen during these runs, in cores."""
    return max((float((r.get("machine") or {}).get("other_cores") or 0.0)
                for g in groups for r in g), default=0.0)


def rps_of(runs: list[dict[str, Any]]) -> list[float]:
    return [float(r["rps"]) for r in runs]


def rps_text(runs: list[dict[str, Any]]) -> str:
    """Each round's rate, as ``88.2/89.0``."""
    return "/".join(f"{r['rps']:,.1f}" for r in runs)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan
