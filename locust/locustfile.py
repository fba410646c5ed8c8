"""The lab's load: FastHttpUser scenarios for every endpoint of the service contract.

    locust -f locust/locustfile.py --host http://127.0.0.1:8000 --scenario io --io-ms 100
    locust -f locust/locustfile.py,locust/shapes.py --class-picker      # web UI with shapes

Closed model by default (each user waits for its answer); ``--arrival-rate R`` switches
to the open model (see _openmodel.py). Gates (``--max-p95-ms`` ...) are checked when the
test stops. Locust's web app serves the swarm's Prometheus metrics at ``/metrics``. All of
that measurement lives in loadlab_plugin.py, which this file imports and which any other
locustfile can load beside its own user classes.
Works headless, with the web UI, and as master or worker. docs/locust.md has the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import _options
import _scenarios
import gevent
from loadlab_plugin import Lab  # the lab's measurement: the same plugin any locustfile loads
from locust.env import Environment

from loadlab.scenarios import REGISTRY, Scenario
from locust import FastHttpUser, events, tag

log = logging.getLogger("loadlab")


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    _options.add_lab_arguments(parser)  # the measurement's options: loadlab_plugin


def _in_mix(task: object) -> bool:
    """The "all" mix: every endpoint that needs no database (MIX_WEIGHTS)."""
    return bool(set(getattr(task, "locust_tag_set", ())) & set(_scenarios.MIX_WEIGHTS))


def _idle(user: object) -> None:
    gevent.sleep(1)


def _task(scenario: Scenario) -> Callable[[LabUser], None]:
    """The task of one scenario: its checked request, paced by the user's load model."""
    request = _scenarios.SINGLE[scenario.name]

    def run(user: LabUser) -> None:
        user._call(request)

    run.__name__ = run.__qualname__ = scenario.function
    return tag(scenario.name)(run)


class LabUser(FastHttpUser):
    """One scenario per user, read from the options when the user starts (so values entered
    in the web UI reach new users). Tasks are tagged by scenario; ``all`` runs the mix."""

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        chosen = _options.services(getattr(options, "target", "host"))
        # "both": users alternate between the services; a worker starts from its index, so
        # the odd users of successive workers land on alternate services too.
        offset = max(int(getattr(environment.runner, "worker_index", 0) or 0), 0)
        service = chosen[(next(Lab.spawned) + offset) % len(chosen)] if chosen else "host"
        url = _options.known_urls(options).get(service) if chosen else None
        if url:
            self.host = url
        self.label = {"target": service}
        super().__init__(environment)
        self.knobs = _options.Knobs.from_options(options)

    def context(self) -> dict[str, Any]:
        """Every request's event carries the service it went to (the exporter's label)."""
        return self.label

    def on_start(self) -> None:
        # The web form's values are checked when Start is pressed; a shape or an API call
        # that got bad ones past that sends nothing (the master logs them and stops).
        options = self.environment.parsed_options
        if _options.problems(options, None, host=self.host or self.environment.host):
            self.tasks = [_idle]
            return
        scenario = self.knobs.scenario
        cls_tasks = type(self).tasks
        self.tasks = [t for t in cls_tasks if scenario in getattr(t, "locust_tag_set", ())
                      or (scenario == "all" and _in_mix(t))]
        if not self.tasks:
            log.error("loadlab: no task left for scenario %s (check --tags)", scenario)
            self.tasks = [_idle]

    def _call(self, request: _scenarios.Request) -> None:
        # One request per task: in the open model, the plugin paces each task as one
        # arrival (loadlab_plugin.paced) and measures it from its intended time.
        request(self.client, self.knobs)

    # One task per scenario of the registry, tagged with its name (--tags works on them).
    # Locust takes a dict of weights too (its annotation says list only).
    tasks: Any = {_task(s): max(s.mix_weight, 1) for s in REGISTRY}  # noqa: RUF012
