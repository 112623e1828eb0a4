"""`il collect`: expert demonstrations on vectorized environments, saved as a dataset."""

import math
import shutil
import time
from functools import lru_cache

import jax
import numpy as np

from il_cli import rollout
from il_cli.data import load_dataset, save_dataset
from il_cli.envs import make_env
from il_cli.jobs.common import base_summary, load_expert, root_key
from il_cli.runs import Run


@lru_cache(maxsize=None)
def _demo_rollout(env_id: str, actor, batch: int):
    env, env_params, spec = make_env(env_id)
    return jax.jit(rollout.make_episodes(env, env_params, spec, batch,
                                         rollout.make_policy_act(spec, actor), record=True))


def collect_demos(expert: Run, num_episodes: int, num_envs: int, key):
    """Roll the expert's deterministic policy for `num_episodes` episodes, `num_envs` at a time.

    Returns (obs [N, ...], actions [N, ...], episode_returns, episode_lengths, header, stats),
    rows episode after episode; `stats` has the transitions per second of the jitted rollouts
    after compilation. Actions are the executed (clipped) ones, the dataset convention.
    """
    spec, actor, params = load_expert(str(expert.path))
    batch = min(num_envs, num_episodes)
    t0 = time.perf_counter()
    compiled = _demo_rollout(spec.env_id, actor, batch).lower(params, key).compile()
    compile_s = time.perf_counter() - t0
    obs, actions, returns, lengths, run_s, steps = [], [], [], [], 0.0, 0
    for i in range(math.ceil(num_episodes / batch)):
        t0 = time.perf_counter()
        ep = jax.block_until_ready(compiled(params, jax.random.fold_in(key, i)))
        run_s += time.perf_counter() - t0
        ep = jax.device_get(ep)
        keep = min(batch, num_episodes - i * batch)
        valid = np.swapaxes(ep.valid, 0, 1)[:keep]  # [E, T]: each episode contiguous
        obs.append(np.swapaxes(ep.obs, 0, 1)[:keep][valid])
        actions.append(np.swapaxes(ep.actions, 0, 1)[:keep][valid])
        returns.append(ep.returns[:keep])
        lengths.append(valid.sum(axis=1))
        steps += int(ep.valid.sum())
    obs, actions, returns, lengths = map(np.concatenate, (obs, actions, returns, lengths))
    header = {"env_id": spec.env_id, "obs_shape": list(spec.obs_shape),
              "action": {"discrete": spec.discrete, "dim": spec.action_dim},
              "source": str(expert.path), "expert_return": expert.member_summary()["eval"]["return_mean"]}
    if not spec.discrete:
        header["expert_action_std"] = expert.member_summary()["expert"]["action_std"]
    stats = {"transitions": int(len(obs)), "transitions_per_s": steps / run_s,
             "compile_s": compile_s, "num_envs": batch}
    actions = actions.astype(np.int32 if spec.discrete else np.float32)
    return obs, actions, returns, lengths, header, stats


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
        load_dataset(demos, env_id)
        shutil.copyfile(demos, path)
        return path
    if episodes:
        obs, actions, returns, lengths, header, _ = collect_demos(expert(), episodes, 1024, key)
        save_dataset(path, obs, actions, returns, lengths, header)
        return path
    return None


def run_collect_prefs(cfg, run: Run, expert: Run, started) -> dict:
    """`il collect --prefs N`: the preference dataset `il prefs --seed s` would generate."""
    from il_cli.data import save_preferences
    from il_cli.jobs.prefs import generate_preferences

    t0 = time.perf_counter()
    key = jax.random.split(root_key(cfg.seed), 3)[0][None]
    [prefs] = generate_preferences([cfg], expert, cfg.prefs, key)
    generate_s = time.perf_counter() - t0
    path = run.data_dir / "prefs.npz"
    header = save_preferences(path, prefs)
    summary = base_summary("collect", cfg.env, run, cfg.seed, started)
    label = prefs.label[prefs.asked]
    summary["dataset"] = {"path": str(path), "kind": "preferences", "pairs": header["pairs"],
                          "count": header["count"], "teacher": header["teacher"],
                          "state_source": header["state_source"],
                          "ties": int(np.sum(label == 0.5)), "streams": int(len(prefs.episode_lengths))}
    summary["collect"] = {"generate_s": generate_s}
    summary["expert"] = {"run": str(expert.path), **expert.member_summary()["eval"]}
    run.write_summary(summary)
    return summary


def run_collect(cfg, run: Run, expert: Run, started) -> dict:
    if cfg.prefs:
        return run_collect_prefs(cfg, run, expert, started)
    obs, actions, returns, lengths, header, stats = collect_demos(expert, cfg.episodes, cfg.num_envs,
                                                                  root_key(cfg.seed))
    path = run.data_dir / "demos.npz"
    header = save_dataset(path, obs, actions, returns, lengths, header)
    summary = base_summary("collect", cfg.env, run, cfg.seed, started)
    summary["dataset"] = {"path": str(path), **{k: header[k] for k in ("count", "episodes", "return_mean")}}
    summary["collect"] = stats
    summary["expert"] = {"run": str(expert.path), **expert.member_summary()["eval"]}
    run.write_summary(summary)
    return summary
