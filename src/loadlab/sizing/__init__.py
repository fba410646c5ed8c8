"""``loadlab size``: the server configuration that serves the most within a latency target.

``arguments`` holds the command's options, ``slo`` reads the target, ``candidates`` the
textbook configurations for a CPU budget,
``search`` orders the candidates, prunes those whose capacity bound is below the best so
far, finds each one's capacity (open model: a ramp, then a bisection, one run a point with
a batch-means interval, rounds only where it is wider than ±10%), walks each branch's
workers until adding one no longer helps, and compares the best with the runner-up
(``recommend``); ``measure`` runs the points for real on one service per candidate;
``command`` ties them together and writes size.json and report.html (its section:
``loadlab.report.sizing``).
"""
