"""What every command prints: a header, live progress, a result table. No JAX here.

Human output goes to stdout, or to stderr with `--json` (stdout then carries exactly one
JSON object). Progress is a rich bar on a terminal and plain periodic lines otherwise.
"""

import json
import os
import sys
import time

from rich.console import Console
from rich.table import Table


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class UI:
    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json_mode = json_mode
        self.console = Console(stderr=json_mode, quiet=quiet, highlight=False)
        if not self.console.is_terminal:  # cluster logs: do not wrap at 80 columns
            self.console.width = 120

    def print(self, *args, **kwargs):
        self.console.print(*args, **kwargs)

    def header(self, command: str, env_id: str, run_dir, device: str):
        self.print(f"[bold]il {command}[/] · {env_id} · {device} · {run_dir}")

    def progress(self, total: int, unit: str):
        return Progress(self.console, total, unit)

    def grid(self, title: str, columns: list[str], rows: list[list]):
        """A table with a header row: one row per grid point, one column per run."""
        table = Table(title=title, title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right", style="bold" if i == 0 else None)
        for row in rows:
            table.add_row(*map(_fmt, row))
        self.print(table)

    def results(self, title: str, rows: list[tuple], run_dir):
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        for name, value in rows:
            table.add_row(name, _fmt(value))
        self.print(table)
        self.print(f"run directory: {run_dir}")

    def emit_json(self, summary: dict):
        if self.json_mode:
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()


class Progress:
    """A rich progress bar with live figures on a TTY; plain lines at most every 2 s otherwise."""

    def __init__(self, console: Console, total: int, unit: str):
        self.console, self.total, self.unit = console, total, unit
        self.live = console.is_terminal and not os.environ.get("IL_PLAIN_PROGRESS")
        self._bar = None
        self._last = 0.0

    def __enter__(self):
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn(f"{self.unit}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.fields[figures]}"),
                                     console=self.console, transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, figures="compiling…")
        return self

    def update(self, completed: int, figures: dict):
        text = "  ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, figures=text)
        elif time.monotonic() - self._last >= 2.0 or completed >= self.total:
            self._last = time.monotonic()
            self.console.print(log_line(f"{self.unit} {completed}/{self.total}", figures), soft_wrap=True,
                               markup=False)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


LOG_LINE = 160  # the longest progress line written to a log (stdout not a terminal)


def log_line(head: str, figures: dict) -> str:
    """`head` and as many whole figures as fit in LOG_LINE characters, then …"""
    line = head
    for k, v in figures.items():
        part = f"  {k} {_fmt(v)}"
        if len(line) + len(part) > LOG_LINE - 2:
            return line + "  …"
        line += part
    return line
