"""Demonstration datasets: `.npz` files (no pickle) with a JSON header.

Arrays: `obs` [N, *obs_shape], `actions` [N] (int32) or [N, action_dim] (float32),
`episode_returns` and `episode_lengths` [episodes] (rows are whole episodes, one after
another); since schema 3 also `rewards` [N], `terminated` [episodes] (ended by termination,
not the time limit) and `final_obs` [episodes, *obs_shape] (the observation the last step
reached: an episode's T+1th), what other tools' datasets hold (il_cli.interop). `header` is
UTF-8 JSON with `schema_version`, `env_id`, `obs_shape`, `action` spec, `source` (the
expert's run directory, or the dataset it was imported from, with its `provenance`),
`count`, `episodes`, `return_mean`, and `expert_action_std` for continuous actions.

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
from il_cli.envs import ALL_ENV_IDS, is_continuous, is_custom
from il_cli.errors import UserError
from il_cli.runs import DATA

SCHEMA_VERSION = 3  # 2 added episode_lengths, 3 rewards, terminated and final_obs; older ones are read without them
EPISODE_ENDS = ("rewards", "terminated", "final_obs")


class Dataset(NamedTuple):
    header: dict
    obs: np.ndarray
    actions: np.ndarray
    episode_lengths: np.ndarray | None  # None for a schema 1 dataset (no episode boundaries)
    episode_returns: np.ndarray | None = None
    rewards: np.ndarray | None = None  # the EPISODE_ENDS: None before schema 3
    terminated: np.ndarray | None = None
    final_obs: np.ndarray | None = None


def episode_returns(rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each episode's sum of rewards (float32, summed in float64: the same whatever the order),
    as every dataset il writes holds them."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.add.reduceat(rewards.astype(np.float64), starts).astype(np.float32)


def save_dataset(path, data: Dataset) -> dict:
    """Write `data` (with its header's figures filled in) to `path` atomically; its header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    episode_lengths = np.asarray(data.episode_lengths, np.int32)
    if int(episode_lengths.sum()) != len(data.obs):
        raise ValueError(f"episode lengths sum to {episode_lengths.sum()}, not {len(data.obs)} rows")
    header = {**data.header, "schema_version": SCHEMA_VERSION, "count": int(len(data.obs)),
              "episodes": int(len(data.episode_returns)),
              "return_mean": float(np.mean(data.episode_returns))}
    ends = {name: getattr(data, name) for name in EPISODE_ENDS if getattr(data, name) is not None}
    with files.atomic(path, "wb") as f:
        np.savez(f, obs=data.obs, actions=data.actions, episode_returns=data.episode_returns,
                 episode_lengths=episode_lengths, **ends,
                 header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return header


class Unreadable(ValueError):
    """A file il will not read as an .npz of arrays: not an archive at all, or an archive of
    pickled Python objects; its message says what it is instead."""


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what np.load takes for an .npz (a zip archive)


def open_npz(path):
    """np.load of an .npz archive, never unpickling (allow_pickle=False); Unreadable for
    anything else (an empty file, a bare .npy array, a pickle, text or other bytes), which
    np.load would report as pickled data to load unsafely."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith(ZIP_MAGIC):
        if not magic:
            raise Unreadable("it is empty, not an .npz archive")
        if magic.startswith(b"\x93NUMPY"):
            raise Unreadable("it is a single .npy array, not an .npz archive")
        if magic[:1] == b"\x80" and magic[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            raise Unreadable("it is a Python pickle, not an .npz archive; il never unpickles a file")
        raise Unreadable("it is not an .npz archive")
    return np.load(path, allow_pickle=False)


def read_array(f, name: str) -> np.ndarray:
    """f[name] of an open .npz; Unreadable if it holds pickled Python objects (np.load's
    message would be to load it with allow_pickle, that is to run whatever it holds)."""
    try:
        return f[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise Unreadable(f"its '{name}' array holds pickled Python objects, which il never unpickles") from None
        raise


def read_header(f) -> dict:
    """The JSON header an il .npz carries; ValueError unless it is a JSON object."""
    raw = read_array(f, "header")
    if raw.ndim != 1 or raw.dtype != np.uint8:
        raise ValueError("its header is not JSON text")
    header = json.loads(raw.tobytes().decode())
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    return header


def rows(bad, what: str = "row") -> str:
    """'rows 3, 17, 40 (and 12 more)': the indices where the boolean array `bad` is True."""
    index = np.flatnonzero(bad)
    shown = ", ".join(map(str, index[:3].tolist())) + (f" (and {len(index) - 3} more)" if len(index) > 3 else "")
    return f"{what}{'s' * (len(index) > 1)} {shown}"


def check_finite(path, name: str, a: np.ndarray):
    """UserError naming the rows of `a` (a float array, rows first) with NaN or ±inf."""
    if a.dtype.kind == "f" and a.size:
        bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        if bad.any():
            raise UserError(f"{path}: {name} has NaN or infinite values in {rows(bad)}")


def check_episode_lengths(path, lengths: np.ndarray, n: int, what: str = "episode"):
    """UserError unless `lengths` are positive integers summing to the `n` rows (whole
    episodes, one after another)."""
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise UserError(f"{path}: episode_lengths is {lengths.dtype} with shape {lengths.shape}, not one integer "
                        f"per {what}")
    bad = lengths <= 0
    if bad.any():
        raise UserError(f"{path}: episode_lengths must be positive, got "
                        f"{', '.join(map(str, lengths[bad][:3].tolist()))} for {rows(bad, what)}")
    total = sum(int(x) for x in lengths) if (lengths > n).any() else int(lengths.astype(np.int64).sum())
    if total != n:
        raise UserError(f"{path}: episode_lengths sum to {total}, but the arrays have {n} rows (a row per step, "
                        f"the {what}s one after another)")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def check_header(path, header: dict, n: int, lengths: np.ndarray | None):
    """UserError unless the header's figures (the summary reports them) agree with the arrays."""
    for key in ("count", "episodes", "return_mean", "expert_return"):
        if not _number(header.get(key)):
            raise UserError(f"{path}: its header's '{key}' is {header.get(key)!r}, not a number")
    if header["count"] != n:
        raise UserError(f"{path}: its header counts {header['count']} transitions, but obs and actions have {n} rows")
    if lengths is not None and header["episodes"] != len(lengths):
        raise UserError(f"{path}: its header counts {header['episodes']} episodes, but episode_lengths has "
                        f"{len(lengths)}")
    source = header.get("source")
    if source is not None and not isinstance(source, str):
        raise UserError(f"{path}: its header's 'source' is {source!r}, not the expert's run directory")
    std = header.get("expert_action_std")
    if std is not None and not (isinstance(std, list) and std and all(_number(v) and v > 0 for v in std)):
        raise UserError(f"{path}: its header's 'expert_action_std' is {std!r}, not a list of positive numbers")


def load_dataset(path, env_id: str | None = None) -> Dataset:
    """The dataset at `path`; UserError if missing, corrupt, or from another environment, or
    if its arrays disagree: episode lengths that are not the rows', non-finite values,
    discrete actions that are not integers, a header whose figures are not the arrays'.
    (il_cli.interop.load_any also reads other tools' datasets.)"""
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
            obs, actions = read_array(f, "obs"), read_array(f, "actions")
            lengths = read_array(f, "episode_lengths") if "episode_lengths" in f.files else None
            returns = read_array(f, "episode_returns") if "episode_returns" in f.files else None
            ends = {name: read_array(f, name) for name in EPISODE_ENDS if name in f.files}
            env = header["env_id"]
    except Unreadable as exc:
        raise UserError(f"{path} is not an il dataset: {exc}") from None
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not an il dataset ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    if (obs.ndim < 2 or actions.ndim < 1 or obs.dtype.kind not in "fiub" or actions.dtype.kind not in "fiu"
            or len(actions) != len(obs)):
        raise UserError(f"{path}: obs {obs.shape} {obs.dtype} and actions {actions.shape} {actions.dtype} "
                        f"are not a dataset's (a row of each per step)")
    if header.get("schema_version") not in range(1, SCHEMA_VERSION + 1):
        raise UserError(f"{path} has dataset schema {header.get('schema_version')}, "
                        f"this il reads schemas 1 to {SCHEMA_VERSION}")
    if env_id is not None and env != env_id:
        raise UserError(f"dataset {path} was collected on {env}, not {env_id}; "
                        f"pass --env {env} or collect demos for {env_id}")
    if not isinstance(env, str) or not (env in ALL_ENV_IDS or is_custom(env)):
        raise UserError(f"{path}: its header's env_id {env!r} is not an environment il knows")
    data = Dataset(header, obs, actions, lengths, returns, **ends)
    check_arrays(path, data)
    return data


def check_arrays(path, data: Dataset):
    """UserError unless a dataset's arrays agree: rows there, episode lengths that are the rows',
    finite values, discrete actions stored as integers, the header's figures the arrays', the
    EPISODE_ENDS' shapes (every dataset il reads, its own or imported, passes through here)."""
    header, obs, actions, lengths = data.header, data.obs, data.actions, data.episode_lengths
    if not len(obs):
        raise UserError(f"{path} holds no transitions")
    if lengths is not None:
        check_episode_lengths(path, lengths, len(obs))
    check_finite(path, "obs", obs)
    check_finite(path, "actions", actions)
    if actions.dtype.kind == "f" and not is_continuous(header["env_id"]):
        whole = actions == np.round(actions)
        detail = (f"{rows(~whole)} are not whole numbers" if not whole.all()
                  else "convert them with actions.astype(np.int32)")
        raise UserError(f"{path}: actions are {actions.dtype}, but {header['env_id']}'s actions are discrete, stored "
                        f"as integer indices; {detail}")
    check_header(path, header, len(obs), lengths)
    check_ends(path, {name: getattr(data, name) for name in EPISODE_ENDS if getattr(data, name) is not None},
               obs, lengths)


def check_ends(path, ends: dict, obs: np.ndarray, lengths: np.ndarray | None):
    """UserError unless a dataset's EPISODE_ENDS are all there (or none) with their shapes."""
    if not ends:
        return
    episodes = None if lengths is None else len(lengths)
    shapes = {"rewards": (len(obs),), "terminated": (episodes,), "final_obs": (episodes, *obs.shape[1:])}
    for name in EPISODE_ENDS:
        if name not in ends:
            raise UserError(f"{path} has {', '.join(ends)} but no {name}")
        if ends[name].shape != shapes[name]:
            raise UserError(f"{path}: {name} has shape {ends[name].shape}, not {shapes[name]}")
    check_finite(path, "rewards", ends["rewards"])


def describe_actions(discrete, dim) -> str:
    return f"{dim} discrete choices" if discrete else f"continuous, {dim}-dimensional"


def check_fits(data: Dataset, path, spec):
    """UserError unless the dataset's observations and actions have `spec`'s shapes (and
    discrete actions are in range)."""
    action_shape = () if spec.discrete else (spec.action_dim,)
    action = data.header.get("action")
    if isinstance(action, dict) and {"discrete", "dim"} <= action.keys() and \
            (action["discrete"], action["dim"]) != (spec.discrete, spec.action_dim):
        raise UserError(f"{path}: its actions are {describe_actions(action['discrete'], action['dim'])}, "
                        f"{spec.env_id}'s are {describe_actions(spec.discrete, spec.action_dim)}")
    if data.obs.shape[1:] != tuple(spec.obs_shape) or data.actions.shape[1:] != action_shape:
        raise UserError(f"{path}: observations {data.obs.shape[1:]} and actions {data.actions.shape[1:]} do not fit "
                        f"{spec.env_id} (observations {tuple(spec.obs_shape)}, actions {action_shape})")
    if spec.discrete:
        bad = (data.actions < 0) | (data.actions >= spec.action_dim)
        if bad.any():
            raise UserError(f"{path}: actions must be in 0..{spec.action_dim - 1} for {spec.env_id}, got "
                            f"{', '.join(map(str, data.actions[bad][:3].tolist()))} in {rows(bad)}")
    std = data.header.get("expert_action_std")
    if not spec.discrete and std is not None and len(std) != spec.action_dim:
        raise UserError(f"{path}: its header's 'expert_action_std' has {len(std)} values, but {spec.env_id}'s "
                        f"actions have {spec.action_dim}")


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


def load_preferences(path, env_id: str, obs_shape: tuple, discrete: bool, action_dim: int,
                     given: bool = False) -> Preferences:
    """The preference dataset at `path`, checked against the environment; UserError if it is
    missing, not ours, from another environment, or has wrong shapes, dtypes or values. A
    file the user `given` (--prefs-file) must also hold a pair put to the teacher (a
    simulated teacher that skipped every pair is reported as it is)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"preference file {path} does not exist")
    try:
        with open_npz(path) as f:
            header = read_header(f)
            missing = [name for name in PREFERENCE_ARRAYS if name not in f.files]
            arrays = {name: read_array(f, name) for name in PREFERENCE_ARRAYS if name in f.files}
    except Unreadable as exc:
        raise UserError(f"{path} is not an il preference file: {exc}") from None
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
            kinds = {"fiub": "numeric", "i": "integer", "f": "float", "b": "bool", "iu": "integer"}[kind]
            raise UserError(f"{path}: '{name}' has shape {a.shape} and dtype {a.dtype}; expected "
                            f"{shape or '[streams]'} of {kinds} dtype for {env_id}")
    if not n:
        raise UserError(f"{path} holds no preference pairs")
    check_episode_lengths(path, arrays["episode_lengths"], n, "stream")
    for name in ("obs", "action_a", "action_b"):
        check_finite(path, name, arrays[name])
    bad = ~((arrays["label"] >= 0) & (arrays["label"] <= 1))  # NaN too
    if bad.any():
        raise UserError(f"{path}: label holds probabilities P(a ≻ b), which lie in [0, 1]; got "
                        f"{', '.join(map(str, arrays['label'][bad][:3].tolist()))} in {rows(bad)}")
    for name in ("action_a", "action_b"):
        bad = (arrays[name] < 0) | (arrays[name] >= action_dim) if discrete else np.zeros(n, bool)
        if bad.any():
            raise UserError(f"{path}: {name} must be in 0..{action_dim - 1} for {env_id}, got "
                            f"{', '.join(map(str, arrays[name][bad][:3].tolist()))} in {rows(bad)}")
    if given and not arrays["asked"].any():
        raise UserError(f"{path}: no pair was put to the teacher (asked is false in every row), so there "
                        f"is nothing to learn from")
    return Preferences(header, arrays["obs"].astype(np.float32),
                       *(arrays[k].astype(np.int32 if discrete else np.float32) for k in ("action_a", "action_b")),
                       arrays["label"].astype(np.float32), arrays["asked"],
                       arrays["episode_lengths"].astype(np.int32))
