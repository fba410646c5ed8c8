"""The load scenarios, written once: the lists every parser offers, what each one needs,
its weight in the ``all`` mix, and the route its requests are named by; and the size of the
seeded table the database scenarios read.

Standard library only, so the Locust processes import it as they are (the locustfile
builds its tasks from this table; ``locust/_scenarios.py`` holds one checked request per
entry). tests/test_scenarios.py checks that the copies derived from it agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One load family over the contract's endpoints."""

    name: str
    path: str             # the route Locust names its requests by (statistics per endpoint)
    needs_db: bool = False
    uses_io_ms: bool = False     # the server waits --io-ms per request
    uses_cpu_work: bool = False  # the server works --cpu-work units per request
    mix_weight: int = 0          # weight in the "all" mix (0: not in it)

    @property
    def function(self) -> str:
        """The name of its request in locust/_scenarios.py (``json`` shadows a module)."""
        return "json_" if self.name == "json" else self.name.replace("-", "_")


REGISTRY: tuple[Scenario, ...] = (
    Scenario("json", "/json", mix_weight=4),
    Scenario("io", "/io", uses_io_ms=True, mix_weight=3),
    Scenario("cpu", "/cpu", uses_cpu_work=True, mix_weight=1),
    Scenario("cpu-blocking", "/cpu/blocking", uses_cpu_work=True, mix_weight=1),
    Scenario("cpu-process", "/cpu/process", uses_cpu_work=True, mix_weight=1),
    Scenario("mixed", "/mixed", uses_io_ms=True, uses_cpu_work=True, mix_weight=1),
    Scenario("upstream", "/upstream", uses_io_ms=True, mix_weight=1),
    Scenario("echo", "/echo", mix_weight=2),
    Scenario("request", "/request", mix_weight=1),
    # The database scenarios: never in the mix (a service may have no database).
    Scenario("db", "/db", needs_db=True),
    Scenario("queries", "/queries", needs_db=True),
    Scenario("db-sleep", "/db/sleep", needs_db=True, uses_io_ms=True),
    Scenario("db-blocking", "/db/blocking", needs_db=True, uses_io_ms=True),
)
# The weighted mix of every scenario that needs no database (so it runs against any service).
MIX = "all"
BY_NAME = {s.name: s for s in REGISTRY}
SCENARIOS = (*BY_NAME, MIX)
DB_SCENARIOS = tuple(s.name for s in REGISTRY if s.needs_db)
MIX_WEIGHTS = {s.name: s.mix_weight for s in REGISTRY if s.mix_weight}

# Rows of the seeded `world` table (TechEmpower's) the database scenarios read: ids and
# randomnumber run 1..WORLD_ROWS (the seed writes them, the services and Locust draw ids).
WORLD_ROWS = 10_000


def waits(name: str) -> bool:
    """Whether the server waits --io-ms in this scenario (the mix counts as waiting)."""
    return name == MIX or (name in BY_NAME and BY_NAME[name].uses_io_ms)


def works(name: str) -> bool:
    """Whether the server works --cpu-work units in this scenario."""
    return name in BY_NAME and BY_NAME[name].uses_cpu_work
