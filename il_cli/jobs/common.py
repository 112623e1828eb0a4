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


def episode_stats(episodes, policy: str) -> dict:
    """The `eval` block: return statistics over the episodes, and which policy acted."""
    returns = np.asarray(jax.device_get(episodes.returns), np.float64)
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "length_mean": float(np.mean(jax.device_get(episodes.lengths))),
            "episodes": int(len(returns)), "policy": policy}


@lru_cache(maxsize=None)
def _evaluator(env_id: str, actor, num_episodes: int, policy: str):
    env, env_params, spec = make_env(env_id)
    return jax.jit(rollout.make_episodes(env, env_params, spec, num_episodes,
                                         rollout.make_policy_act(spec, actor, policy)))


def evaluate(env_id: str, actor, params, key, num_episodes: int, policy: str = "mode") -> dict:
    """One episode in each of `num_episodes` envs, acting with the mode or sampled action."""
    return episode_stats(_evaluator(env_id, actor, num_episodes, policy)(params, key), policy)


def evaluate_against_expert(env, env_params, spec, learner, learner_params, expert_run: Run,
                            key, num_episodes: int, policy: str):
    """(expert block, ε figures): the expert evaluated with the learner's key and episode count
    (a paired return gap), and ε = TV(π̂, π*) on the learner's and on the expert's states."""
    _, expert, expert_params = load_policy(expert_run)
    paired = jax.jit(rollout.make_paired_episodes(env, env_params, spec, learner, expert,
                                                  num_episodes, policy))
    on_learner, on_expert = jax.device_get(paired((learner_params, expert_params), key))
    figures = {"tv_learner_states": float(on_learner.measure_mean["tv"]),
               "tv_learner_states_stochastic": float(on_learner.measure_mean["tv_stochastic"]),
               "tv_expert_states": float(on_expert.measure_mean["tv"]),
               "tv_expert_states_stochastic": float(on_expert.measure_mean["tv_stochastic"])}
    return {"run": str(expert_run.path), **episode_stats(on_expert, "mode")}, figures


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
            "compile": {k: round(v, 3) for k, v in COMPILE_STATS.items()}}
