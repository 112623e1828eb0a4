"""il runs / il envs: list run directories and environments."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from il_cli.commands.common import Json, user_errors
from il_cli.registry import COMMANDS
from il_cli.ui import UI


def runs(
    root: Annotated[Optional[Path], typer.Argument(help="Directory holding runs.", show_default="runs")] = None,
    group: Annotated[bool, typer.Option("--group", help="One row per sweep cell, pooling the seeds of runs that differ only in seed (each seed once): IQM and 95% CI of the return.")] = False,
    command: Annotated[Optional[str], typer.Option("--command", help=f"Only runs of this command ({', '.join(COMMANDS)}).")] = None,
    env: Annotated[Optional[str], typer.Option("--env", "-e", help="Only runs on this environment (id or alias).")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only runs started since a date (2026-11-26, 2026-11-26T14:00) or within a span (30m, 6h, 2d).")] = None,
    sort: Annotated[Optional[str], typer.Option(help="Order: time (oldest first), return (best first), wall (fastest first).", show_default="time")] = None,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option("--compare", help="Two runs (--compare A B) whose configs are printed side by side, differences highlighted.")] = None,
    json: Json = False,
):
    """List runs: command, environment, final return, wall time; filter, sort, compare."""
    import json as json_lib

    from il_cli.catalogue import filter_runs, group_runs, list_runs, run_row, sort_rows
    from il_cli.errors import UserError
    from il_cli.paths import runs_root

    ui = UI(json)
    with user_errors(ui):
        if compare:
            return compare_runs(ui, compare, json)
        if sort not in (None, "time", "return", "wall"):
            raise UserError(f"--sort must be time, return or wall, got '{sort}'")
        found = filter_runs(list_runs(root or runs_root()), command=command, env=env, since=since)
    if group:
        rows = group_runs(found)
        if json:
            print(json_lib.dumps({"groups": rows}))
            return
        repeats = sum(r["repeats"] for r in rows)
        table = Table(title=f"sweep cells in {root or runs_root()}", caption=(
            f"each seed counted once: {repeats} member{'s' * (repeats > 1)} with a seed already counted left out"
            if repeats else None))
        for col in ("command", "env", "cell", "seeds", "return IQM [95% CI]", "mean ± std", "runs"):
            table.add_column(col, justify="right" if col in ("seeds", "runs") else "left")
        for r in rows:
            a = r["return"]
            table.add_row(r["command"], r["env"], r["cell"], str(a["n"]) + (f" (+{r['repeats']} again)" if r["repeats"] else ""),
                          f"{a['iqm']:.1f} [{a['ci95'][0]:.1f}, {a['ci95'][1]:.1f}]",
                          f"{a['mean']:.1f} ± {a['std']:.1f}", ", ".join(Path(p).name for p in r["runs"]))
        ui.print(table)
        return
    rows = sort_rows([run_row(run) for run in found], sort or "time")
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


def compare_runs(ui: UI, paths: tuple[Path, Path], json: bool):
    """Two runs' command, environment and config side by side; differing rows highlighted."""
    import json as json_lib

    from il_cli.runs import Run

    a, b = (Run.open(p).meta for p in paths)
    fields = {"command": (a["command"], b["command"]), "env": (a["env"], b["env"])}
    for key in sorted(set(a["config"]) | set(b["config"])):
        fields[key] = (a["config"].get(key, "–"), b["config"].get(key, "–"))
    differences = [k for k, (x, y) in fields.items() if x != y]
    if json:
        print(json_lib.dumps({"runs": [str(p) for p in paths], "fields": fields, "differences": differences}))
        return
    table = Table(title=f"{len(differences)} of {len(fields)} fields differ")
    table.add_column("field")
    for p in paths:
        table.add_column(Path(p).name)
    for key, (x, y) in fields.items():
        style = "bold yellow" if key in differences else None
        table.add_row(key, json_lib.dumps(x), json_lib.dumps(y), style=style)
    ui.print(table)


def envs():
    """List the environments (gymnax's and this package's own), their short aliases, the ones with a
    shipped expert recipe and their published PPO returns; your own: --env package.module:Class."""
    from il_cli.envs import ALIASES, ALL_ENV_IDS, EXACT_ENV_IDS, OWN_ENV_IDS, REFERENCE_RETURNS
    from il_cli.recipe import shipped_recipe

    short = {v: k for k, v in ALIASES.items()}
    ui = UI()
    table = Table(title="environments (your own: --env package.module:Class)")
    for column in ("id", "alias", "from", "expert recipe", "published PPO return"):
        table.add_column(column)
    for env_id in ALL_ENV_IDS:
        recipe = shipped_recipe(env_id)
        kind = " (exact)" if env_id in EXACT_ENV_IDS else ""
        table.add_row(env_id, env_id.split("-")[0] if short.get(env_id) else "",
                      "il" if env_id in OWN_ENV_IDS else "gymnax", f"{recipe}{kind}" if recipe else "",
                      f"{REFERENCE_RETURNS[env_id]:g}" if env_id in REFERENCE_RETURNS else "")
    ui.print(table)
