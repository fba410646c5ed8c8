"""The verdicts as the terminal table ``loadlab claims`` prints."""

from __future__ import annotations

from loadlab.claims.verdicts import FAILS, HOLDS, UNSURE, Verdict


def print_table(verdicts: list[Verdict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="loadlab claims", show_lines=True)
    table.add_column("claim", no_wrap=True)  # ids whole: CI and users grep for them
    table.add_column("verdict", no_wrap=True)
    table.add_column("effect [95%]")
    table.add_column("evidence")
    colour = {HOLDS: "green", FAILS: "red", UNSURE: "yellow"}
    for v in verdicts:
        e = v.effect
        size = "-" if not e else (
            f"{e['value']:.2f}" + (f" [{e['low']:.2f}, {e['high']:.2f}]"
                                   if e.get("low") is not None else " (1 round)"))
        more = f"\n{v.more_rounds} more round(s) likely decide" if v.more_rounds else ""
        table.add_row(v.id, f"[{colour[v.verdict]}]{v.verdict}[/]{more}", size, v.evidence)
    Console(width=max(120, Console().width)).print(table)
