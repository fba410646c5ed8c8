"""Readiness: /healthz answers once one worker is up, so a service of several workers is
ready for load only when its /metrics counts them all (real Gunicorn and Uvicorn)."""

from __future__ import annotations

import pytest
from support.services import start_service

from loadlab.readiness import not_ready, wait_ready, workers_up


def test_the_worker_count_is_summed_over_the_workers_samples() -> None:
    text = ("# HELP loadlab_workers Live worker processes.\n# TYPE loadlab_workers gauge\n"
            'loadlab_workers{pid="11"} 1.0\nloadlab_workers{pid="12"} 1.0\n'
            "# HELP other_total x\n# TYPE other_total counter\nother_total 7.0\n")
    assert workers_up(text) == 2
    assert workers_up("# HELP other_total x\n# TYPE other_total counter\nother_total 7.0\n") == 0


@pytest.mark.slow  # real services started and watched
@pytest.mark.parametrize("options", [
    dict(framework="flask", worker_class="sync", workers=3),
    dict(framework="fastapi", worker_class="uvicorn", workers=2),
], ids=["gunicorn-sync-3", "uvicorn-2"])
def test_a_started_service_has_every_worker_up(options: dict[str, object]) -> None:
    service = start_service(**options)  # start() returns once readiness says so
    try:
        workers = int(options["workers"])  # type: ignore[call-overload]
        assert not_ready(service.url, workers) is None
        assert not_ready(service.url, workers + 1) == f"{workers} of {workers + 1} workers up"
        reason = wait_ready(service.url, 0.3, workers + 1)
        assert reason is not None and reason.startswith("not ready after 0.3s (")
    finally:
        service.stop()
    assert wait_ready(service.url, 0.2) is not None  # stopped: nothing answers
