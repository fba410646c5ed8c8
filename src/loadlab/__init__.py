"""loadlab: FastAPI on Uvicorn against Flask on Gunicorn, measured under load.

The map. Modules at this level serve three audiences, and import downwards only
(tests/test_structure.py holds it):

What the services import (the images run this, and none of it imports the supervisor):
``contract`` (limits, models, the error body), ``workloads`` (the CPU and I/O work),
``service_db`` (the services' PostgreSQL pools and queries), ``settings`` (``LOADLAB_*``),
``serverinfo`` (``GET /info``), ``requestinfo`` (``GET /request``), ``openapi`` (the
contract's OpenAPI document), ``servers`` (the server registry), ``scenarios`` (the load
scenarios and the seeded table's size; stdlib only, the locustfile imports it),
``buckets`` (the one latency bucket ladder; stdlib only too), ``cgroup`` and ``proctree``
(CPU and memory figures), ``procs`` (process helpers), ``paths`` (where the lab's files
are), ``errors`` (the one-line error base), and the ``metrics`` package.

Starting and limiting a server: ``serve`` (``loadlab serve``, the supervisor),
``launch`` (``loadlab serve`` as a child process group), ``readiness``, ``cpulimit``
(CPU quotas), ``gunicorn_conf``, ``container`` (the images' entry point).

Running the lab: ``cli`` (the ``loadlab`` command), ``__main__``, ``doctor``, ``stack``
(Docker Swarm), ``offline`` (images without a registry), ``loopback``, ``fileio`` (the one
atomic write), ``stats`` (intervals over rounds), ``jsontypes`` (``JsonObject``: a document
read from another tool), and the packages ``runs`` (the run record,
under both ``runner`` and ``report``), ``runner`` (``loadlab run``/``matrix``), ``report``
(report.html, ``loadlab compare``), ``claims``, ``sizing`` (``loadlab size``), ``apps``
(a user's own app under the lab), ``requestlist`` (``--request`` templates), ``pgcluster``
(the throwaway PostgreSQL cluster behind ``loadlab db`` and native runs) and
``dashboards`` (Grafana as code).
"""

__version__ = "0.1.0"
