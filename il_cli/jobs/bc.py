"""`il bc`: behavioral cloning of an expert from demonstrations (eq. 24.2)."""

import time
from pathlib import Path

import jax
import numpy as np

from il_cli import networks
from il_cli.algos.bc import make_bc, make_bc_metrics
from il_cli.config import BCConfig
from il_cli.data import load_dataset
from il_cli.envs import make_env
from il_cli.jobs.collect import run_demos
from il_cli.jobs.common import (base_summary, eval_key, evaluate, evaluate_against_expert, root_key,
                                throughput)
from il_cli.jobs.expert import get_expert
from il_cli.loop import chunk_length, run_chunks
from il_cli.runs import Run, open_expert

NO_HOLDOUT = "none — measured on training data"


def split_holdout(episode_lengths, frac: float, key):
    """(train rows, held-out rows, held-out episodes): a fraction `frac` of whole episodes
    held out (at least one when there are two or more and frac > 0). With nothing to hold
    out, the held-out rows are None."""
    if episode_lengths is None:  # a schema 1 dataset: no episode boundaries
        return None, None, 0
    num_episodes = len(episode_lengths)
    n_hold = min(num_episodes - 1, max(1, round(num_episodes * frac))) if frac > 0 else 0
    episode_of_row = np.repeat(np.arange(num_episodes), episode_lengths)
    if n_hold <= 0:
        return np.arange(len(episode_of_row)), None, 0
    held = np.asarray(jax.random.permutation(key, num_episodes))[:n_hold]
    is_held = np.isin(episode_of_row, held)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held), n_hold


def pairing_expert(cfg: BCConfig, header: dict) -> Run | None:
    """The expert evaluated beside the learner: --expert, else the one that made the demos
    (None if that run is no longer on this machine)."""
    if cfg.expert:
        return open_expert(cfg.expert, cfg.env)
    source = header.get("source")
    if source and (Path(source) / "summary.json").is_file():
        return open_expert(source, cfg.env)
    return None


def run_bc(cfg: BCConfig, run: Run, ui) -> dict:
    started = time.time()
    collect_key, split_key, init_key = jax.random.split(root_key(cfg.seed), 3)
    path = run_demos(run, cfg.env, cfg.demos, cfg.episodes, lambda: get_expert(cfg.env, cfg.expert, ui),
                     collect_key)
    header, obs, actions, lengths = load_dataset(path, cfg.env)
    env, env_params, spec = make_env(cfg.env)
    train_rows, held_rows, held_episodes = split_holdout(lengths, cfg.holdout_frac, split_key)
    if train_rows is not None:
        obs_train, actions_train = obs[train_rows], actions[train_rows]
    else:
        obs_train, actions_train = obs, actions
    data = jax.device_put((obs_train, actions_train))

    actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
    init, _, train_chunk = make_bc(actor, spec.discrete, cfg.lr, cfg.batch_size)
    state = jax.jit(init)(init_key, networks.dummy_obs(spec))
    state, start = run.continue_from_checkpoint(state)
    chunk = chunk_length(cfg.num_steps, cfg.num_chunks)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda s, d: train_chunk(s, d, chunk)).lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    key = eval_key(cfg.seed)

    def train(state):
        t0 = time.perf_counter()
        state, losses = jax.block_until_ready(compiled(state, data))
        return state, (losses, time.perf_counter() - t0)

    def summarize(step, out, state):
        losses, train_s = out
        ret = evaluate(cfg.env, actor, state.params, key, cfg.eval_episodes, cfg.eval_policy)
        return {"loss": float(np.mean(losses)), "return": ret["return_mean"],
                "samples_per_s": chunk * cfg.batch_size / train_s}

    with ui.progress(cfg.num_steps, "step") as progress:
        state, _ = run_chunks(state, train, total=cfg.num_steps, chunk=chunk, start=start,
                              run=run, progress=progress, summarize=summarize)
    run.wait()

    if held_rows is not None:
        holdout, held = (obs[held_rows], actions[held_rows]), {
            "episodes": held_episodes, "transitions": int(len(held_rows))}
    else:
        holdout, held = (obs_train, actions_train), NO_HOLDOUT
    expert_std = np.asarray(header.get("expert_action_std", [1.0] * spec.action_dim), np.float32)
    metrics = jax.jit(make_bc_metrics(spec, actor, cfg.eval_policy))(
        state.params, *holdout, expert_std, jax.random.fold_in(key, 1))
    bc = {k: float(v) for k, v in metrics.items()}
    rows = run.metrics()
    bc.update(holdout=held, train_loss=rows[-1]["loss"], demos=int(header["count"]),
              demo_episodes=int(header["episodes"]), expert_queries=int(header["count"]),
              steps=cfg.num_steps, samples_per_s=throughput(rows), compile_s=compile_s)
    summary = base_summary("bc", cfg.env, run, cfg.seed, started)
    summary["eval"] = evaluate(cfg.env, actor, state.params, key, cfg.eval_episodes, cfg.eval_policy)
    expert_run = pairing_expert(cfg, header)
    if expert_run is not None:
        summary["expert"], tv = evaluate_against_expert(
            env, env_params, spec, actor, state.params, expert_run, key, cfg.eval_episodes,
            cfg.eval_policy)
        bc.update(tv_learner_states=tv["tv_learner_states"],
                  tv_learner_states_stochastic=tv["tv_learner_states_stochastic"])
        summary["expert"]["paired"] = True
    else:  # the expert that made the demos is gone: its return as the dataset recorded it
        ui.print(f"the expert {header.get('source')} is not here: the return gap uses the return "
                 f"recorded in the dataset (not paired)")
        summary["expert"] = {"run": header.get("source"), "return_mean": header["expert_return"],
                             "paired": False}
    summary["expert"]["demo_return_mean"] = header["return_mean"]
    summary["bc"] = bc
    summary["return_gap"] = summary["expert"]["return_mean"] - summary["eval"]["return_mean"]
    run.write_summary(summary)
    return summary
