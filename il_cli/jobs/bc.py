"""`il bc`: behavioral cloning of an expert from demonstrations (eq. 24.2)."""

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks
from il_cli.algos.bc import make_bc, make_bc_metrics
from il_cli.config import BCConfig, member_configs
from il_cli.data import load_dataset
from il_cli.demos import padded, pairing_expert, run_demos
from il_cli.envs import make_env
from il_cli.evaluation import eval_key, evaluate, evaluate_against_expert, normalize, root_key, stack
from il_cli.experts import get_expert
from il_cli.holdout import NO_HOLDOUT, split_rows
from il_cli.loop import host, jit_members, shard_members
from il_cli.plots import write_curves
from il_cli.runs import Run
from il_cli.summaries import run_summary, throughput
from il_cli.supervised import fit_members


class MemberData(NamedTuple):
    """One member's demonstrations, split into training rows and held-out rows."""

    header: dict
    train: tuple  # (obs, actions)
    holdout: tuple | None  # (obs, actions) of whole held-out episodes, or None
    holdout_info: dict | str


def member_data(cfg: BCConfig, run: Run, ui, member: int | None) -> MemberData:
    """Member `cfg.seed`'s demonstrations (its own, collected with its seed, unless --demos)
    and its held-out split, as a single run with that seed has them."""
    collect_key, split_key, _ = jax.random.split(root_key(cfg.seed), 3)
    path = run_demos(run, cfg.env, cfg.demos, cfg.episodes, lambda: get_expert(cfg.env, cfg.expert, ui),
                     collect_key, member)
    data = load_dataset(path, cfg.env)
    header, obs, actions, lengths = data.header, data.obs, data.actions, data.episode_lengths
    train_rows, held_rows, held_episodes = split_rows(lengths, cfg.holdout_frac, split_key)
    if train_rows is None:
        train_rows = np.arange(len(obs))
    if held_rows is None:
        return MemberData(header, (obs[train_rows], actions[train_rows]), None, NO_HOLDOUT)
    return MemberData(header, (obs[train_rows], actions[train_rows]), (obs[held_rows], actions[held_rows]),
                      {"episodes": held_episodes, "transitions": int(len(held_rows))})


def run_bc(cfg: BCConfig, run: Run, ui) -> dict:
    started = time.time()
    member_cfgs = member_configs(cfg)
    single = len(member_cfgs) == 1
    data = [member_data(m, run, ui, None if single else k) for k, m in enumerate(member_cfgs)]
    env, env_params, spec = make_env(cfg.env)
    train_data = shard_members((padded([d.train[0] for d in data]), padded([d.train[1] for d in data]),
                                np.array([len(d.train[0]) for d in data], np.int32)))

    actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
    init, _, train_chunk = make_bc(actor, spec.discrete, cfg.batch_size)
    init_keys = shard_members(stack([jax.random.split(root_key(m.seed), 3)[2] for m in member_cfgs]))
    lrs = shard_members(jnp.array([m.lr for m in member_cfgs], jnp.float32))
    state = jit_members(jax.vmap(init, in_axes=(0, None, 0)))(init_keys, networks.dummy_obs(spec), lrs)
    keys = shard_members(stack([eval_key(m.seed) for m in member_cfgs]))
    state, compile_s = fit_members(cfg, run, ui, actor, state, train_chunk, train_data, keys)

    evals = evaluate(cfg.env, actor, state.params, keys, cfg.eval_episodes, cfg.eval_policy)
    expert_run = pairing_expert(cfg, data[0].header)
    paired = None
    if expert_run is not None:
        paired = evaluate_against_expert(env, env_params, spec, actor, state.params, expert_run, keys,
                                         cfg.eval_episodes, cfg.eval_policy)
    else:  # the expert that made the demos is gone: its return as the dataset recorded it
        source = data[0].header.get("source")
        recorded = source == data[0].header.get("provenance", {}).get("source")  # imported, not an il expert's
        ui.print(f"the demonstrations come from {source}, not an il expert: the return gap uses their mean return "
                 f"(not paired)" if recorded else f"the expert {source} is not here: the return gap uses the return "
                 f"recorded in the dataset (not paired)")
    held_out_metrics = jax.jit(make_bc_metrics(spec, actor, cfg.eval_policy))
    all_params, keys = host((state.params, keys))  # every member's, on this host
    blocks = []
    for k, (m, d) in enumerate(zip(member_cfgs, data)):
        params = jax.tree.map(lambda x: x[k], all_params)
        expert_std = np.asarray(d.header.get("expert_action_std", [1.0] * spec.action_dim), np.float32)
        bc = {key: float(v) for key, v in held_out_metrics(
            params, *(d.holdout or d.train), expert_std, jax.random.fold_in(keys[k], 1)).items()}
        rows = run.metrics(member=k)
        bc.update(holdout=d.holdout_info, train_loss=rows[-1]["loss"], demos=int(d.header["count"]),
                  demo_episodes=int(d.header["episodes"]), expert_queries=int(d.header["count"]),
                  steps=cfg.num_steps, samples_per_s=throughput(rows), compile_s=compile_s)
        if paired is not None:
            expert, tv = paired[k]
            bc.update(tv_learner_states=tv["tv_learner_states"],
                      tv_learner_states_stochastic=tv["tv_learner_states_stochastic"])
        else:
            expert = {"run": d.header.get("source"), "return_mean": d.header["expert_return"], "paired": False}
        expert["demo_return_mean"] = d.header["return_mean"]
        blocks.append({"eval": evals[k], "expert": expert, "bc": bc,
                       "return_gap": expert["return_mean"] - evals[k]["return_mean"]})
    blocks = normalize(blocks, cfg.env, keys, cfg.eval_episodes)
    summary = run_summary("bc", cfg.env, cfg.seed, run, started, blocks, run.members)
    summary["curves"] = str(write_curves(run, summary))
    run.write_summary(summary)
    return summary
