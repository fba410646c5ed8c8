"""``loadlab run`` and ``loadlab matrix``: cells of a sweep, each started, loaded with
Locust, sampled, stopped and recorded (docs/runner.md).

The map, from the command down:

- ``cli_entry``: the commands' arguments (argparse only: ``loadlab --help`` builds them)
  and the dispatch of run and matrix; ``own_load_arguments``: --app, --locustfile and
  --request (``loadlab size`` adds them too); ``commands``: arguments -> specs -> ``run_cells`` ->
  exit code; ``options``: ``RunSpec`` (one cell), ``Gates`` and the string parsers;
  ``matrix``: a TOML file -> cells.
- ``session``: ``run_cells``, the rounds of every cell into one results directory (lock,
  resume, Ctrl-C, the report at the end); ``rounds``: rounds folded into one run;
  ``progress``: the live line; ``manifest``: what the machine and software were;
  ``leftovers``: the directory lock, and process groups a killed runner left.
- ``execute``: one run in three parts, ``start`` -> ``measure`` (a ``Measurement``) ->
  ``record_from`` (pure: the run record); ``sampler``: the server's /metrics each second
  and /healthz probes; ``interpreter``: the interpreter and the GIL's state, read from
  the service's /info while it serves; ``run_database``: each run's PostgreSQL and its
  watch.
- ``loadgen``: the ``LoadGenerator`` interface, implemented by ``locust_driver`` (Locust
  as a local process) and by ``swarm``'s master (the stack's Locust).
- ``runtime_base``: the ``Runtime`` base class (hooks with defaults), ``Endpoint``,
  ``Placement``; the runtimes: ``native`` (local processes), ``compose``, ``swarm``, and
  ``runtimes`` (``runtime_for``: ``--runtime NAME`` -> one of them); ``prometheus_watch``:
  a stack's Prometheus gaps during a run; ``kept``: one service kept across the runs of
  one configuration (``loadlab size``).

The runner writes results through ``loadlab.runs`` and builds the report at the end;
neither ``loadlab.runs`` nor ``loadlab.report`` imports it.
"""
