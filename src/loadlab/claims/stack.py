"""Framework or server: the same app on Granian and on its usual server (Uvicorn for the
FastAPI app, Gunicorn for the Flask app), on ``/json`` and on an I/O wait, each service
on one process under the same CPU limit. The claim is the lab's working assumption, that
the framework sets the figure and the server moves it little; the evidence states both
ratios (server for the same app, framework on the same server) so either answer reads."""

from __future__ import annotations

import importlib.util
import math

from loadlab.claims.claim import Cell, Claim, Reading, Sizes
from loadlab.claims.verdicts import (
    BUSY_CORES,
    UNSURE,
    Effect,
    Verdict,
    all_of,
    decide,
    median,
    other_work,
    rps_of,
    rps_ratio,
)
from loadlab.runner.options import RunSpec

SERVICE_CPUS = 1.0  # equal cores: one CPU each, Locust on the other


def granian_missing() -> str | None:
    """Why the Granian cells cannot run here, or None."""
    if importlib.util.find_spec("granian") is None:
        return "Granian is not installed (make install)"
    return None


def _json(s: Sizes, target: str, worker_class: str) -> RunSpec:
    return RunSpec(target=target, scenario="json", users=8, workers=1,
                   worker_class=worker_class, cpus=SERVICE_CPUS, **s.timing())


def _io(s: Sizes, worker_class: str) -> RunSpec:
    return RunSpec(target="fastapi", users=s.async_users, workers=1, worker_class=worker_class,
                   cpus=SERVICE_CPUS, **s.io())


JSON_UVICORN = Cell("json-fastapi-uvicorn", lambda s, c: _json(s, "fastapi", "uvicorn"))
JSON_GRANIAN_ASGI = Cell("json-fastapi-granian", lambda s, c: _json(s, "fastapi", "granian"),
                         granian_missing)
JSON_GUNICORN = Cell("json-flask-gunicorn", lambda s, c: _json(s, "flask", "sync"))
JSON_GRANIAN_WSGI = Cell("json-flask-granian", lambda s, c: _json(s, "flask", "granian"),
                         granian_missing)
IO_UVICORN = Cell("io-fastapi-uvicorn", lambda s, c: _io(s, "uvicorn"))
IO_GRANIAN = Cell("io-fastapi-granian", lambda s, c: _io(s, "granian"), granian_missing)

# (what, usual server's cell, Granian's cell)
PAIRS = (("FastAPI /json", JSON_UVICORN, JSON_GRANIAN_ASGI),
         ("Flask /json", JSON_GUNICORN, JSON_GRANIAN_WSGI),
         ("FastAPI /io", IO_UVICORN, IO_GRANIAN))


def _server_or_framework(seen: Reading) -> Verdict:
    parts, decisions, effects = [], [], []
    for what, usual, granian in PAIRS:
        a, b = seen.rounds(usual), seen.rounds(granian)
        effect = rps_ratio(f"{what}: Granian / {a[0]['worker_class']}", a, b)
        effects.append(effect)
        decisions.append(all_of(decide(effect, 0.8, 0.67), decide(effect, 1.25, 1.5,
                                                                   higher=False)))
        parts.append(f"{what} {median(rps_of(a)):,.0f} req/s on {a[0]['worker_class']}, "
                     f"{median(rps_of(b)):,.0f} on Granian ({effect.text()})")
    ja, jb = seen.rounds(JSON_UVICORN), seen.rounds(JSON_GUNICORN)
    fa, fb = seen.rounds(JSON_GRANIAN_ASGI), seen.rounds(JSON_GRANIAN_WSGI)
    usual_fw = rps_ratio("FastAPI / Flask on /json, each on its usual server", jb, ja)
    granian_fw = rps_ratio("FastAPI / Flask on /json, both on Granian", fb, fa)
    busy = other_work(*(seen.rounds(c) for _, u, g in PAIRS for c in (u, g)))
    evidence = ("; ".join(parts) + f"; the framework: {usual_fw.text()}, {granian_fw.text()}; "
                f"{SERVICE_CPUS:g} CPU each, other work up to {busy:.2f} cores "
                f"({seen.bands(busy_cores=BUSY_CORES)})")
    d = all_of(*decisions)
    # The pair furthest from 1 speaks for the verdict.
    worst: Effect = max(effects, key=lambda e: abs(math.log(e.value)) if e.value > 0 else 0.0)
    if d.verdict == UNSURE and busy > BUSY_CORES:
        return seen.verdict(d, evidence, worst, UNSURE,
                            f"the machine was busy ({busy:.2f} cores of other work)")
    return seen.verdict(d, evidence, worst)


SERVER_VS_FRAMEWORK = Claim(
    id="server-vs-framework",
    text=("the framework, not the server, sets the figure: the same app serves about the "
          "same rate on Granian as on its usual server (/json and an I/O wait, equal cores)"),
    cells=(JSON_UVICORN, JSON_GRANIAN_ASGI, JSON_GUNICORN, JSON_GRANIAN_WSGI, IO_UVICORN,
           IO_GRANIAN),
    judge=_server_or_framework,
    holds="Granian / the usual server within 0.80-1.25x for every pair",
    fails="outside 0.67-1.5x for a pair: the server moves the figure",
    unsure="other work exceeds {busy_cores} cores",
)


CLAIMS = (SERVER_VS_FRAMEWORK,)
