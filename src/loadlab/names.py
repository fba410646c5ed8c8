"""Names the services, the runner and the locustfiles share, kept free of imports beyond
the standard library so the Locust processes can read them too: the load scenarios and
the latency buckets."""

from __future__ import annotations

# The load families over the contract's endpoints (docs/locust.md), "all" last (the mix
# of those that need no database), and those that need a database (the runner starts one
# natively if needed): derived from the one registry, loadlab.scenarios (stdlib only).
from loadlab.scenarios import DB_SCENARIOS as DB_SCENARIOS
from loadlab.scenarios import SCENARIOS as SCENARIOS

# Rows of the seeded `world` table (TechEmpower's): ids and randomnumber run 1..WORLD_ROWS.
WORLD_ROWS = 10_000

# Request-duration buckets in seconds, 1 ms .. 30 s, for the services' histogram and the
# load generator's alike: /json answers in well under a millisecond, /io and /upstream in
# up to 10 s.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
