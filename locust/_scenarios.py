"""One request per endpoint of the service contract, each checked: a wrong status or body
is a failure. Requests are named by route so statistics stay per endpoint, not per URL.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from _options import Knobs

from loadlab.scenarios import MIX_WEIGHTS as REGISTRY_MIX_WEIGHTS
from loadlab.scenarios import REGISTRY, WORLD_ROWS
from loadlab.workloads import cpu_work

# Results of cpu_work are checked exactly up to this size; above it, computing the
# expected value in the load generator would cost more than it is worth.
CHECKED_WORK_MAX = 2_000
INVALID_ECHO_SHARE = 0.1
HELLO = {"message": "Hello, World!"}
HELLO_BODIES = frozenset({b'{"message":"Hello, World!"}', b'{"message": "Hello, World!"}'})

Request = Callable[[Any, Knobs], None]


@lru_cache(maxsize=64)
def expected_result(work: int) -> int | None:
    return cpu_work(work) if work <= CHECKED_WORK_MAX else None


def _get_json(client: Any, path: str, name: str, check: Callable[[Any], str | None]) -> None:
    with client.get(path, name=name, catch_response=True) as resp:
        if resp.status_code != 200:
            resp.failure(f"status {resp.status_code}")
            return
        try:
            body = json.loads(resp.content)
        except ValueError:
            resp.failure("body is not JSON")
            return
        problem = check(body)
        if problem:
            resp.failure(problem)


def _slept(ms: int) -> Callable[[Any], str | None]:
    return lambda body: None if body.get("slept_ms") == ms else f"slept_ms != {ms}"


def _cpu(work: int) -> Callable[[Any], str | None]:
    expected = expected_result(work)

    def check(body: Any) -> str | None:
        if body.get("work") != work or not isinstance(body.get("result"), int):
            return f"wrong work/result for work={work}"
        if expected is not None and body["result"] != expected:
            return f"result differs from cpu_work({work})"
        return None
    return check


def _hello(body: Any) -> str | None:
    return None if body == HELLO else "unexpected message"


def json_(client: Any, k: Knobs) -> None:
    # The hottest path of the lab (framework-overhead baseline): compare bytes first and
    # parse only what differs, so checking costs the generator next to nothing.
    with client.get("/json", name="/json", catch_response=True) as resp:
        if resp.status_code == 200 and resp.content.rstrip() in HELLO_BODIES:
            return
        if resp.status_code != 200:
            resp.failure(f"status {resp.status_code}")
            return
        try:
            problem = _hello(json.loads(resp.content))
        except ValueError:
            problem = "body is not JSON"
        if problem:
            resp.failure(problem)


def io(client: Any, k: Knobs) -> None:
    _get_json(client, f"/io?ms={k.io_ms}", "/io", _slept(k.io_ms))


def cpu(client: Any, k: Knobs) -> None:
    _get_json(client, f"/cpu?work={k.cpu_work}", "/cpu", _cpu(k.cpu_work))


def cpu_blocking(client: Any, k: Knobs) -> None:
    _get_json(client, f"/cpu/blocking?work={k.cpu_work}", "/cpu/blocking", _cpu(k.cpu_work))


def cpu_process(client: Any, k: Knobs) -> None:
    _get_json(client, f"/cpu/process?work={k.cpu_work}", "/cpu/process", _cpu(k.cpu_work))


def mixed(client: Any, k: Knobs) -> None:
    def check(body: Any) -> str | None:
        if body.get("slept_ms") != k.io_ms:
            return f"slept_ms != {k.io_ms}"
        return _cpu(k.cpu_work)(body)
    _get_json(client, f"/mixed?ms={k.io_ms}&work={k.cpu_work}", "/mixed", check)


def upstream(client: Any, k: Knobs) -> None:
    def check(body: Any) -> str | None:
        if body.get("status") != 200:
            return f"upstream answered {body.get('status')}"
        return None if body.get("slept_ms") == k.io_ms else f"slept_ms != {k.io_ms}"
    _get_json(client, f"/upstream?ms={k.io_ms}", "/upstream", check)




def _world_problem(row: Any) -> str | None:
    if not isinstance(row, dict) or sorted(row) != ["id", "randomNumber"]:
        return "not a world row"
    if not (1 <= row["id"] <= WORLD_ROWS and 1 <= row["randomNumber"] <= WORLD_ROWS):
        return "world row out of range"
    return None


def db(client: Any, k: Knobs) -> None:
    _get_json(client, "/db", "/db", _world_problem)


def queries(client: Any, k: Knobs) -> None:
    def check(body: Any) -> str | None:
        if not isinstance(body, list) or len(body) != k.queries:
            return f"expected {k.queries} rows"
        return next((p for p in map(_world_problem, body) if p), None)
    _get_json(client, f"/queries?n={k.queries}", "/queries", check)


def db_sleep(client: Any, k: Knobs) -> None:
    _get_json(client, f"/db/sleep?ms={k.io_ms}", "/db/sleep", _slept(k.io_ms))


def db_blocking(client: Any, k: Knobs) -> None:
    _get_json(client, f"/db/blocking?ms={k.io_ms}", "/db/blocking", _slept(k.io_ms))


def _echo_item() -> dict[str, Any]:
    return {
        "name": f"  item-{random.randrange(1000)} ",
        "quantity": random.randrange(100),
        "price": round(random.uniform(0, 100), 2),
        "tags": ["Load", "lab", "LOAD"],
    }


def echo(client: Any, k: Knobs) -> None:
    item = _echo_item()
    if random.random() < INVALID_ECHO_SHARE:
        item["quantity"] = -1  # breaks the shared model: the contract says 422
        with client.post("/echo", json=item, name="/echo [invalid]", catch_response=True) as resp:
            if resp.status_code != 422 or "detail" not in resp.text:
                resp.failure(f"invalid body got {resp.status_code}, expected 422")
            else:
                resp.success()
        return
    with client.post("/echo", json=item, name="/echo", catch_response=True) as resp:
        if resp.status_code != 200:
            resp.failure(f"status {resp.status_code}")
            return
        body = json.loads(resp.content)
        expected_total = round(item["quantity"] * item["price"], 2)
        if body.get("name") != item["name"].strip() or body.get("tags") != ["lab", "load"]:
            resp.failure("echo did not normalise the item")
        elif abs(body.get("total", -1) - expected_total) > 0.005:
            resp.failure("wrong total")


def request(client: Any, k: Knobs) -> None:
    with client.get("/request?probe=1", name="/request", headers={"X-Loadlab": "probe"},
                    catch_response=True) as resp:
        if resp.status_code != 200:
            resp.failure(f"status {resp.status_code}")
            return
        body = json.loads(resp.content)
        headers = {key.lower(): v for key, v in body.get("headers", {}).items()}
        if (body.get("method") != "GET" or body.get("path") != "/request"
                or body.get("query") != {"probe": ["1"]} or headers.get("x-loadlab") != "probe"):
            resp.failure("request description does not match what was sent")


# Scenario name -> its checked request, one per entry of the registry (an entry without
# its function fails here, at import); "all" is the registry's weighted mix.
SINGLE: dict[str, Request] = {s.name: globals()[s.function] for s in REGISTRY}
MIX_WEIGHTS: dict[str, int] = dict(REGISTRY_MIX_WEIGHTS)
