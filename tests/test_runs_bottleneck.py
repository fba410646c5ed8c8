"""The bottleneck verdict on known figures: each textbook case names its resource.

The figures are those of the lab's built-in services in the cases the issue lists (one
sync worker under 50 users, FastAPI's /cpu/blocking, a 1-CPU quota with two CPU-bound
workers, a pool of 5 under 50 database users, 50 users waiting 50 ms on a fast server),
shaped as the sampler records them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from loadlab.report.headline import sentences
from loadlab.runner.session import describe
from loadlab.runs.bottleneck import (
    BUSY_CORES,
    RESOURCES,
    Gauges,
    Signals,
    closed_cap,
    for_run,
    signals,
    slots_of,
    verdict,
    words,
)
from loadlab.runs.record import read_runs


def test_one_sync_worker_under_50_users_is_limited_by_its_worker_slot() -> None:
    s = Signals(rps=19.0, users=50, latency_mean_ms=2600.0, cpu_limit=1.0, cpu_used=0.05,
                throttled_share=0.0, slots=1, in_progress=1.0, accept_queue=48.0)
    v = verdict(s)
    assert v["resource"] == "worker_slots"
    assert "48 connections queued" in v["evidence"]
    assert "busy 100%" in v["evidence"]


def test_blocking_cpu_on_the_event_loop_is_limited_by_the_loop() -> None:
    # One Uvicorn worker running /cpu/blocking: one core busy (the loop's thread), no
    # throttling (one thread cannot exceed a 1-CPU quota), the loop answering ~40 ms late.
    s = Signals(rps=60.0, users=20, latency_mean_ms=330.0, cpu_limit=1.0, cpu_used=0.97,
                throttled_share=0.02, slots=None, in_progress=20.0, loop_lag_s=0.041)
    v = verdict(s)
    assert v["resource"] == "event_loop"
    assert "41 ms late" in v["evidence"]


def test_two_cpu_bound_workers_under_a_1_cpu_quota_are_limited_by_the_quota() -> None:
    s = Signals(rps=90.0, users=20, latency_mean_ms=220.0, cpu_limit=1.0, cpu_used=0.99,
                throttled_share=0.85, slots=2, workers=2, in_progress=2.0, accept_queue=18.0)
    v = verdict(s)
    assert v["resource"] == "cpu_quota"
    assert "throttled in 85% of the periods" in v["evidence"]
    assert v["figures"]["cpu_limit"] == 1.0


def test_pool_of_5_under_50_database_users_is_limited_by_the_pool() -> None:
    s = Signals(rps=400.0, users=50, latency_mean_ms=120.0, cpu_limit=1.0, cpu_used=0.4,
                throttled_share=0.0, slots=None, in_progress=50.0, db_pool_in_use=5.0,
                db_pool_size=5.0, db_pool_waiting=44.0, db_cpu_used=0.2, db_cpu_cores=1.0)
    v = verdict(s)
    assert v["resource"] == "db_pool"
    assert "5 of 5 connections in use, 44 requests waiting" in v["evidence"]


def test_50_users_waiting_50ms_on_a_fast_server_are_limited_by_the_offered_load() -> None:
    s = Signals(rps=934.0, users=50, latency_mean_ms=53.5, cpu_limit=1.0, cpu_used=0.35,
                throttled_share=0.0, slots=None, in_progress=49.0, loop_lag_s=0.0004,
                threadpool_busy=0.0, threadpool_size=40.0, load_cpu_used=0.3, load_cores=1.0)
    v = verdict(s)
    assert v["resource"] == "offered_load"
    assert "50 users × 53.5 ms can ask for at most 935 req/s" in v["evidence"]
    assert "think time not known" in v["evidence"]


def test_the_closed_cap_counts_the_users_think_time() -> None:
    """50 users thinking 50 ms each can ask for at most 1,000 req/s however fast the
    server answers; without the think time the cap would be 50 / 0.5 ms = 100,000."""
    s = Signals(rps=985.0, users=50, latency_mean_ms=0.5, think_time_ms=50.0, cpu_limit=1.0,
                cpu_used=0.2, throttled_share=0.0, in_progress=0.6, load_cpu_used=0.3,
                load_cores=1.0)
    v = verdict(s)
    assert v["resource"] == "offered_load"
    assert v["evidence"] == ("the offered load: 50 users × 50.5 ms can ask for at most "
                             "990 req/s (think time 50 ms + response time 0.5 ms each)")
    assert v["figures"]["cap_rps"] == pytest.approx(990.1, abs=0.1)
    assert closed_cap(50, 0.0, 50.0) == (1000.0, 50.0)
    no_think = verdict(Signals(rps=900.0, users=50, latency_mean_ms=53.5, think_time_ms=0.0))
    assert "response time 53.5 ms each, no think time" in no_think["evidence"]


def test_paced_users_are_capped_by_their_pacing() -> None:
    v = verdict(Signals(rps=99.0, users=10, latency_mean_ms=5.0, pacing_ms=100.0))
    assert "10 users × 100 ms can ask for at most 100 req/s" in v["evidence"]
    assert closed_cap(10, 250.0, None, 100.0) == (40.0, 250.0)


def test_the_signals_read_the_think_time_from_the_record() -> None:
    record = {"rps": 900.0, "users": 50, "latency_ms": {"mean": 2.0}, "think_time_ms": 50.0,
              "target": "fastapi", "worker_class": "uvicorn"}
    s = signals(record, [])
    assert s.think_time_ms == 50.0 and s.pacing_ms is None
    assert verdict(s)["figures"]["cap_rps"] == pytest.approx(50 / 0.052)


def test_an_open_model_that_got_its_rate_and_one_that_did_not() -> None:
    met = verdict(Signals(rps=199.0, model="open", arrival_rate=200.0, cpu_used=0.2,
                          cpu_limit=1.0))
    assert met["resource"] == "offered_load"
    short = verdict(Signals(rps=120.0, model="open", arrival_rate=200.0, cpu_used=0.2,
                            cpu_limit=1.0))
    assert short["resource"] == "none"
    assert words(short) == "nothing measured was saturated"


@pytest.mark.parametrize(("signals_", "expected"), [
    (Signals(rps=50.0, threadpool_busy=40.0, threadpool_size=40.0, cpu_used=0.5,
             cpu_limit=1.0, users=100, latency_mean_ms=2000.0), "thread_pool"),
    (Signals(rps=50.0, db_cpu_used=0.95, db_cpu_cores=1.0, cpu_used=0.3, cpu_limit=1.0),
     "database_cpu"),
    (Signals(rps=5000.0, load_cpu_used=0.97, load_cores=1.0, cpu_used=0.6, cpu_limit=1.0,
             users=20, latency_mean_ms=4.0), "load_generator"),
    (Signals(rps=5000.0, load_saturated=True, cpu_used=0.6, cpu_limit=1.0), "load_generator"),
    (Signals(rps=300.0, cpu_used=1.95, cpu_cores=2.0, users=10, latency_mean_ms=33.0),
     "cpu_quota"),
])
def test_the_other_resources(signals_: Signals, expected: str) -> None:
    assert verdict(signals_)["resource"] == expected


def test_every_verdict_is_a_known_resource_with_one_sentence() -> None:
    cases = [Signals(rps=1.0), Signals(rps=1.0, users=1, latency_mean_ms=1.0),
             Signals(rps=1.0, slots=1, in_progress=1.0)]
    for case in cases:
        v = verdict(case)
        assert v["resource"] in RESOURCES
        assert v["evidence"] and "\n" not in v["evidence"]


def test_slots_follow_the_worker_class() -> None:
    assert slots_of("sync", 3, 1, "wsgi") == 3
    assert slots_of("gthread", 2, 8, "wsgi") == 16
    assert slots_of("granian", 2, 4, "wsgi") == 8
    assert slots_of("granian", 2, 4, "asgi") is None
    assert slots_of("uvicorn", 2, 1, "asgi") is None
    assert slots_of("gevent", 2, 1, "wsgi") is None
    assert slots_of("no-such-class", 2, 1, "wsgi") is None


def _record(**over: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "target": "flask", "worker_class": "sync", "workers": 1, "threads": 1, "users": 50,
        "cpus": 1.0, "rps": 19.0, "model": "closed",
        "latency_ms": {"p50": 2600.0, "p95": 2700.0, "p99": 2800.0, "max": 3000.0},
        "server": {"cpu_limit": 1.0, "cpu_cores_used": 0.04, "throttled_share": 0.0},
        "machine": {"load_generator_cores": 0.02}, "load": {"load_cores": [1],
                                                            "server_cores": [0]},
    }
    record.update(over)
    return record


def test_signals_from_a_record_and_its_scrapes() -> None:
    scrapes = [Gauges(in_progress=1.0, accept_queue=47.0),
               Gauges(in_progress=1.0, accept_queue=49.0),
               Gauges(ok=False)]
    s = signals(_record(), scrapes)
    assert s.slots == 1 and s.in_progress == 1.0 and s.accept_queue == 48.0
    assert s.latency_mean_ms == 2600.0 and s.load_cores == 1.0
    assert for_run(_record(), scrapes)["resource"] == "worker_slots"


def test_loop_lag_is_read_from_the_histogram_of_the_window() -> None:
    # 100 observations in the window, all in (0.025, 0.05]: the mean is read as 37.5 ms.
    before = {0.001: 10.0, 0.025: 10.0, 0.05: 10.0, float("inf"): 10.0}
    after = {0.001: 10.0, 0.025: 10.0, 0.05: 110.0, float("inf"): 110.0}
    record = _record(target="fastapi", worker_class="uvicorn", users=20)
    s = signals(record, [Gauges(loop_lag_buckets=before), Gauges(loop_lag_buckets=after)])
    assert s.slots is None
    assert s.loop_lag_s == pytest.approx(0.0375)
    assert verdict(s)["resource"] == "event_loop"


def test_the_terminal_and_the_headline_say_it() -> None:
    record = _record(status="ok", requests=570, failures=0, scenario="io", io_ms=50,
                     framework="flask", duration_s=30)
    record["bottleneck"] = for_run(record, [Gauges(in_progress=1.0, accept_queue=48.0)])
    line = describe(record)  # type: ignore[arg-type]
    assert "limited by its 1 worker slot: busy 100%, 48 connections queued" in line
    runs = read_runs({"runs": [record]})
    assert "limited by its 1 worker slot" in " ".join(sentences(runs))


def test_a_sync_worker_with_a_queue_is_limited_by_its_slot_though_it_idles_between() -> None:
    """Recorded: one Gunicorn sync worker, 5 users on short random waits; the app saw one
    request in progress at most scrapes and the kernel held 4-5 connections for it. The
    trailing scrape came after the load ended (0, 0)."""
    seen = [(0.0, 4.0), (1.0, 5.0), (1.0, 5.0), (1.0, 4.0), (1.0, 4.0), (0.0, 0.0)]
    scrapes = [Gauges(in_progress=p, accept_queue=q) for p, q in seen]
    record = _record(users=5, rps=84.3, latency_ms={"p50": 59.5, "mean": 58.3})
    verdict_ = for_run(record, scrapes)
    assert verdict_["resource"] == "worker_slots", verdict_
    assert "4 connections queued" in verdict_["evidence"]


def test_a_busy_loop_with_cpu_to_spare_is_not_a_blocked_loop() -> None:
    """Recorded: FastAPI, 50 users waiting 50 ms, one Uvicorn worker: the loop answered 6 ms
    late at about a thousand requests a second while the process used 0.4 of its core."""
    s = Signals(rps=930.0, users=50, latency_mean_ms=53.7, cpu_limit=None, cpu_cores=1.0,
                cpu_used=0.4, throttled_share=None, slots=None, workers=1, in_progress=49.0,
                loop_lag_s=0.006)
    assert verdict(s)["resource"] == "offered_load"
    blocked = Signals(rps=60.0, cpu_cores=1.0, cpu_used=0.97, workers=1, loop_lag_s=0.006)
    assert verdict(blocked)["resource"] == "event_loop"


def test_a_throttled_quota_names_the_quota_though_tenants_took_some_periods() -> None:
    s = Signals(rps=24.0, cpu_limit=1.0, cpu_used=0.82, throttled_share=0.38, slots=2,
                workers=2, in_progress=2.0, accept_queue=8.0)
    assert verdict(s)["resource"] == "cpu_quota"


def test_full_slots_on_a_machine_busy_with_other_work_say_they_may_have_waited_for_cpu() -> None:
    """Measured: Flask sync ×2 under 10 users of cpu 200 at one core, a whole test suite
    beside it: other processes took 1.22 of the 2 cores, the service 0.74 of its 1, throttled
    in 8% of the periods, 38.8 req/s, 8 connections queued (the latency here is made up).
    The slots were full, waiting for CPU that the other work took."""
    busy = Signals(rps=38.8, users=10, latency_mean_ms=250.0, cpu_limit=1.0, cpu_used=0.74,
                   throttled_share=0.08, slots=2, workers=2, in_progress=2.0,
                   accept_queue=8.0, other_cores=1.22)
    v = verdict(busy)
    assert v["resource"] == "worker_slots", v
    assert v["evidence"].endswith(
        "; other work on the machine took 1.22 cores, so it may have waited for CPU"), v
    assert v["figures"]["other_cores"] == 1.22
    # A quiet machine (BUSY_CORES or less): the same slots, no caveat.
    quiet = verdict(replace(busy, other_cores=BUSY_CORES))
    assert quiet["resource"] == "worker_slots" and "other work" not in quiet["evidence"]
    # A quota that bit, or a service that used its CPUs up, was not starved by others.
    bit = verdict(replace(busy, cpu_used=0.98, throttled_share=0.9))
    assert bit["resource"] == "cpu_quota" and "other work" not in bit["evidence"]
    # The record's machine figures reach the verdict.
    record = _record()
    record["machine"] = {"other_cores": 1.22}
    assert signals(record, []).other_cores == 1.22
