"""Seeds and hyperparameter grids: the members of one run, and their aggregate figures.

`--seeds N --seed s --sweep lr=1e-3,3e-4 --sweep label_noise=0,0.1` makes N × 2 × 2
members: each cell of the cartesian grid, with seeds s … s+N−1 inside each cell. Member
k is cell k // N with seed s + k % N, so with no grid member k is the run `--seed s+k`.
Float hyperparameters are traced, so all their members run in one vmapped program. A
count or a shape (hidden sizes, num_envs, ...) changes the program: a sweep over one runs a
program per value, one after another, each a run of its own in RUN/cells/<key=value>/ (the
float grid vmapped inside it). Shape keys vary slowest in the member order, so each program's
members are a contiguous block. No JAX here.
"""

import dataclasses
import itertools
import math

import numpy as np

from il_cli.errors import UserError, suggest
from il_cli.options import fields_of, traced

NOT_SHAPES = ("seed", "seeds", "num_chunks")


def shape_keys(cls) -> tuple:
    """The counts and shapes a config class `cls` sweeps one program per value: its fields of
    type int or tuple[int, ...] (none where the command's program is its own grid)."""
    if not cls.program_sweeps:
        return ()
    return tuple(sorted(name for name, f in fields_of(cls).items() if name not in NOT_SHAPES
                        and f.metadata.get("cli", True) and f.type in (int, int | None, tuple[int, ...])))


def show(value) -> str:
    """A swept value as the command line writes it: 0.001, 128, 64x64 (hidden sizes)."""
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def spec(key: str, values) -> str:
    """The `--sweep` option that parses back to exactly (key, values)."""
    return f"{key}=" + ",".join("x".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v) for v in values)


def describe(hyper: dict, sep: str = ", ") -> str:
    """A sweep cell's values, `hidden=64x64, lr=0.001`."""
    return sep.join(f"{k}={show(v)}" for k, v in hyper.items())


def _shape_value(key: str, kind, text: str):
    try:
        if kind == tuple[int, ...]:
            return tuple(int(v) for v in text.split("x"))
        return int(text)
    except ValueError:
        example = "64x64 (layer sizes joined by x)" if kind == tuple[int, ...] else "a whole number"
        raise UserError(f"--sweep {key}: each value must be {example}, got '{text}'") from None


def parse_sweep(specs: list[str] | None, cls) -> tuple:
    """(("hidden", ((64, 64), (256, 256))), ("lr", (1e-3, 3e-4)), ...) from `--sweep key=v1,v2`
    options for the config class `cls`, shape keys first (they vary slowest); UserError
    otherwise. Its traced fields (il_cli.options) sweep in one program."""
    grid = []
    fields, shapes, sweepable = fields_of(cls), shape_keys(cls), traced(cls)
    for option in specs or ():
        key, sep, values = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values:
            raise UserError(f"--sweep takes key=v1,v2,... (like lr=1e-3,3e-4), got '{option}'")
        if key in shapes:
            parsed = tuple(_shape_value(key, fields[key].type, v.strip()) for v in values.split(","))
        elif key in sweepable:
            try:
                parsed = tuple(float(v) for v in values.split(","))
            except ValueError:
                raise UserError(f"--sweep {key}: values must be numbers, got '{values}'") from None
        else:
            kind = "a choice, not a number" if key in fields else "not an option"
            also = f"; and, one program per value, {', '.join(shapes)}" if shapes else ""
            raise UserError(f"--sweep {key}: {kind}{suggest(key, (*sweepable, *shapes))}; il {cls.command} sweeps "
                            f"{', '.join(sweepable) or 'nothing'} in one program{also} (use --seeds for seeds)")
        grid.append((key, parsed))
    return tuple(sorted(grid, key=lambda item: item[0] not in shapes))


def split_grid(grid) -> tuple[tuple, tuple]:
    """(shape grid, float grid): the keys that need a program per value, and the traced ones."""
    shape = tuple((k, v) for k, v in grid if not isinstance(v[0], float))
    return shape, tuple((k, v) for k, v in grid if isinstance(v[0], float))


def programs(grid) -> list[dict]:
    """The programs of a grid with shape keys: [{"hyper": {"hidden": (64, 64)}, "dir": "cells/hidden=64x64"}];
    [] when every key is traced (one program, the run itself)."""
    shape, _ = split_grid(grid)
    if not shape:
        return []
    keys = [k for k, _ in shape]
    return [{"hyper": dict(zip(keys, values)), "dir": "cells/" + describe(dict(zip(keys, values)), ",")}
            for values in itertools.product(*(v for _, v in shape))]


def program_config(cfg, hyper: dict):
    """The config of one program of `cfg`'s grid: its shape values set, the float grid kept."""
    hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
    return dataclasses.replace(cfg, sweep=split_grid(cfg.sweep)[1], **hyper)


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
