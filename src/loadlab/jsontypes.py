"""The one name for a document the lab reads but does not define.

``JsonObject`` is a parsed JSON or TOML object from outside the lab (Docker, Locust,
Prometheus, a matrix file): its shape is the other tool's, checked where it is read. So is
what another process hands back: Locust's JSON report and its master's /stats/requests,
the locustfile's own report (written inside Locust), a service's /info reply. The lab's
own documents (the run record, summary.json, size.json, samples.json) have TypedDicts
instead (``loadlab.runs.record``, ``loadlab.runs.samples``).
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]
"""A parsed JSON or TOML object from outside the lab (Docker, Locust, Prometheus, a matrix
file): its shape is the other tool's, checked where it is read."""
