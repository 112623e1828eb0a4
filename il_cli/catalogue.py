"""The catalogue of run directories behind `il runs`: list, filter, sort, and pool the seeds of
runs that ran the same thing (`--group`)."""

import json
import time
from pathlib import Path

from il_cli.errors import UserError
from il_cli.runs import CONFIG, Run


def list_runs(root) -> list[Run]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((Run(p) for p in root.iterdir() if (p / CONFIG).is_file()),
                  key=lambda r: r.path.name)


def parse_since(since: str) -> float:
    """A time (seconds since the epoch) from a date or date-time (2026-11-26, 2026-11-26T14:00)
    or a span back from now (30m, 6h, 2d)."""
    import datetime
    import re

    span = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", since.strip())
    if span:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[span.group(2)]
        return time.time() - float(span.group(1)) * seconds
    try:
        return datetime.datetime.fromisoformat(since.strip()).timestamp()
    except ValueError:
        raise UserError(f"--since takes a date like 2026-11-26, a date-time like 2026-11-26T14:00, "
                        f"or a span like 30m, 6h, 2d; got '{since}'") from None


def started(run: Run) -> float:
    """When the run was made: its config.json is written once, at the start."""
    return (run.path / CONFIG).stat().st_mtime


def filter_runs(runs: list[Run], command: str | None = None, env: str | None = None,
                since: str | None = None) -> list[Run]:
    """The runs of `command`, on `env` (an id or alias), started since `since`."""
    from il_cli.envs import resolve_env_id
    from il_cli.errors import suggest
    from il_cli.registry import COMMANDS

    if command is not None and command not in COMMANDS:
        raise UserError(f"--command must be one of {', '.join(COMMANDS)}, got '{command}'"
                        f"{suggest(command, COMMANDS)}")
    env_id = resolve_env_id(env) if env is not None else None
    after = parse_since(since) if since is not None else None
    return [run for run in runs
            if (command is None or run.meta["command"] == command)
            and (env_id is None or run.meta["env"] == env_id)
            and (after is None or started(run) >= after)]


def run_row(run: Run) -> dict:
    """One line of `il runs`."""
    meta, summary = run.meta, run.summary
    return {"run": str(run.path), "command": meta["command"], "env": meta["env"],
            "members": len(run.members), "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started(run))),
            "return": summary.get("eval", {}).get("return_mean") if summary else None,
            "wall_s": summary.get("wall_s") if summary else None,
            "status": "done" if summary else "unfinished"}


def sort_rows(rows: list[dict], by: str) -> list[dict]:
    """time: oldest first; return: best first; wall: fastest first (runs without the figure last)."""
    if by == "time":
        return sorted(rows, key=lambda r: (r["started"], r["run"]))
    key = {"return": lambda r: -r["return"], "wall": lambda r: r["wall_s"]}[by]
    field = {"return": "return", "wall": "wall_s"}[by]
    return sorted((r for r in rows if r[field] is not None), key=key) + [r for r in rows if r[field] is None]


def group_runs(runs: list[Run]) -> list[dict]:
    """Finished runs pooled by what they ran: (command, env, the config with the member's
    hyperparameters, apart from seeds). One entry per such cell, with the final returns of its
    members aggregated over distinct seeds (mean, std, IQM, 95% bootstrap CI;
    il_cli.sweep.aggregate), so the seed blocks of a job array come together. A seed that
    occurs again (the same run repeated) counts once, the first run's, and `repeats` says how
    many were left out."""
    from il_cli.sweep import aggregate, describe

    groups = {}
    for run in runs:
        summary = run.summary
        if summary is None:
            continue
        meta = run.meta
        config = {k: v for k, v in meta["config"].items() if k not in ("seed", "seeds", "sweep", "tensorboard")}
        for member in summary.get("members") or [{**run.members[0], **summary}]:
            key = json.dumps([meta["command"], meta["env"], {**config, **member["hyper"]}], sort_keys=True)
            group = groups.setdefault(key, {
                "command": meta["command"], "env": meta["env"],
                "cell": describe(member["hyper"]) or "–",
                "returns": {}, "runs": [], "repeats": 0})
            if group["cell"] == "–" and member["hyper"]:  # a single run pooled with a sweep's cell
                group["cell"] = describe(member["hyper"])
            if member["seed"] in group["returns"]:
                group["repeats"] += 1
                continue
            group["returns"][member["seed"]] = member["eval"]["return_mean"]
            if str(run.path) not in group["runs"]:
                group["runs"].append(str(run.path))
    return [{"command": g["command"], "env": g["env"], "cell": g["cell"], "runs": g["runs"],
             "seeds": sorted(g["returns"]), "repeats": g["repeats"],
             "return": aggregate(list(g["returns"].values()))} for g in groups.values()]


