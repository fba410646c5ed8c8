"""A point's measured window is the whole --duration: the runner cuts the server's series at
the mark + the duration (not at the users' start + warm-up + duration - 0.5, which kept
2.8 s of a 4 s run), the sampler's seconds are whole ones after the mark, and a scrape that
answered next to the mark or the cut makes no interval of a few ms. A candidate's service
whose chosen port was taken before it bound it is started again on fresh ports, once."""

from __future__ import annotations

import pytest

from loadlab.runner import execute
from loadlab.runner.kept import KeptRuntime
from loadlab.runner.options import RunSpec
from loadlab.runner.runtime_base import Endpoint, RuntimeError_
from loadlab.runner.sampler import Scrape, ServerSampler
from loadlab.serve import ServerConfig


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeLoad:
    """Locust as the runner sees it: users start 0.6 s in, its own warm-up ends 0.5 s
    later, its run time is rounded up to whole seconds (5 s), and it exits 0.4 s after."""

    own_warmup = True
    peak_cpu_percent = 0.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.t0 = clock.now

    def _t(self) -> float:
        return self.clock.now - self.t0

    def poll(self) -> int | None:
        return 0 if self._t() >= 0.6 + 5.0 + 0.4 else None

    def pause(self, seconds: float) -> None:
        self.clock.now += seconds

    def ramp_seen(self) -> bool:
        return self._t() >= 0.6

    def warmup_over(self) -> bool:
        return self._t() >= 0.6 + 0.5

    def sample_cpu(self) -> None:
        pass

    def cpu_seconds(self) -> float | None:
        return None

    def live_rps(self) -> float | None:
        return None


class FakeSampler:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.marked_at: float | None = None
        self.cuts: list[float] = []

    def mark(self) -> None:
        self.marked_at = self.clock.now

    def cut(self) -> float:
        self.cuts.append(self.clock.now)
        return self.clock.now

    def live(self) -> tuple[float | None, float | None]:
        return None, None


class Alive:
    def alive(self) -> bool:
        return True


class NoDatabase:
    watch = None


def test_the_runner_cuts_the_window_at_the_mark_plus_the_duration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(execute.time, "monotonic", clock)
    spec = RunSpec(target="flask", scenario="json", warmup_s=0.5, duration_s=4.0)
    load, sampler = FakeLoad(clock), FakeSampler(clock)
    started = NoDatabase()  # the Started fields _follow reads: load, sampler, watch
    started.load, started.sampler = load, sampler  # type: ignore[attr-defined]
    loop = execute._follow(spec, Alive(), started, None)  # type: ignore[arg-type]
    assert sampler.marked_at is not None and loop.cut_at is not None
    # The mark within a fast poll of Locust's warm-up end...
    assert 0.0 <= sampler.marked_at - (load.t0 + 1.1) <= execute.EDGE_POLL_S + 1e-9
    # ...and the window the whole duration after it, cut once, before Locust stops.
    assert sampler.cuts == [loop.cut_at]
    assert loop.cut_at - sampler.marked_at == pytest.approx(4.0, abs=1e-9)
    assert loop.cut_at < load.t0 + 0.6 + 5.0


def _sampler(scrapes: list[Scrape], mark: int, cut_t: float | None) -> ServerSampler:
    sampler = ServerSampler("http://127.0.0.1:9/metrics", None, "http://127.0.0.1:9")
    sampler.scrapes = scrapes
    sampler._mark, sampler._mark_t = mark, scrapes[mark].t
    sampler._cut_t = cut_t
    return sampler


def test_the_series_runs_from_the_mark_to_the_cut() -> None:
    scrapes = [
        Scrape(t=0.0, requests=0),
        Scrape(t=1.0, requests=40),
        Scrape(t=1.3, requests=50),  # the mark: warm-up over
        Scrape(t=1.31, requests=50),  # a background scrape under way at the mark
        Scrape(t=2.3, requests=150),
        Scrape(t=3.3, requests=240),
        Scrape(t=4.3, requests=340),
        Scrape(t=5.29, requests=430),  # a background scrape just before the cut
        Scrape(t=5.3, requests=440),  # the cut: the mark + 4 s
        Scrape(t=5.9, requests=470),  # Locust runs on to its whole second, then stops
        Scrape(t=6.4, requests=470),  # after the load
    ]
    series = _sampler(scrapes, 2, 5.3).series()
    assert series["seconds"] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert series["rps"] == pytest.approx([100.0, 90.0, 100.0, 100.0])


def test_a_background_scrape_appended_after_the_mark_is_put_in_its_place() -> None:
    scrapes = [
        Scrape(t=0.0, requests=0),
        Scrape(t=1.3, requests=50),  # the mark
        Scrape(t=1.2, requests=45),  # under way before the mark, appended after it
        Scrape(t=2.3, requests=150),
        Scrape(t=3.3, requests=250),
    ]
    series = _sampler(scrapes, 1, 3.3).series()
    assert series["seconds"] == pytest.approx([1.0, 1.0])
    assert series["rps"] == pytest.approx([100.0, 100.0])



class PortTaken:
    """A runtime whose first start finds a chosen port taken by another process."""

    name = "native"

    def __init__(self, error: str) -> None:
        self.error = error
        self.starts = 0

    def start(self, cfg: ServerConfig, env: object = None) -> Endpoint:
        self.starts += 1
        if self.starts == 1:
            raise RuntimeError_(f"app did not start: {self.error}")
        return Endpoint("http://127.0.0.1:1", "http://127.0.0.1:2/metrics", pid=None)

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        pass


def test_a_port_taken_between_its_choice_and_its_bind_is_chosen_again() -> None:
    inner = PortTaken("app exited with 2: loadlab serve: error: metrics port "
                      "127.0.0.1:44063 is already in use")
    kept = KeptRuntime(inner)  # type: ignore[arg-type]
    assert kept.start(ServerConfig(framework="flask")).base_url == "http://127.0.0.1:1"
    assert inner.starts == 2


def test_a_service_that_fails_otherwise_is_not_started_again() -> None:
    inner = PortTaken("app exited with 1: ImportError")
    with pytest.raises(RuntimeError_):
        KeptRuntime(inner).start(ServerConfig(framework="flask"))  # type: ignore[arg-type]
    assert inner.starts == 1
