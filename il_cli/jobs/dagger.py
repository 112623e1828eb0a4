"""`il dagger`: DAgger with β schedules, supervisor-burden accounting and noisy supervisors."""

import time

import jax
import numpy as np

from il_cli import networks
from il_cli.algos.dagger import hyper_of, make_dagger
from il_cli.config import DAggerConfig, member_configs
from il_cli.data import load_dataset
from il_cli.demos import padded, run_demos
from il_cli.envs import make_env
from il_cli.evaluation import eval_key, evaluate, evaluate_against_expert, load_expert, normalize, root_key, stack
from il_cli.experts import get_expert
from il_cli.loop import host, jit_members, replicate, run_chunks, shard_members
from il_cli.plots import write_curves
from il_cli.runs import Run
from il_cli.summaries import run_summary


def seed_demos(cfg: DAggerConfig, run: Run, expert: Run, spec, collect_key, member: int | None):
    """(obs, actions) that seed D: --demos, or --episodes collected, or none."""
    path = run_demos(run, cfg.env, cfg.demos, cfg.episodes, lambda: expert, collect_key, member)
    if path is not None:
        data = load_dataset(path, cfg.env)
        return data.obs, data.actions
    action_shape = () if spec.discrete else (spec.action_dim,)
    return (np.zeros((0, *spec.obs_shape), np.float32),
            np.zeros((0, *action_shape), np.int32 if spec.discrete else np.float32))


def run_dagger(cfg: DAggerConfig, run: Run, ui) -> dict:
    started = time.time()
    expert_run = get_expert(cfg.env, cfg.expert, ui)
    spec, expert_actor, expert_params = load_expert(str(expert_run.path))
    expert_params = replicate(expert_params)
    env, env_params, _ = make_env(cfg.env)
    member_cfgs = member_configs(cfg)
    single = len(member_cfgs) == 1
    keys = [jax.random.split(root_key(m.seed)) for m in member_cfgs]  # (collect, init) per member
    demos = [seed_demos(m, run, expert_run, spec, k[0], None if single else i)
             for i, (m, k) in enumerate(zip(member_cfgs, keys))]
    num_demos = np.array([len(obs) for obs, _ in demos], np.int32)

    learner = networks.make_actor(spec, cfg.hidden, cfg.activation)
    init, dagger_rounds = make_dagger(cfg, env, env_params, spec, learner, expert_actor,
                                      int(num_demos.max()))
    state = jit_members(jax.vmap(init))(*shard_members((
        stack([k[1] for k in keys]), padded([o for o, _ in demos]), padded([a for _, a in demos]),
        num_demos, np.array([m.lr for m in member_cfgs], np.float32))))
    state, start = run.continue_from_checkpoint(state)
    hyper = shard_members(stack([hyper_of(m) for m in member_cfgs]))
    eval_keys = shard_members(stack([eval_key(m.seed) for m in member_cfgs]))
    t0 = time.perf_counter()
    compiled = jit_members(jax.vmap(lambda s, h, e, k: dagger_rounds(s, h, e, k, 1), in_axes=(0, 0, None, 0))).lower(
        state, hyper, expert_params, eval_keys).compile()
    compile_s = time.perf_counter() - t0

    def summarize(step, metrics, state):
        return [{k: v[member, -1].item() for k, v in metrics.items()} for member in range(len(member_cfgs))]

    with ui.progress(cfg.rounds, "round") as progress:
        state, _ = run_chunks(state, lambda s: compiled(s, hyper, expert_params, eval_keys),
                              total=cfg.rounds, chunk=1, start=start, run=run, progress=progress,
                              summarize=summarize, members=run.members)
    run.wait()
    params = state.learner.params
    queries, expert_steps, sizes = host((state.queries, state.expert_steps, state.size))  # every member's
    evals = evaluate(cfg.env, learner, params, eval_keys, cfg.eval_episodes, cfg.eval_policy)
    paired = evaluate_against_expert(env, env_params, spec, learner, params, expert_run, eval_keys,
                                     cfg.eval_episodes, cfg.eval_policy)
    blocks = []
    for k, m in enumerate(member_cfgs):
        rows = run.metrics(member=k)
        expert, tv = paired[k]
        blocks.append({"eval": evals[k], "expert": expert, "dagger": {
            "rounds": m.rounds, "betas": m.betas, "betas_effective": [r["beta"] for r in rows],
            "demo_labels": int(num_demos[k]), "expert_queries": int(queries[k]),
            "expert_budget": m.expert_budget, "expert_steps": int(expert_steps[k]),
            "dataset_size": int(sizes[k]), **tv, "train_loss": rows[-1]["loss"],
            "compile_s": compile_s}, "return_gap": expert["return_mean"] - evals[k]["return_mean"]})
    blocks = normalize(blocks, cfg.env, eval_keys, cfg.eval_episodes)
    summary = run_summary("dagger", cfg.env, cfg.seed, run, started, blocks, run.members)
    summary["curves"] = str(write_curves(run, summary))
    run.write_summary(summary)
    return summary
