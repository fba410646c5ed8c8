"""The one latency bucket ladder, shared by the services' histograms, the load generator's
and the database's, so client and server quantiles are read on the same bounds.

Standard library only: the Locust processes import it as they are (``locust/_exporter.py``).
"""

from __future__ import annotations

# Request-duration buckets in seconds, 100 µs .. 30 s: http_request_duration_seconds,
# locust_response_time_seconds and the database's histograms. /json answers in 70-300 µs,
# /io and /upstream in up to 10 s; histogram_quantile interpolates inside a bucket from 0,
# so a first bound of 1 ms would draw every sub-millisecond p50 as 0.5 ms.
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)
