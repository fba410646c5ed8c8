"""Label values shared by the ASGI and WSGI middleware: bounded sets."""

from __future__ import annotations

UNMATCHED = "<unmatched>"  # every path no route matches: one series, not one per URL
OTHER_METHOD = "OTHER"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# /metrics is left out of the HTTP metrics: a scrape would otherwise always show itself
# in flight, and scrape traffic is Prometheus's own series (scrape_duration_seconds).
EXCLUDED_PATHS = frozenset({"/metrics"})
# Bounds the per-path caches; past it, paths are resolved again (routes with parameters).
MAX_CACHED_PATHS = 1024

