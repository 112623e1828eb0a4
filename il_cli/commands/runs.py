"""il runs / il envs: list run directories and environments."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from il_cli.commands.common import Json
from il_cli.ui import UI


def runs(
    root: Annotated[Optional[Path], typer.Argument(help="Directory holding runs.", show_default="runs")] = None,
    json: Json = False,
):
    """List runs: command, environment, final return, wall time."""
    import json as json_lib

    from il_cli.paths import runs_root
    from il_cli.runs import list_runs

    ui = UI(json)
    rows = []
    for run in list_runs(root or runs_root()):
        meta, summary = run.meta, run.summary
        ret = summary.get("eval", {}).get("return_mean") if summary else None
        rows.append({"run": str(run.path), "command": meta["command"], "env": meta["env"],
                     "return": ret, "wall_s": summary.get("wall_s") if summary else None,
                     "status": "done" if summary else "unfinished"})
    if json:
        print(json_lib.dumps({"runs": rows}))
        return
    table = Table(title=f"runs in {root or runs_root()}")
    for col in ("run", "command", "env", "return", "wall s", "status"):
        table.add_column(col, justify="right" if col in ("return", "wall s") else "left")
    for r in rows:
        table.add_row(Path(r["run"]).name, r["command"], r["env"],
                      "" if r["return"] is None else f"{r['return']:.1f}",
                      "" if r["wall_s"] is None else f"{r['wall_s']:.1f}", r["status"])
    ui.print(table)


def envs():
    """List the environments (gymnax ids) and their short aliases."""
    from il_cli.envs import ALIASES, ENV_IDS

    short = {v: k for k, v in ALIASES.items()}
    ui = UI()
    table = Table(title="environments")
    table.add_column("id")
    table.add_column("alias")
    for env_id in ENV_IDS:
        table.add_row(env_id, env_id.split("-")[0] if short.get(env_id) else "")
    ui.print(table)
