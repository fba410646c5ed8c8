"""Users made from ``--request`` templates (``loadlab run|size --request "GET /items/{id}"``).

The runner passes the parsed templates in ``LOADLAB_REQUESTS`` (JSON, see
loadlab.requestlist) and loads this file beside loadlab_plugin.py. Each template is one
task, picked by its weight; its statistics are named by the template, so ``{id}`` does
not make one row per id.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable
from typing import Any

from loadlab.requestlist import ENV, Template, fill, from_json
from locust import FastHttpUser

TEMPLATES = from_json(os.environ.get(ENV, "[]"))
_ids = itertools.count(1)


def _task(template: Template) -> Callable[[Any], None]:
    def run(user: Any) -> None:
        path = fill(template.path, next(_ids), random.randint)
        kwargs: dict[str, Any] = {"name": template.name}
        if template.body is not None:
            kwargs["json"] = template.body
        user.client.request(template.method, path, **kwargs)

    run.__name__ = run.__qualname__ = f"request_{template.method.lower()}"
    return run


class RequestsUser(FastHttpUser):
    """Sends the templates, weighted; no think time (the open model paces it otherwise)."""

    abstract = not TEMPLATES  # nothing to send: Locust says it has no user class
    # Locust takes a dict of weights too (its annotation says list only).
    tasks: Any = {_task(t): t.weight for t in TEMPLATES}  # noqa: RUF012
