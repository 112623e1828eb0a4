"""Expert data for every job: demonstrations rolled out by an expert (or copied from a
dataset) and preference pairs judged by a simulated teacher; members' datasets padded to one
shape."""

import math
import shutil
import time
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import rollout
from il_cli.algos.prefs import make_generate, stream_lengths
from il_cli.config import TEACHER_HYPER
from il_cli.data import Dataset, Preferences, episode_returns, save_dataset
from il_cli.envs import make_env
from il_cli.evaluation import load_expert
from il_cli.interop import is_foreign, load_any
from il_cli.runs import Run, open_policy_run


@lru_cache(maxsize=None)
def _demo_rollout(env_id: str, actor, batch: int):
    env, env_params, spec = make_env(env_id)
    return jax.jit(rollout.make_episodes(env, env_params, spec, batch,
                                         rollout.make_policy_act(spec, actor), ends=True))


def collect_demos(expert: Run, num_episodes: int, num_envs: int, key) -> tuple[Dataset, dict]:
    """Roll the expert's deterministic policy for `num_episodes` episodes, `num_envs` at a time.

    Returns the dataset (rows episode after episode, with each step's reward, how each episode
    ended and its final observation) and stats: the transitions per second of the jitted
    rollouts after compilation. Actions are the executed (clipped) ones, the dataset convention.
    """
    spec, actor, params = load_expert(str(expert.path))
    batch = min(num_envs, num_episodes)
    t0 = time.perf_counter()
    compiled = _demo_rollout(spec.env_id, actor, batch).lower(params, key).compile()
    compile_s = time.perf_counter() - t0
    parts, run_s, steps = [], 0.0, 0
    for i in range(math.ceil(num_episodes / batch)):
        t0 = time.perf_counter()
        ep = jax.block_until_ready(compiled(params, jax.random.fold_in(key, i)))
        run_s += time.perf_counter() - t0
        ep = jax.device_get(ep)
        keep = min(batch, num_episodes - i * batch)
        valid = np.swapaxes(ep.valid, 0, 1)[:keep]  # [E, T]: each episode contiguous
        rows = [np.swapaxes(a, 0, 1)[:keep][valid] for a in (ep.obs, ep.actions, ep.rewards)]
        parts.append((*rows, valid.sum(axis=1), ep.terminated[:keep], ep.final_obs[:keep]))
        steps += int(ep.valid.sum())
    obs, actions, rewards, lengths, terminated, final_obs = map(np.concatenate, zip(*parts))
    header = {"env_id": spec.env_id, "obs_shape": list(spec.obs_shape),
              "action": {"discrete": spec.discrete, "dim": spec.action_dim},
              "source": str(expert.path), "expert_return": expert.member_summary()["eval"]["return_mean"]}
    if not spec.discrete:
        header["expert_action_std"] = expert.member_summary()["expert"]["action_std"]
    stats = {"transitions": int(len(obs)), "transitions_per_s": steps / run_s,
             "compile_s": compile_s, "num_envs": batch}
    actions = actions.astype(np.int32 if spec.discrete else np.float32)
    return Dataset(header, obs, actions, lengths, episode_returns(rewards, lengths), rewards, terminated,
                   final_obs), stats


def run_demos(run: Run, env_id: str, demos: str | None, episodes: int, expert, key,
              member: int | None = None):
    """The run's demonstrations: kept from an earlier start (resume), copied from the dataset
    `demos` (run/data/demos.npz, shared by every member), or `episodes` collected from
    `expert()` (a callable, so an expert is only obtained when needed) with `key`, into
    run/data/demos.npz, or demos-<member>.npz for a member of a sweep; None when there are none."""
    path = run.data_dir / ("demos.npz" if demos or member is None else f"demos-{member}.npz")
    if path.is_file():
        return path
    if demos:
        data = load_any(demos, env_id)
        if is_foreign(demos):  # converted once, with its provenance: a resumed run reads this copy
            save_dataset(path, data)
        else:
            shutil.copyfile(demos, path)
        return path
    if episodes:
        save_dataset(path, collect_demos(expert(), episodes, 1024, key)[0])
        return path
    return None


def pairing_expert(cfg, header: dict) -> Run | None:
    """The expert evaluated beside a learner: --expert, else the one that made the
    demonstrations (None if that run is no longer on this machine)."""
    if cfg.expert:
        return open_policy_run(cfg.expert, cfg.env)
    source = header.get("source")
    if source and (Path(source) / "summary.json").is_file():
        return open_policy_run(source, cfg.env)
    return None


def teacher_of(cfg) -> dict:
    return {"name": cfg.teacher, **{k: getattr(cfg, k) for k in TEACHER_HYPER}}


def generate_preferences(cfgs: list, expert_run: Run, num_prefs: int, keys) -> list[Preferences]:
    """One preference dataset per config in `cfgs` (its teacher and state source), from one
    vmapped program: environment streams of T = min(the env's time limit, ⌈num_prefs/10⌉)
    steps (so at least 10 streams, of which whole ones are held out), cut to `num_prefs` rows."""
    spec, expert, expert_params = load_expert(str(expert_run.path))
    env, env_params, _ = make_env(spec.env_id)
    horizon = min(spec.max_steps, math.ceil(num_prefs / MIN_STREAMS))
    streams = math.ceil(num_prefs / horizon)
    cfg = cfgs[0]
    generate = make_generate(env, env_params, spec, expert, streams, horizon, cfg.state_source, cfg.teacher)
    hyper = {k: jnp.array([getattr(c, k) for c in cfgs], jnp.float32) for k in TEACHER_HYPER}
    out = jax.device_get(jax.jit(jax.vmap(generate, in_axes=(0, None, 0)))(keys, expert_params, hyper))
    lengths = stream_lengths(num_prefs, horizon)
    header = {"env_id": spec.env_id, "obs_shape": list(spec.obs_shape),
              "action": {"discrete": spec.discrete, "dim": spec.action_dim}, "source": str(expert_run.path),
              "expert_return": expert_run.member_summary()["eval"]["return_mean"],
              "state_source": cfg.state_source}
    return [Preferences({**header, "teacher": teacher_of(c)},
                        *(np.asarray(out[name][k][:num_prefs]) for name in
                          ("obs", "action_a", "action_b", "label", "asked")), lengths)
            for k, c in enumerate(cfgs)]


MIN_STREAMS = 10


def padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Members' arrays of different lengths, zero-padded to the longest, stacked."""
    n = max(len(a) for a in arrays)
    return np.stack([np.concatenate([a, np.zeros((n - len(a), *a.shape[1:]), a.dtype)]) for a in arrays])
