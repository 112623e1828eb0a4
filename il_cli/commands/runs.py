"""il runs / il envs: list run directories and environments."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from il_cli.commands.common import Json
from il_cli.ui import UI


def runs(
    root: Annotated[Optional[Path], typer.Argument(help="Directory holding runs.", show_default="runs")] = None,
    group: Annotated[bool, typer.Option("--group", help="One row per sweep cell, pooling the seeds of runs that differ only in seed: IQM and 95% CI of the return.")] = False,
    json: Json = False,
):
    """List runs: command, environment, final return, wall time."""
    import json as json_lib

    from il_cli.paths import runs_root
    from il_cli.runs import group_runs, list_runs

    ui = UI(json)
    found = list_runs(root or runs_root())
    if group:
        rows = group_runs(found)
        if json:
            print(json_lib.dumps({"groups": rows}))
            return
        table = Table(title=f"sweep cells in {root or runs_root()}")
        for col in ("command", "env", "cell", "seeds", "return IQM [95% CI]", "mean ± std", "runs"):
            table.add_column(col, justify="right" if col in ("seeds", "runs") else "left")
        for r in rows:
            a = r["return"]
            table.add_row(r["command"], r["env"], r["cell"], str(a["n"]),
                          f"{a['iqm']:.1f} [{a['ci95'][0]:.1f}, {a['ci95'][1]:.1f}]",
                          f"{a['mean']:.1f} ± {a['std']:.1f}", ", ".join(Path(p).name for p in r["runs"]))
        ui.print(table)
        return
    rows = []
    for run in found:
        meta, summary = run.meta, run.summary
        ret = summary.get("eval", {}).get("return_mean") if summary else None
        rows.append({"run": str(run.path), "command": meta["command"], "env": meta["env"],
                     "members": len(run.members), "return": ret,
                     "wall_s": summary.get("wall_s") if summary else None,
                     "status": "done" if summary else "unfinished"})
    if json:
        print(json_lib.dumps({"runs": rows}))
        return
    table = Table(title=f"runs in {root or runs_root()}")
    for col in ("run", "command", "env", "members", "return", "wall s", "status"):
        table.add_column(col, justify="right" if col in ("members", "return", "wall s") else "left")
    for r in rows:
        table.add_row(Path(r["run"]).name, r["command"], r["env"], str(r["members"]),
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
