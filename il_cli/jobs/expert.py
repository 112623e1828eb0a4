"""`il expert`: train a PPO expert; and the cache of experts that other commands draw on."""

import os
import shutil
import time

import jax
import numpy as np

from il_cli import config as config_lib
from il_cli.algos.ppo import make_ppo
from il_cli.config import PPOConfig
from il_cli.envs import make_env
from il_cli.jobs.common import base_summary, eval_key, evaluate, root_key
from il_cli.loop import chunk_length, device_description, run_chunks
from il_cli.paths import cache_dir
from il_cli.runs import Run, open_expert
from il_cli.ui import UI

def train_expert(cfg: PPOConfig, run: Run, ui: UI) -> dict:
    """Train PPO per `cfg` in `run`, continuing from its last checkpoint if it has one; the summary."""
    started = time.time()
    env, env_params, spec = make_env(cfg.env)
    actor, init, train_chunk = make_ppo(cfg, env, env_params, spec)
    chunk = chunk_length(cfg.num_updates, cfg.num_chunks)
    state = jax.jit(init)(root_key(cfg.seed))
    state, start = run.continue_from_checkpoint(state)
    steps_per_update = cfg.num_envs * cfg.num_steps
    chunk_fn = jax.jit(lambda s: train_chunk(s, chunk))

    def summarize(step, m, state):
        count = float(m["episodes"].sum())
        ret = evaluate(cfg.env, actor, state.params["actor"], eval_key(cfg.seed), cfg.eval_episodes,
                       cfg.eval_policy)
        return {"timesteps": step * steps_per_update,
                "train_return": float(m["episode_return_sum"].sum() / count) if count else None,
                "return": ret["return_mean"], "loss": float(m["loss"].mean()),
                "entropy": float(m["entropy"].mean())}

    with ui.progress(cfg.num_updates, "update") as progress:
        state, _ = run_chunks(state, chunk_fn, total=cfg.num_updates, chunk=chunk, start=start,
                           run=run, progress=progress, summarize=summarize)
    run.wait()
    summary = base_summary("expert", cfg.env, run, cfg.seed, started)
    summary["eval"] = evaluate(cfg.env, actor, state.params["actor"], eval_key(cfg.seed),
                               cfg.eval_episodes, cfg.eval_policy)
    summary["expert"] = {"timesteps": cfg.num_updates * steps_per_update, "updates": cfg.num_updates}
    if not spec.discrete:
        log_std = state.params["actor"]["params"]["log_std"]
        summary["expert"]["action_std"] = np.exp(np.asarray(log_std)).tolist()
    run.write_summary(summary)
    return summary


def default_expert_config(env_id: str) -> PPOConfig:
    """The shipped recipe for this environment (recipes/<short name>.toml), else defaults."""
    short = env_id.split("-")[0].lower()
    if (config_lib.RECIPE_DIR / f"{short}.toml").is_file():
        return config_lib.build_config(PPOConfig, "expert", short, env=env_id)
    return PPOConfig(env=env_id)


def get_expert(env_id: str, expert: str | None, ui: UI) -> Run:
    """The expert run to imitate: `expert` if given, else the cached one, trained on first use."""
    if expert:
        return open_expert(expert, env_id)
    cached = cache_dir() / "experts" / env_id
    if (cached / "summary.json").is_file():
        return Run(cached)
    cfg = default_expert_config(env_id)
    ui.print(f"no cached expert for {env_id}: training one with PPO "
             f"({cfg.total_timesteps} steps) into {cached}")
    tmp = cached.with_name(f".{env_id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run = Run.create(tmp.parent, "expert", env_id, None, config_lib.to_json(cfg),
                     make_env(env_id)[2].to_json(), run_dir=str(tmp))
    summary = train_expert(cfg, run, ui)
    run.close()
    if cached.exists() and not (cached / "summary.json").is_file():
        shutil.rmtree(cached)  # an unfinished cache entry
    try:
        tmp.rename(cached)
    except OSError:  # another process cached one meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    ui.print(f"expert for {env_id}: return {summary['eval']['return_mean']:.1f} "
             f"(device {device_description()})")
    return Run(cached)
