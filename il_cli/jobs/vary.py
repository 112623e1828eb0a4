"""`il eval --vary`: policies evaluated over a grid of environment parameters (dynamics shift).

gymnax keeps the dynamics in an explicit `env_params` pytree, so a grid of variants is one
vmapped evaluation: episodes × grid points × members in one program per run. Member k of
every run is evaluated at every grid point on the key plain `il eval` gives it (a paired
comparison across runs and grid points).
"""

import itertools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import files, rollout
from il_cli.envs import DERIVED, check_grid, make_env
from il_cli.errors import UserError
from il_cli.evaluation import eval_key, load_policy
from il_cli.loop import device_description, jit_members
from il_cli.runs import Run
from il_cli.summaries import base_summary


def grid_points(vary: tuple) -> list[dict]:
    """The cartesian product of the varied values, the first parameter varying slowest."""
    names = [name for name, _ in vary]
    return [dict(zip(names, values)) for values in itertools.product(*(values for _, values in vary))]


def make_grid_eval(env_id: str, actor, num_episodes: int, policy: str, names: tuple):
    """evaluate(params [M, ...], values [G, len(names)], keys [M]) -> returns [M, G, episodes]:
    `num_episodes` episodes of every member at every grid point, member m's with keys[m] at
    every point."""
    env, env_params, spec = make_env(env_id)
    derive = DERIVED.get(env_id, lambda p: p)
    act = rollout.make_policy_act(spec, actor, policy)

    def one(params, values, key):
        variant = derive(env_params.replace(**{n: values[i] for i, n in enumerate(names)}))
        return rollout.make_episodes(env, variant, spec, num_episodes, act)(params, key).returns

    over_grid = jax.vmap(one, in_axes=(None, 0, None))
    return jit_members(jax.vmap(over_grid, in_axes=(0, None, 0)))


def ci95(returns) -> dict:
    """Mean and 95% normal-approximation CI of the mean over all episodes given."""
    x = np.asarray(returns, np.float64).ravel()
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else 0.0
    return {"mean": float(x.mean()), "ci95": [float(x.mean() - half), float(x.mean() + half)],
            "std": float(x.std()), "episodes": int(x.size)}


def run_vary(runs: list[str], vary: tuple, episodes: int | None, seed: int | None, policy: str | None,
             out_dir: str | None, ui) -> dict:
    """Every run's members over the grid, on the same keys; vary.json and vary.png in
    `out_dir` (default: the first run's directory)."""
    from il_cli.plots import plot_vary

    started = time.time()
    opened = [Run.open(path) for path in runs]
    env_ids = {run.meta["env"] for run in opened}
    if len(env_ids) > 1:
        raise UserError(f"--vary compares runs on one environment; these ran on {', '.join(sorted(env_ids))}")
    env_id = env_ids.pop()
    for run in opened:
        if not run.meta.get("policy_path"):
            raise UserError(f"{run.path} is an il {run.meta['command']} run, which has no policy to evaluate")
    defaults = check_grid(env_id, vary)
    ui.header("eval --vary", env_id, opened[0].path, device_description())
    own = opened[0].meta["config"]
    seed = own["seed"] if seed is None else seed
    episodes = own.get("eval_episodes", 100) if episodes is None else episodes
    policy = own.get("eval_policy", "mode") if policy is None else policy
    names = tuple(name for name, _ in vary)
    points = grid_points(vary)
    values = jnp.asarray([[p[n] for n in names] for p in points], jnp.float32)
    results = []
    for run in opened:
        _, actor, params = load_policy(run, member=None)
        # member k on the key plain `il eval` gives it (seed + k): paired across runs and grid points
        keys = jnp.stack([eval_key(seed + k) for k in range(len(run.members))])
        returns = np.asarray(jax.device_get(make_grid_eval(env_id, actor, episodes, policy, names)(
            params, values, keys)), np.float64)  # as plain evaluation averages them
        per_point = [{"point": p, **ci95(returns[:, g]),
                      "members": [float(returns[m, g].mean()) for m in range(returns.shape[0])]}
                     for g, p in enumerate(points)]
        results.append({"run": str(run.path), "command": run.meta["command"], "members": int(returns.shape[0]),
                        "grid": per_point})
    out = run_dir_for(out_dir, opened[0])
    summary = base_summary("eval", env_id, opened[0], seed, started)
    summary.update(vary={n: list(v) for n, v in vary}, defaults=defaults, episodes=episodes, policy=policy,
                   results=results)
    files.write_text(out / "vary.json", json.dumps(summary, indent=1))
    summary["plot"] = str(plot_vary(out / "vary.png", env_id, summary))
    summary["json"] = str(out / "vary.json")
    return summary


def run_dir_for(out_dir, first: Run):
    from pathlib import Path

    out = Path(out_dir) if out_dir else first.path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror}") from None
    return out
