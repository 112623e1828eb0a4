"""Pieces every job uses: keys, policy loading, evaluation, the summary's common block."""

import time
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.envs import EnvSpec, make_env
from il_cli.errors import UserError
from il_cli.loop import COMPILE_STATS, device_description
from il_cli.runs import Run

EVAL_STREAM = 0xE7A1  # evaluation keys are never training keys


def root_key(seed: int):
    return jax.random.PRNGKey(seed)


def eval_key(seed: int):
    """The evaluation key of a run with this seed (`il eval` uses the same one)."""
    return jax.random.fold_in(root_key(seed), EVAL_STREAM)


def spec_from_json(d: dict) -> EnvSpec:
    return EnvSpec(d["env_id"], tuple(d["obs_shape"]), d["discrete"], d["action_dim"],
                   tuple(d["action_low"]), tuple(d["action_high"]), d["max_steps"])


def load_policy(run: Run):
    """(spec, actor, actor_params) of any run with a saved policy."""
    meta = run.meta
    spec = spec_from_json(meta["spec"])
    actor = networks.make_actor(spec, meta["config"]["hidden"], meta["config"].get("activation", "tanh"))
    try:
        tree = run.restore_raw()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot read the checkpoint of {run.path}: {exc}") from None
    for part in meta["policy_path"]:
        tree = tree[part]
    return spec, actor, jax.tree.map(jnp.asarray, tree)


@lru_cache(maxsize=None)
def _evaluator(env_id: str, actor, num_episodes: int):
    env, env_params, spec = make_env(env_id)
    return jax.jit(rollout.make_episodes(env, env_params, spec, num_episodes,
                                         rollout.make_policy_act(spec, actor)))


def evaluate(env_id: str, actor, params, key, num_episodes: int) -> dict:
    """Deterministic (mode) actions, one episode in each of `num_episodes` envs."""
    episodes = jax.device_get(_evaluator(env_id, actor, num_episodes)(params, key))
    returns = np.asarray(episodes.returns, np.float64)
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "length_mean": float(np.mean(episodes.lengths)), "episodes": num_episodes}


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
            "compile": {k: round(v, 3) for k, v in COMPILE_STATS.items()}}
