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

# Request-duration buckets in seconds, 100 µs .. 30 s: one ladder for the services'
# histogram (http_request_duration_seconds), the load generator's
# (locust_response_time_seconds) and the database's, so client and server quantiles are
# read on the same bounds. /json answers in 70-300 µs, /io and /upstream in up to 10 s;
# histogram_quantile interpolates inside a bucket from 0, so a first bound of 1 ms would
# draw every sub-millisecond p50 as 0.5 ms.
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)
