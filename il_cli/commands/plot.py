"""il plot: learning curves of runs, with 95% confidence bands over seeds."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from il_cli.commands.common import user_errors
from il_cli.ui import UI


def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run directories; one line per run, or per sweep cell.")],
    metric: Annotated[str, typer.Option(help="A figure logged in metrics.jsonl (return, loss, tv_learner_states, ...).")] = "return",
    x: Annotated[str, typer.Option("--x", help="step | wall_s | expert_queries.")] = "step",
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: ./<metric>-by-<x>.png).")] = None,
):
    """Plot a logged figure of runs against steps, wall time or expert queries (PNG)."""
    ui = UI()
    with user_errors(ui):
        from il_cli.errors import UserError, suggest
        from il_cli.plots import X_AXES
        from il_cli.runs import Run

        if x not in X_AXES:
            raise UserError(f"--x must be one of {', '.join(X_AXES)}, got '{x}'{suggest(x, X_AXES)}")
        opened = [Run.open(r) for r in runs]
        from il_cli.plots import plot as draw

        ui.print(str(draw(opened, metric, x, out)))
