"""The live progress line: cell, elapsed time, throughput and p95 while Locust runs."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:,.0f} {unit}"


class Progress:
    """One line per cell in a terminal; plain lines when output is not a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, soft_wrap=True)
        self._live: Live | None = None
        self.total = 0

    def begin(self, total: int) -> None:
        self.total = total
        if self.console.is_terminal:
            self._live = Live(Text(""), console=self.console, refresh_per_second=4,
                              transient=True)
            self._live.start()

    def update(self, index: int, cell: str, elapsed: float, planned: float,
               rps: float | None, p95: float | None, phase: str) -> None:
        if self._live is None:
            return
        self._live.update(Text.assemble(
            (f"[{index}/{self.total}] ", "bold"), (cell, "cyan"),
            f"  {phase} {elapsed:4.0f}/{planned:.0f}s  ",
            ("rps ", "dim"), _fmt(rps, ""), ("  p95 ", "dim"), _fmt(p95, "ms"),
        ))

    def done(self, index: int, line: str) -> None:
        self.console.print(f"[{index}/{self.total}] {line}", highlight=False)

    def note(self, line: str) -> None:
        self.console.print(line, highlight=False)

    def end(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.end()
