"""The summary of a run: the block every command shares (command, env, run directory, seed,
wall time, device, versions, compile time) and, for a run of several members, each member's
figures with per-cell aggregates."""

import time

import numpy as np

from il_cli.loop import COMPILE_STATS, PROGRAMS, device_description
from il_cli.runs import Run


def throughput(rows: list[dict]) -> float | None:
    """Samples per second over every logged chunk (equal-sized chunks: the harmonic mean of
    the per-chunk rates), so a resumed run reports its whole training, not the last part."""
    rates = [r["samples_per_s"] for r in rows if r.get("samples_per_s")]
    return len(rates) / sum(1 / r for r in rates) if rates else None


def versions() -> dict:
    from importlib.metadata import version

    import il_cli

    out = {"il": il_cli.__version__}
    for package in ("jax", "flax", "optax", "gymnax", "orbax-checkpoint"):
        out[package] = version(package)
    return out


def base_summary(command: str, env_id: str, run: Run, seed: int, started: float) -> dict:
    return {"command": command, "env": env_id, "run_dir": str(run.path), "seed": seed,
            "wall_s": round(time.time() - started, 3), "device": device_description(),
            "versions": versions(),
            "compile": {**{k: round(v, 3) for k, v in COMPILE_STATS.items()},
                        "programs": dict(sorted(PROGRAMS.items()))}}


def run_summary(command: str, env_id: str, seed: int, run: Run, started: float, blocks: list[dict],
                members: list[dict]) -> dict:
    """The summary of a run. With one member its figures (`blocks[0]`: `eval`, `expert`, the
    command's own block, ...) are at the top level. With several, `members` lists each
    member's, `cells` gives per sweep cell the mean, std, interquartile mean and 95%
    bootstrap CI over its seeds of the return (and the return gap, or RLHF's gain), and
    `eval` summarises the members' mean returns. `members` are the il_cli.sweep entries of
    `blocks`."""
    from il_cli.envs import reference
    from il_cli.sweep import aggregate

    summary = base_summary(command, env_id, run, seed, started)
    for b in blocks:  # the expert's strength against the published figure (il expert: its own return)
        measured = b.get("eval" if command == "expert" else "expert", {})
        if "expert" in b and "return_mean" in measured and not ("reward" in b or "env_params" in b["expert"]):
            b["expert"].update(reference(env_id, measured["return_mean"]))
    if len(blocks) == 1:
        return {**summary, **blocks[0]}
    summary["members"] = [{**m, **b} for m, b in zip(members, blocks)]
    cells = {}
    for m, b in zip(members, blocks):
        cells.setdefault(m["cell"], []).append((m, b))
    summary["cells"] = []
    for cell, rows in cells.items():
        entry = {"cell": cell, "hyper": rows[0][0]["hyper"], "seeds": [m["seed"] for m, _ in rows],
                 "return": aggregate([b["eval"]["return_mean"] for _, b in rows])}
        for figure in ("return_gap", "normalized_return", "gold_gain"):  # against the expert; RLHF's over SFT
            if all(b.get(figure) is not None for _, b in rows):
                entry[figure] = aggregate([b[figure] for _, b in rows])
        summary["cells"].append(entry)
    returns = np.array([b["eval"]["return_mean"] for b in blocks])
    summary["eval"] = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                       "return_min": float(returns.min()), "return_max": float(returns.max()),
                       "over": f"the mean returns of {len(blocks)} members"}
    first = blocks[0]["eval"]
    if "length_mean" in first:  # episodes of a control task (a text task has prompts)
        summary["eval"].update(length_mean=float(np.mean([b["eval"]["length_mean"] for b in blocks])),
                               episodes=first["episodes"], policy=first["policy"])
    return summary
