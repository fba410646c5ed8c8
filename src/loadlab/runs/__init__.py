"""The lab's shared vocabulary of runs: what a run record holds, and how it is named.

Both the runner (which writes runs) and the report (which reads them) sit on this package;
it imports neither of them.

- ``record``: the run record's shape (``Run`` and its parts as TypedDicts), summary.json's
  (``Summary``, its ``Manifest``) and size.json's (``SizeDoc``), the run statuses, the one
  way to name a run's variant (``variant_label``) and its cell (``variant_key``), and
  ``read_runs``, the reader of every summary.json the lab has written.
- ``store``: a results directory: ``ResultsDir`` (summary.json written atomically after
  every run, runs.csv), ``load_summary``, ``ResultsError``.
- ``samples``: the server's scraped samples: their file's shape (``SamplesFile``) and
  ``histogram_quantile`` between two scrapes.
- ``bottleneck``: the resource that limited a run (a pure verdict from the record and the
  window's scrapes).
"""
