"""``loadlab size``: the server configuration that serves the most within a latency target.

``arguments`` holds the command's options, ``slo`` reads the target, ``candidates`` the
textbook configurations for a CPU budget,
``search`` finds each candidate's capacity (open model: a ramp, then a bisection, each
point in rounds) and walks each branch's workers until adding one no longer helps,
``recommend`` compares the best with the runner-up, ``command`` runs it for real and
writes size.json and report.html (its section: ``loadlab.report.sizing``).
"""
