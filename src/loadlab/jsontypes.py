"""The one name for a document the lab reads but does not define.

``JsonObject`` is a parsed JSON or TOML object from outside the lab (Docker, Locust,
Prometheus, a matrix file): its shape is the other tool's, checked where it is read. The
lab's own documents (the run record, summary.json, size.json) have TypedDicts instead
(``loadlab.runs.record``).
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]
"""A parsed JSON or TOML object from outside the lab (Docker, Locust, Prometheus, a matrix
file): its shape is the other tool's, checked where it is read."""
