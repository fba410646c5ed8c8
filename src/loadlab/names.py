"""Names the services, the runner and the locustfiles share, kept free of imports so the
Locust processes can read them too: the load scenarios and the latency buckets."""

from __future__ import annotations

# The load families over the contract's endpoints (docs/locust.md); "all" mixes those
# that need no database.
SCENARIOS = (
    "json", "io", "cpu", "cpu-blocking", "cpu-process", "mixed", "upstream", "echo",
    "request", "db", "queries", "db-sleep", "db-blocking", "all",
)
# Rows of the seeded `world` table (TechEmpower's): ids and randomnumber run 1..WORLD_ROWS.
WORLD_ROWS = 10_000
# The scenarios whose requests need a database (the runner starts one natively if needed).
DB_SCENARIOS = ("db", "queries", "db-sleep", "db-blocking")

# Request-duration buckets in seconds, 1 ms .. 30 s, for the services' histogram and the
# load generator's alike: /json answers in well under a millisecond, /io and /upstream in
# up to 10 s.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
