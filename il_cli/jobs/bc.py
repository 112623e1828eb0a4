"""`il bc`: behavioral cloning of an expert from demonstrations (eq. 24.2)."""

import time

import jax
import numpy as np

from il_cli import networks
from il_cli.algos.bc import make_bc, make_bc_metrics
from il_cli.config import BCConfig
from il_cli.data import load_dataset
from il_cli.envs import make_env
from il_cli.jobs.collect import run_demos
from il_cli.jobs.common import base_summary, eval_key, evaluate, root_key
from il_cli.jobs.expert import get_expert
from il_cli.loop import chunk_length, run_chunks
from il_cli.runs import Run

def split_holdout(obs, actions, frac: float, key):
    """A random fraction `frac` of transitions held out for accuracy / likelihood / TV."""
    n = len(obs)
    perm = np.asarray(jax.random.permutation(key, n))
    n_hold = int(round(n * frac)) if n > 1 else 0
    hold, train = perm[:n_hold], perm[n_hold:]
    if not n_hold:  # too few transitions to hold any out: measure on the training set
        hold = train
    return (obs[train], actions[train]), (obs[hold], actions[hold])


def run_bc(cfg: BCConfig, run: Run, ui) -> dict:
    started = time.time()
    collect_key, split_key, init_key = jax.random.split(root_key(cfg.seed), 3)
    path = run_demos(run, cfg.env, cfg.demos, cfg.episodes, lambda: get_expert(cfg.env, cfg.expert, ui),
                     collect_key)
    header, obs, actions = load_dataset(path, cfg.env)
    _, _, spec = make_env(cfg.env)
    train_data, holdout = split_holdout(obs, actions, cfg.holdout_frac, split_key)
    data = jax.device_put(train_data)

    actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
    init, _, train_chunk = make_bc(actor, spec.discrete, cfg.lr, cfg.batch_size)
    state = jax.jit(init)(init_key, networks.dummy_obs(spec))
    state, start = run.continue_from_checkpoint(state)
    chunk = chunk_length(cfg.num_steps, cfg.num_chunks)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda s, d: train_chunk(s, d, chunk)).lower(state, data).compile()
    compile_s = time.perf_counter() - t0

    train_s = 0.0

    def train(state):
        nonlocal train_s
        t0 = time.perf_counter()
        state, losses = jax.block_until_ready(compiled(state, data))
        train_s += time.perf_counter() - t0
        return state, losses

    def summarize(step, losses, state):
        ret = evaluate(cfg.env, actor, state.params, eval_key(cfg.seed), cfg.eval_episodes)
        return {"loss": float(np.mean(losses)), "return": ret["return_mean"]}

    with ui.progress(cfg.num_steps, "step") as progress:
        state, last = run_chunks(state, train, total=cfg.num_steps, chunk=chunk, start=start,
                                 run=run, progress=progress, summarize=summarize)
    run.wait()

    expert_std = np.asarray(header.get("expert_action_std", [1.0] * spec.action_dim), np.float32)
    held = jax.jit(make_bc_metrics(actor, spec.discrete))(state.params, *holdout, expert_std)
    bc = {k: float(v) for k, v in held.items()}
    bc.update(train_loss=last.get("loss"), demos=int(header["count"]),
              demo_episodes=int(header["episodes"]), steps=cfg.num_steps,
              samples_per_s=(cfg.num_steps - start) * cfg.batch_size / max(train_s, 1e-9),
              compile_s=compile_s)
    summary = base_summary("bc", cfg.env, run, cfg.seed, started)
    summary["eval"] = evaluate(cfg.env, actor, state.params, eval_key(cfg.seed), cfg.eval_episodes)
    summary["expert"] = {"run": header["source"], "return_mean": header["expert_return"],
                         "demo_return_mean": header["return_mean"]}
    summary["bc"] = bc
    summary["return_gap"] = header["expert_return"] - summary["eval"]["return_mean"]
    run.write_summary(summary)
    return summary
