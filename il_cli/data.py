"""Demonstration datasets: `.npz` files (no pickle) with a JSON header.

Arrays: `obs` [N, *obs_shape], `actions` [N] (int32) or [N, action_dim] (float32),
`episode_returns` and `episode_lengths` [episodes] (rows are whole episodes, one after
another); `header` is UTF-8 JSON with `schema_version`, `env_id`, `obs_shape`, `action`
spec, `source` (the expert's run directory), `count`, `episodes`, `return_mean`, and
`expert_action_std` for continuous actions.

One label convention everywhere (datasets, DAgger's buffer): an action is the one the
environment received from the expert, its deterministic (mode) action clipped to the
action bounds. The expert's Gaussian mean may lie outside the bounds, where every value
acts the same; the executed action is what a recorded demonstration holds, and it keeps
the regression target bounded.
"""

import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from il_cli.errors import UserError

SCHEMA_VERSION = 2  # 2 added episode_lengths; schema 1 datasets are read without them


class Dataset(NamedTuple):
    header: dict
    obs: np.ndarray
    actions: np.ndarray
    episode_lengths: np.ndarray | None  # None for a schema 1 dataset (no episode boundaries)


def save_dataset(path, obs, actions, episode_returns, episode_lengths, header: dict) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    episode_lengths = np.asarray(episode_lengths, np.int32)
    if int(episode_lengths.sum()) != len(obs):
        raise ValueError(f"episode lengths sum to {episode_lengths.sum()}, not {len(obs)} rows")
    header = {"schema_version": SCHEMA_VERSION, **header, "count": int(len(obs)),
              "episodes": int(len(episode_returns)),
              "return_mean": float(np.mean(episode_returns))}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, obs=obs, actions=actions, episode_returns=episode_returns,
             episode_lengths=episode_lengths,
             header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    tmp.replace(path)
    return header


def load_dataset(path, env_id: str | None = None) -> Dataset:
    """The dataset at `path`; UserError if missing, corrupt, or from another environment."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(bytes(f["header"]).decode())
            obs, actions = f["obs"], f["actions"]
            lengths = f["episode_lengths"] if "episode_lengths" in f.files else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not an il dataset ({exc.__class__.__name__}: {exc})") from None
    if header.get("schema_version") not in (1, SCHEMA_VERSION):
        raise UserError(f"{path} has dataset schema {header.get('schema_version')}, "
                        f"this il reads schemas 1 and {SCHEMA_VERSION}")
    if env_id is not None and header["env_id"] != env_id:
        raise UserError(f"dataset {path} was collected on {header['env_id']}, not {env_id}; "
                        f"pass --env {header['env_id']} or collect demos for {env_id}")
    return Dataset(header, obs, actions, lengths)
