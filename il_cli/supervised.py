"""The chunked fit of every member's policy on a fixed dataset (`il bc`, `il prefs`)."""

import time

import jax
import numpy as np

from il_cli.evaluation import evaluate
from il_cli.loop import chunk_length, jit_members, run_chunks
from il_cli.runs import Run


def fit_members(cfg, run: Run, ui, policy, state, train_chunk, train_data, keys):
    """The chunked fit of every member's policy on a fixed dataset (BC's eq. 24.2, the
    preference loss of `il prefs`): from the run's latest checkpoint, `cfg.num_steps` steps of
    `train_chunk`, logging per chunk each member's mean loss, its return (evaluated with
    `keys`) and the program's samples/s. Returns (state, compile seconds)."""
    state, start = run.continue_from_checkpoint(state)
    chunk = chunk_length(cfg.num_steps, cfg.num_chunks)
    t0 = time.perf_counter()
    compiled = jit_members(jax.vmap(lambda s, d: train_chunk(s, d, chunk))).lower(state, train_data).compile()
    compile_s = time.perf_counter() - t0

    def train(state):
        t0 = time.perf_counter()
        state, losses = jax.block_until_ready(compiled(state, train_data))
        return state, (losses, time.perf_counter() - t0)

    def summarize(step, out, state):
        losses, train_s = out
        returns = evaluate(cfg.env, policy, state.params, keys, cfg.eval_episodes, cfg.eval_policy)
        rate = len(returns) * chunk * cfg.batch_size / train_s  # the program's: all members
        return [{"loss": float(np.mean(losses[k])), "return": ret["return_mean"], "samples_per_s": rate}
                for k, ret in enumerate(returns)]

    with ui.progress(cfg.num_steps, "step") as progress:
        state, _ = run_chunks(state, train, total=cfg.num_steps, chunk=chunk, start=start,
                              run=run, progress=progress, summarize=summarize, members=run.members)
    run.wait()
    return state, compile_s
