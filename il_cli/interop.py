"""Other tools' datasets: Minari's (Farama's format for offline RL and imitation data, the
successor of D4RL; HDF5, or Arrow with pyarrow) read as il datasets, and il datasets written
as Minari datasets that `minari.load_dataset` and gymnasium users read. minari and h5py are
the `minari` extra, imported only here.

A Minari episode holds T+1 observations and T actions, rewards, terminations and
truncations; an il dataset holds the T rows, the episode's rewards, whether it ended by
termination and its final (T+1th) observation, so each converts into the other exactly.
"""

import json
import warnings
from pathlib import Path

import numpy as np

from il_cli.data import Dataset, check_arrays, episode_returns, load_dataset, rows
from il_cli.envs import ALL_ENV_IDS, is_custom
from il_cli.errors import UserError

# gymnasium's environments whose gymnax ports il runs (same dynamics, rewards and time limits;
# tests/test_interop.py replays gymnasium's episodes in gymnax and compares).
GYMNASIUM_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")
EXTRA = 'pip install -e ".[minari]"'


def _minari():
    try:
        import minari
    except ImportError:
        raise UserError(f"Minari datasets need minari and h5py: {EXTRA}") from None
    return minari


def data_path(source: str) -> Path:
    """The directory holding a Minari dataset's metadata.json: `minari:ID` in the local
    datasets directory (MINARI_DATASETS_PATH, else ~/.minari/datasets), or a dataset's directory."""
    if source.startswith("minari:"):
        dataset_id = source.removeprefix("minari:")
        from minari.storage import get_dataset_path

        path = get_dataset_path(dataset_id) / "data"
        if not dataset_id or not (path / "metadata.json").is_file():
            raise UserError(f"{source}: no Minari dataset {dataset_id!r} in {get_dataset_path()} (set "
                            f"MINARI_DATASETS_PATH, or give the dataset's directory); il never downloads: "
                            f"`minari download {dataset_id or 'ID'}` fetches a published one")
        return path
    path = Path(source)
    return path / "data" if (path / "data" / "metadata.json").is_file() else path


def _space(space, what: str, source: str) -> tuple:
    """(obs shape) of a Box observation space, or (discrete, dim) of a Discrete or 1-D Box action space."""
    from gymnasium import spaces

    if what == "observation" and isinstance(space, spaces.Box):
        return tuple(space.shape)
    if what == "action" and isinstance(space, spaces.Discrete) and space.start == 0:
        return True, int(space.n)
    if what == "action" and isinstance(space, spaces.Box) and len(space.shape) == 1:
        return False, int(space.shape[0])
    kinds = "Box" if what == "observation" else "Discrete (from 0) or one-dimensional Box"
    raise UserError(f"{source}: its {what} space is {space}; il reads {kinds} {what}s")


def is_foreign(source) -> bool:
    """A dataset in another tool's format: `minari:ID`, or a directory holding a Minari dataset."""
    path = Path(str(source))
    return str(source).startswith("minari:") or (path.is_dir() and any(
        (path / sub / "metadata.json").is_file() for sub in (".", "data")))


def load_any(source, env_id: str | None = None) -> Dataset:
    """The dataset at `source` (--demos, --pretrain-data, il data import): il's own file, or a
    Minari dataset read as one (read_foreign)."""
    return read_foreign(str(source), env_id) if is_foreign(source) else load_dataset(source, env_id)


def read_foreign(source: str, env_id: str | None) -> Dataset:
    """The Minari dataset `source` as an il dataset for `env_id` (None: the one it was recorded
    on). UserError for a dataset of an environment il has no port of, of another environment
    than `env_id`, with spaces il does not read, or unreadable."""
    minari = _minari()
    path = data_path(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = minari.MinariDataset(path)
            metadata = dataset.storage.metadata
            episodes = list(dataset.iterate_episodes())
            ours = json.loads(metadata.get("il_header", "{}"))  # a dataset il exported: its own header
            if not isinstance(ours, dict):
                raise ValueError("its il_header is not a JSON object")
    except ImportError as exc:  # an Arrow dataset without pyarrow
        raise UserError(f"{source}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 (h5py's OSError for a torn file, Minari's ValueError and asserts, ...)
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise UserError(f"{source} is not a readable Minari dataset ({exc.__class__.__name__}: {detail})") from None
    recorded = dataset.env_spec.id if dataset.env_spec is not None else None
    if ours.get("env_id"):
        env = ours["env_id"]
        if not isinstance(env, str) or not (env in ALL_ENV_IDS or is_custom(env)):
            raise UserError(f"{source}: its il_header's env_id {env!r} is not an environment il knows")
    elif recorded in GYMNASIUM_ENVS:
        env = recorded
    elif recorded is None:
        if env_id is None:
            raise UserError(f"{source} records no environment: pass --env")
        env = env_id
    else:
        raise UserError(f"{source} was recorded on gymnasium's {recorded}; il reads Minari datasets of "
                        f"{', '.join(GYMNASIUM_ENVS)} (the environments gymnax ports) and its own")
    if env_id is not None and env != env_id:
        raise UserError(f"dataset {source} was recorded on {recorded or env}, not {env_id}; pass --env {env}")
    obs_shape = _space(dataset.observation_space, "observation", source)
    discrete, dim = _space(dataset.action_space, "action", source)
    if not episodes:
        raise UserError(f"{source} holds no episodes")
    parts = []
    for ep in episodes:
        observations = np.asarray(ep.observations)
        steps = len(ep.rewards)
        if steps == 0 or observations.shape != (steps + 1, *obs_shape) or len(ep.actions) != steps:
            raise UserError(f"{source}: episode {ep.id} has {len(observations)} observations of shape "
                            f"{observations.shape[1:]}, {len(ep.actions)} actions and {steps} rewards, not T+1 "
                            f"observations of {obs_shape} for T ≥ 1 steps")
        parts.append((observations[:-1], np.asarray(ep.actions), np.asarray(ep.rewards, np.float32), steps,
                      bool(ep.terminations[-1]), observations[-1]))
    obs, actions, rewards, lengths, terminated, final_obs = (np.stack(x) if i > 2 else np.concatenate(x)
                                                             for i, x in enumerate(zip(*parts)))
    if obs.dtype.kind == "f":
        obs, final_obs = obs.astype(np.float32), final_obs.astype(np.float32)
    lengths = lengths.astype(np.int32)
    if discrete:  # Minari keeps a Discrete space's actions as int64 (or as floats, written by hand)
        whole = actions == np.round(actions)
        if not whole.all():
            raise UserError(f"{source}: discrete actions that are not whole numbers in {rows(~whole)}")
        actions = actions.astype(np.int32)
    else:
        actions = actions.astype(np.float32).reshape(len(actions), dim)
    returns = episode_returns(rewards, lengths)
    header = {"env_id": env, "obs_shape": list(obs_shape), "action": {"discrete": discrete, "dim": dim},
              "source": source, "expert_return": float(np.mean(returns)),
              **{k: ours[k] for k in ("source", "expert_return", "expert_action_std") if k in ours},
              "provenance": {"source": source, "format": "minari", "dataset_id": dataset.id,
                             "minari_version": dataset.minari_version, "data_format": metadata.get("data_format"),
                             "path": str(path.resolve()),
                             "recorded_on": recorded, "author": sorted(metadata.get("author", [])),
                             **{k: metadata[k] for k in ("algorithm_name", "code_permalink") if k in metadata}},
              "count": int(len(obs)), "episodes": int(len(lengths)), "return_mean": float(np.mean(returns))}
    data = Dataset(header, obs, actions, lengths, returns, rewards, terminated, final_obs)
    check_arrays(source, data)
    return data


def _spaces(env_id: str):
    """(observation space, action space, gymnasium id or None) for an il environment: gymnasium's
    own spaces where gymnax ports the environment, else Boxes and Discretes of il's spec."""
    from gymnasium import spaces

    from il_cli.envs import make_env

    if env_id in GYMNASIUM_ENVS:
        import gymnasium

        env = gymnasium.make(env_id)
        return env.observation_space, env.action_space, env_id
    spec = make_env(env_id)[2]
    obs = spaces.Box(-np.inf, np.inf, tuple(spec.obs_shape), np.float32)
    action = (spaces.Discrete(spec.action_dim) if spec.discrete else
              spaces.Box(np.array(spec.action_low, np.float32), np.array(spec.action_high, np.float32)))
    return obs, action, None


def check_export_target(dataset_id: str):
    """UserError unless Minari is installed and has no local dataset `dataset_id` yet."""
    _minari()
    from minari.storage import get_dataset_path

    if get_dataset_path(dataset_id).exists():
        raise UserError(f"a Minari dataset {dataset_id} already exists in {get_dataset_path()}; choose another "
                        f"name or version (Minari never overwrites one)")


def export_minari(dataset: str, dataset_id: str, author: str | None, description: str | None) -> dict:
    """Write the il dataset at `dataset` as the Minari dataset `dataset_id` in the local
    datasets directory; what was written."""
    minari = _minari()
    data = load_dataset(dataset)
    if data.final_obs is None:
        raise UserError(f"{dataset} has no per-step rewards or final observations (an il dataset before schema 3), "
                        f"which a Minari episode holds; collect it again with `il collect`")
    from minari.data_collector import EpisodeBuffer
    from minari.storage import get_dataset_path

    check_export_target(dataset_id)
    env = data.header["env_id"]
    obs_space, action_space, gym_id = _spaces(env)
    starts = np.concatenate([[0], np.cumsum(data.episode_lengths)])
    buffers = []
    for i, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        ended = np.zeros(b - a, bool)
        ended[-1] = True
        buffers.append(EpisodeBuffer(
            id=i, observations=np.concatenate([data.obs[a:b], data.final_obs[i][None]]), actions=data.actions[a:b],
            rewards=data.rewards[a:b], terminations=ended & bool(data.terminated[i]),
            truncations=ended & (not data.terminated[i]), infos={}))
    header = {k: data.header[k] for k in ("env_id", "source", "expert_return", "expert_action_std")
              if k in data.header}
    algorithm = data.header.get("provenance", {}).get("algorithm_name") or f"il expert {data.header.get('source')}"
    try:
        with warnings.catch_warnings():  # (Minari warns about each metadata field left empty)
            warnings.simplefilter("ignore")
            written = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=gym_id, observation_space=obs_space, action_space=action_space,
                algorithm_name=algorithm, author=author,
                description=description or (f"{len(buffers)} episodes of {algorithm} on gymnax's {env}"
                                            + (f" (gymnasium's {gym_id}: the same dynamics)" if gym_id else "")))
        written.storage.update_metadata({"il_header": json.dumps(header)})
    except (ValueError, AssertionError) as exc:  # (an id it cannot parse, metadata it will not take)
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise UserError(f"Minari refused {dataset_id}: {detail}") from None
    return {"dataset_id": dataset_id, "path": str(get_dataset_path(dataset_id)), "env": gym_id or env,
            "episodes": len(buffers), "steps": int(len(data.obs)), "minari_version": minari.__version__,
            "load": f"minari.load_dataset({dataset_id!r})"}
