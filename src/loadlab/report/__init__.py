"""report.html and ``loadlab compare``: what a results directory's runs say, read only
from the files (``loadlab.runs`` reads them; nothing here imports the runner).

The map:

- ``html``: the page, and ``BUILDERS`` (one per section: add a figure there);
  ``headline``: the comparison in a sentence or two, and the wording of a variant's load.
- Figures: ``svg`` (the primitives), ``figures`` (one row per run), ``timeline`` (a run
  over time), ``distribution`` (latency CDFs), ``plots`` (matplotlib's users figure),
  ``fit`` (scaling laws, chosen by AICc) and ``fitplot`` (its figure); ``concurrency``:
  requests held at once, and memory per request (the claims read it too).
- ``rundata``: readers of what a run left in ``raw/`` (samples, Locust's buckets).
- ``compare``: ``loadlab compare BASELINE CURRENT`` (matched runs, ratios with intervals,
  a verdict each); ``compare_html``: its section in the report.
- ``sizing``: the size section (what ``loadlab size`` found), read only from size.json.
"""
