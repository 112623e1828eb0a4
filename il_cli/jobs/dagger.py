"""`il dagger`: DAgger with β schedules, supervisor-burden accounting and noisy supervisors."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks
from il_cli.algos.dagger import make_dagger
from il_cli.config import DAggerConfig
from il_cli.data import load_dataset
from il_cli.envs import make_env
from il_cli.jobs.collect import run_demos
from il_cli.jobs.common import base_summary, eval_key, evaluate, evaluate_against_expert, load_policy, root_key
from il_cli.jobs.expert import get_expert
from il_cli.loop import run_chunks
from il_cli.runs import Run


def seed_demos(cfg: DAggerConfig, run: Run, expert: Run, spec, collect_key):
    """(obs, actions) that seed D: --demos, or --episodes collected, or none."""
    path = run_demos(run, cfg.env, cfg.demos, cfg.episodes, lambda: expert, collect_key)
    if path is not None:
        data = load_dataset(path, cfg.env)
        return data.obs, data.actions
    action_shape = () if spec.discrete else (spec.action_dim,)
    return (np.zeros((0, *spec.obs_shape), np.float32),
            np.zeros((0, *action_shape), np.int32 if spec.discrete else np.float32))


def run_dagger(cfg: DAggerConfig, run: Run, ui) -> dict:
    started = time.time()
    expert_run = get_expert(cfg.env, cfg.expert, ui)
    spec, expert_actor, expert_params = load_policy(expert_run)
    env, env_params, _ = make_env(cfg.env)
    collect_key, init_key = jax.random.split(root_key(cfg.seed))
    demo_obs, demo_actions = seed_demos(cfg, run, expert_run, spec, collect_key)

    learner = networks.make_actor(spec, cfg.hidden, cfg.activation)
    init, dagger_rounds = make_dagger(cfg, env, env_params, spec, learner, expert_actor, len(demo_obs))
    state = jax.jit(init)(init_key, jnp.asarray(demo_obs), jnp.asarray(demo_actions))
    state, start = run.continue_from_checkpoint(state)
    betas, key = jnp.asarray(cfg.betas, jnp.float32), eval_key(cfg.seed)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda s, b, e, k: dagger_rounds(s, b, e, k, 1)).lower(
        state, betas, expert_params, key).compile()
    compile_s = time.perf_counter() - t0

    def summarize(step, metrics, state):
        return {k: v[-1].item() for k, v in metrics.items()}

    with ui.progress(cfg.rounds, "round") as progress:
        state, _ = run_chunks(state, lambda s: compiled(s, betas, expert_params, key),
                              total=cfg.rounds, chunk=1, start=start, run=run,
                              progress=progress, summarize=summarize)
    run.wait()
    rows = run.metrics()
    summary = base_summary("dagger", cfg.env, run, cfg.seed, started)
    summary["eval"] = evaluate(cfg.env, learner, state.learner.params, key, cfg.eval_episodes,
                               cfg.eval_policy)
    summary["expert"], tv = evaluate_against_expert(
        env, env_params, spec, learner, state.learner.params, expert_run, key, cfg.eval_episodes,
        cfg.eval_policy)
    summary["expert"]["paired"] = True
    summary["dagger"] = {
        "rounds": cfg.rounds, "betas": cfg.betas, "betas_effective": [r["beta"] for r in rows],
        "demo_labels": int(len(demo_obs)), "expert_queries": int(state.queries),
        "expert_budget": cfg.expert_budget, "expert_steps": int(state.expert_steps),
        "dataset_size": int(state.size), **tv, "train_loss": rows[-1]["loss"],
        "compile_s": compile_s}
    summary["return_gap"] = summary["expert"]["return_mean"] - summary["eval"]["return_mean"]
    run.write_summary(summary)
    return summary
