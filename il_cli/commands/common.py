"""The error handling every command runs under, and the --json option."""

import contextlib
import sys
from typing import Annotated

import typer

from il_cli import signals
from il_cli.errors import UserError
from il_cli.ui import UI

Json = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")]


@contextlib.contextmanager
def user_errors(ui: UI):
    """User mistakes: one line, exit 2. Ctrl-C: say what is kept and how to resume, exit 130;
    SIGTERM, 143.

    Yields a dict; a command that has created its run sets "root" and "run" to it ("run" to a
    sweep program's run while it trains: its pending checkpoint is finished before exiting) and
    "resume" to the command line that continues it."""
    ctx = {}
    try:
        with signals.handled():
            yield ctx
    except UserError as exc:
        ui.console.file.flush()
        print(f"error: {' '.join(str(exc).splitlines())}", file=sys.stderr)  # one line, whatever it quotes
        raise typer.Exit(2) from None
    except OSError as exc:  # a full disk, a read-only or vanished directory: not a bug of ours
        ui.console.file.flush()
        where = f" ({exc.filename})" if exc.filename else ""
        kept = "; the last checkpoint is kept" if _kept(ctx) else ""
        print(f"error: {exc.strerror or exc}{where}{kept}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (KeyboardInterrupt, signals.Terminated) as exc:
        if "run" in ctx:  # let a checkpoint being written finish, so the last one is whole
            ctx["run"].close()
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        if _kept(ctx):
            where = f"; continue with `{ctx['resume']}`" if "resume" in ctx else ""
            print(f"{how}: the last checkpoint is kept{where}", file=sys.stderr)
        elif "resume" in ctx:  # the run directory holds its settings, and nothing trained yet
            print(f"{how} before the first checkpoint, so no training is kept; `{ctx['resume']}` starts the run "
                  f"again from step 0", file=sys.stderr)
        else:
            print(f"{how}: nothing was saved; run the command again", file=sys.stderr)
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 143) from None


def _kept(ctx: dict) -> bool:
    """Whether the run being made (ctx["root"], the one --resume continues) has kept work:
    a checkpoint, or in a sweep over programs a program's checkpoint or summary."""
    run = ctx.get("root")
    if run is None:
        return False
    runs = [run.path, *sorted((run.path / "cells").glob("*"))]
    return any(p.name.isdigit() for r in runs if (r / "checkpoints").is_dir() for p in (r / "checkpoints").iterdir()) \
        or any((r / "summary.json").is_file() for r in runs)
