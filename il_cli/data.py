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

from il_cli import files
from il_cli.errors import UserError
from il_cli.runs import DATA

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
    with files.atomic(path, "wb") as f:
        np.savez(f, obs=obs, actions=actions, episode_returns=episode_returns,
                 episode_lengths=episode_lengths,
                 header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return header


def open_npz(path):
    """np.load of an .npz archive, never unpickling (allow_pickle=False); ValueError for
    anything else (a bare .npy array, a pickle)."""
    f = np.load(path, allow_pickle=False)
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    return f


def read_header(f) -> dict:
    """The JSON header an il .npz carries; ValueError unless it is a JSON object."""
    raw = f["header"]
    if raw.ndim != 1 or raw.dtype != np.uint8:
        raise ValueError("its header is not JSON text")
    header = json.loads(raw.tobytes().decode())
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    return header


def load_dataset(path, env_id: str | None = None) -> Dataset:
    """The dataset at `path`; UserError if missing, corrupt, or from another environment."""
    path = Path(path)
    if not path.is_file():
        inside = sorted((path / DATA).glob("*.npz")) if path.is_dir() else []  # a collect run's
        hint = f" (a directory; its dataset is {inside[0]})" if len(inside) == 1 else ""
        raise UserError(f"dataset {path} is not a file{hint}" if path.exists() else f"dataset {path} does not exist")
    try:
        with open_npz(path) as f:
            header = read_header(f)
            if header.get("kind") == "preferences":
                raise UserError(f"{path} holds preferences, not demonstrations; give it to "
                                f"`il prefs --prefs-file {path}`")
            obs, actions = f["obs"], f["actions"]
            lengths = f["episode_lengths"] if "episode_lengths" in f.files else None
            env = header["env_id"]
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not an il dataset ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    if (obs.ndim < 2 or actions.ndim < 1 or obs.dtype.kind not in "fiub" or actions.dtype.kind not in "fiu"
            or len(actions) != len(obs)):
        raise UserError(f"{path}: obs {obs.shape} {obs.dtype} and actions {actions.shape} {actions.dtype} "
                        f"are not a dataset's (a row of each per step)")
    if header.get("schema_version") not in (1, SCHEMA_VERSION):
        raise UserError(f"{path} has dataset schema {header.get('schema_version')}, "
                        f"this il reads schemas 1 and {SCHEMA_VERSION}")
    if env_id is not None and env != env_id:
        raise UserError(f"dataset {path} was collected on {env}, not {env_id}; "
                        f"pass --env {env} or collect demos for {env_id}")
    return Dataset(header, obs, actions, lengths)


def check_fits(data: Dataset, path, spec):
    """UserError unless the dataset's observations and actions have `spec`'s shapes (and
    discrete actions are in range)."""
    action_shape = () if spec.discrete else (spec.action_dim,)
    if data.obs.shape[1:] != tuple(spec.obs_shape) or data.actions.shape[1:] != action_shape:
        raise UserError(f"{path}: observations {data.obs.shape[1:]} and actions {data.actions.shape[1:]} do not fit "
                        f"{spec.env_id} (observations {tuple(spec.obs_shape)}, actions {action_shape})")
    if spec.discrete and len(data.actions) and (data.actions.min() < 0 or data.actions.max() >= spec.action_dim):
        raise UserError(f"{path}: actions must be in 0..{spec.action_dim - 1} for {spec.env_id}")


# --- preference datasets ----------------------------------------------------------------

PREFERENCE_ARRAYS = ("obs", "action_a", "action_b", "label", "asked", "episode_lengths")


class Preferences(NamedTuple):
    """D = {(s, a, b, y)}: at `obs`, the teacher's P(a ≻ b) is `label` (0, ½ or 1); rows
    with `asked` False were not put to the teacher (a skipping teacher). `episode_lengths`
    are the lengths of the environment streams the states came from, one after another."""

    header: dict
    obs: np.ndarray
    action_a: np.ndarray
    action_b: np.ndarray
    label: np.ndarray
    asked: np.ndarray
    episode_lengths: np.ndarray


def save_preferences(path, prefs: Preferences) -> dict:
    """Write `prefs` (an .npz with the JSON header of demonstrations, kind "preferences")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"schema_version": SCHEMA_VERSION, "kind": "preferences", **prefs.header,
              "pairs": int(len(prefs.obs)), "count": int(np.sum(prefs.asked))}
    with files.atomic(path, "wb") as f:
        np.savez(f, **{name: getattr(prefs, name) for name in PREFERENCE_ARRAYS},
                 header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return header


def load_preferences(path, env_id: str, obs_shape: tuple, discrete: bool, action_dim: int) -> Preferences:
    """The preference dataset at `path`, checked against the environment; UserError if it is
    missing, not ours, from another environment, or has wrong shapes or dtypes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"preference file {path} does not exist")
    try:
        with open_npz(path) as f:
            header = read_header(f)
            missing = [name for name in PREFERENCE_ARRAYS if name not in f.files]
            arrays = {name: f[name] for name in PREFERENCE_ARRAYS if name in f.files}
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not an il preference file ({exc.__class__.__name__}: {exc})") from None
    if header.get("kind") != "preferences":
        raise UserError(f"{path} is not a preference file (it holds demonstrations); "
                        f"write one with `il collect --prefs N`")
    if missing:
        raise UserError(f"{path} lacks the arrays {', '.join(missing)}")
    if header.get("env_id") != env_id:
        raise UserError(f"preference file {path} was made on {header.get('env_id')}, not {env_id}; "
                        f"pass --env {header.get('env_id')}")
    n = arrays["obs"].shape[0] if arrays["obs"].ndim else 0
    action_shape = (n,) if discrete else (n, action_dim)
    expected = {"obs": ((n, *obs_shape), "fiub"), "action_a": (action_shape, "i" if discrete else "f"),
                "action_b": (action_shape, "i" if discrete else "f"), "label": ((n,), "f"),
                "asked": ((n,), "b"), "episode_lengths": (arrays["episode_lengths"].shape[:1], "iu")}
    for name, (shape, kind) in expected.items():
        a = arrays[name]
        if (shape is not None and a.shape != shape) or a.dtype.kind not in kind:
            raise UserError(f"{path}: '{name}' has shape {a.shape} and dtype {a.dtype}; expected "
                            f"{shape or '[streams]'} of dtype kind '{kind}' for {env_id}")
    if int(arrays["episode_lengths"].sum()) != n or np.any(arrays["episode_lengths"] <= 0):
        raise UserError(f"{path}: episode_lengths must be positive and sum to the {n} rows")
    if not np.all((arrays["label"] >= 0) & (arrays["label"] <= 1)):
        raise UserError(f"{path}: labels are probabilities P(a ≻ b) and must lie in [0, 1]")
    if discrete and np.any((arrays["action_a"] < 0) | (arrays["action_a"] >= action_dim)
                           | (arrays["action_b"] < 0) | (arrays["action_b"] >= action_dim)):
        raise UserError(f"{path}: actions must be in 0..{action_dim - 1} for {env_id}")
    return Preferences(header, arrays["obs"].astype(np.float32),
                       *(arrays[k].astype(np.int32 if discrete else np.float32) for k in ("action_a", "action_b")),
                       arrays["label"].astype(np.float32), arrays["asked"],
                       arrays["episode_lengths"].astype(np.int32))
