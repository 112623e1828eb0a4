"""Seeds and hyperparameter grids: the members of one run, and their aggregate figures.

`--seeds N --seed s --sweep lr=1e-3,3e-4 --sweep label_noise=0,0.1` makes N × 2 × 2
members: each cell of the cartesian grid, with seeds s … s+N−1 inside each cell. Member
k is cell k // N with seed s + k % N, so with no grid member k is the run `--seed s+k`.
Every member runs in one vmapped program; only float hyperparameters can be swept, since
they are traced (a count or a shape would change the program). No JAX here.
"""

import itertools
import math

import numpy as np

from il_cli.errors import UserError, suggest

# The float hyperparameters each command traces (and so can sweep).
SWEEPABLE = {
    "bc": ("lr",),
    "dagger": ("lr", "label_noise", "beta", "beta_decay"),
    "prefs": ("lr", "temperature", "teacher_beta", "mistake_rate", "teacher_threshold"),
    "rlhf": ("kl_coef", "kl_target", "ptx_coef", "lr", "human_beta", "human_error", "demo_noise", "rm_lr", "sft_lr",
             "clip_eps", "ent_coef", "gamma", "gae_lambda"),
    "rlhf-text": ("kl_coef", "ptx_coef", "lr", "human_beta", "human_error", "demo_noise", "rm_lr", "sft_lr",
                  "pretrain_lr", "clip_eps", "vf_coef", "gae_lambda"),
    "compounding": ("lr",),
    "expert": ("lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm",
               "reward_scale"),
}


def parse_sweep(specs: list[str] | None, command: str, fields) -> tuple:
    """(("lr", (1e-3, 3e-4)), ...) from `--sweep key=v1,v2,...` options; UserError otherwise."""
    grid = []
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values:
            raise UserError(f"--sweep takes key=v1,v2,... (like lr=1e-3,3e-4), got '{spec}'")
        if key not in SWEEPABLE.get(command, ()):
            sweepable = SWEEPABLE.get(command, ())
            hint = suggest(key, sweepable)
            kind = "a count or a shape, which would change the program" if key in fields else "not an option"
            raise UserError(f"--sweep {key}: {kind}{hint}; il {command.replace('-text', ' --task text')} sweeps "
                            f"{', '.join(sweepable) or 'nothing'} (use --seeds for seeds)")
        try:
            parsed = tuple(float(v) for v in values.split(","))
        except ValueError:
            raise UserError(f"--sweep {key}: values must be numbers, got '{values}'") from None
        grid.append((key, parsed))
    return tuple(grid)


def members(seed: int, num_seeds: int, grid) -> list[dict]:
    """[{"member": k, "seed": s, "hyper": {key: value}}] in member order (cell-major)."""
    cells = list(itertools.product(*(values for _, values in grid))) or [()]
    keys = [key for key, _ in grid]
    return [{"member": c * num_seeds + i, "seed": seed + i, "cell": c,
             "hyper": dict(zip(keys, cell))}
            for c, cell in enumerate(cells) for i in range(num_seeds)]


def iqm(x, axis: int = -1):
    """Interquartile mean: the mean after trimming int(n/4) values from each end (rliable's
    `aggregate_iqm`, scipy's `trim_mean(x, 0.25)`); along `axis` of an array."""
    x = np.sort(np.asarray(x, np.float64), axis=axis)
    n = x.shape[axis]
    k = int(0.25 * n)
    result = np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def bootstrap_ci(x, num_resamples: int = 2000, alpha: float = 0.05, seed: int = 0):
    """A percentile bootstrap (1 − alpha) confidence interval of the IQM over seeds: rliable's
    stratified bootstrap, which for the runs of one task is the plain bootstrap over runs.
    (rliable itself does not import with current pandas and arch, so it is not a dependency.)"""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return [float(x[0]), float(x[0])] if len(x) else [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    stats = iqm(x[rng.integers(0, len(x), (num_resamples, len(x)))], axis=1)
    return [float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2))]


def aggregate(values) -> dict:
    """Mean, std, IQM and its 95% bootstrap CI of one figure over a cell's seeds."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "iqm": iqm(values),
            "ci95": bootstrap_ci(values), "n": int(len(values))}
