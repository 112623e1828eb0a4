"""Demonstration datasets: `.npz` files (no pickle) with a JSON header.

Arrays: `obs` [N, *obs_shape], `actions` [N] (int32) or [N, action_dim] (float32),
`episode_returns` [episodes]; `header` is UTF-8 JSON with `schema_version`, `env_id`,
`obs_shape`, `action` spec, `source` (the expert's run directory), `count`, `episodes`,
`return_mean`, and `expert_action_std` for continuous actions.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from il_cli.errors import UserError

SCHEMA_VERSION = 1


def save_dataset(path, obs, actions, episode_returns, header: dict) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"schema_version": SCHEMA_VERSION, **header, "count": int(len(obs)),
              "episodes": int(len(episode_returns)),
              "return_mean": float(np.mean(episode_returns))}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, obs=obs, actions=actions, episode_returns=episode_returns,
             header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    tmp.replace(path)
    return header


def load_dataset(path, env_id: str | None = None):
    """(header, obs, actions); UserError if missing, corrupt, or from another environment."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(bytes(f["header"]).decode())
            obs, actions = f["obs"], f["actions"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not an il dataset ({exc.__class__.__name__}: {exc})") from None
    if header.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path} has dataset schema {header.get('schema_version')}, "
                        f"this il reads schema {SCHEMA_VERSION}")
    if env_id is not None and header["env_id"] != env_id:
        raise UserError(f"dataset {path} was collected on {header['env_id']}, not {env_id}; "
                        f"pass --env {header['env_id']} or collect demos for {env_id}")
    return header, obs, actions
