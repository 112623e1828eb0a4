"""`il gail` and `il airl`: adversarial imitation of an expert's demonstrations, PPO on a
discriminator's reward, every member in one vmapped program (il_cli.algos.adversarial)."""

import time

import jax
import jax.numpy as jnp

from il_cli import networks
from il_cli.algos.adversarial import AdversarialObjective, Discriminator, expert_transitions, state_normalizer
from il_cli.algos.ppo import hyper_of, make_ppo
from il_cli.config import GAILConfig, member_configs
from il_cli.data import load_dataset
from il_cli.demos import pairing_expert, run_demos
from il_cli.envs import make_env
from il_cli.errors import UserError
from il_cli.evaluation import eval_key, evaluate, evaluate_against_expert, normalize, root_key, stack
from il_cli.experts import get_expert
from il_cli.loop import Timed, chunk_length, host, jit_members, run_chunks, shard_members
from il_cli.plots import plot_discriminator, write_curves
from il_cli.runs import Run
from il_cli.summaries import run_summary, throughput

DISC_FIGURES = ("disc_loss", "disc_expert_accuracy", "disc_learner_accuracy", "disc_expert_logit",
                "disc_learner_logit", "disc_reward_mean", "disc_reward_std", "absorbing_reward")


def member_demos(cfg: GAILConfig, run: Run, ui, member: int | None):
    """Member `cfg.seed`'s demonstrations (collected with its seed, as `il bc --seed` would, unless
    --demos): (header, obs, actions, episode lengths)."""
    collect_key = jax.random.split(root_key(cfg.seed), 3)[0]
    path = run_demos(run, cfg.env, cfg.demos, cfg.episodes, lambda: get_expert(cfg.env, cfg.expert, ui),
                     collect_key, member)
    data = load_dataset(path, cfg.env)
    if data.episode_lengths is None:
        raise UserError(f"{cfg.demos}: a schema 1 dataset has no episode boundaries, which il {cfg.command} needs "
                        f"(s' and the absorbing state); collect it again with il collect")
    return data


def run_adversarial(cfg: GAILConfig, run: Run, ui) -> dict:
    """GAIL or AIRL per `cfg`, resumable; the summary (return, the untrained policy's return on
    the same keys, the paired expert, normalised return, ε on the expert's states, the
    discriminator's figures), curves.png and discriminator.png."""
    started = time.time()
    airl = cfg.command == "airl"
    member_cfgs = member_configs(cfg)
    single = len(member_cfgs) == 1
    env, env_params, spec = make_env(cfg.env)
    demos = [member_demos(m, run, ui, None if single else k) for k, m in enumerate(member_cfgs)]
    rows = max(len(d.obs) for d in demos)
    expert = stack([expert_transitions(d.obs, d.actions, d.episode_lengths, spec.max_steps, rows, airl)
                    for d in demos])
    normalizer = jax.vmap(state_normalizer)(expert.obs, expert.weight)

    ppo_cfg = cfg.ppo()
    actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
    disc = Discriminator(spec, cfg.disc_hidden, airl, getattr(cfg, "state_only", True))
    objective = AdversarialObjective(spec, actor, disc, cfg.reward_transform, cfg.absorbing, cfg.disc_steps,
                                     cfg.disc_batch)
    _, ppo_init, ppo_chunk = make_ppo(ppo_cfg, env, env_params, spec, objective)
    hyper = shard_members({**stack([{**hyper_of(m.ppo()), "disc_lr": jnp.float32(m.disc_lr),
                                     "grad_penalty": jnp.float32(m.grad_penalty)} for m in member_cfgs]),
                           "expert": expert, "normalizer": normalizer})
    init_keys = shard_members(stack([jax.random.split(root_key(m.seed), 3)[1] for m in member_cfgs]))
    state = jit_members(jax.vmap(ppo_init))(init_keys, hyper)
    eval_keys = shard_members(stack([eval_key(m.seed) for m in member_cfgs]))
    initial = evaluate(cfg.env, actor, state.params["actor"], eval_keys, cfg.eval_episodes, cfg.eval_policy)
    expert_run = pairing_expert(cfg, demos[0].header)
    paired = lambda params: None if expert_run is None else evaluate_against_expert(
        env, env_params, spec, actor, params, expert_run, eval_keys, cfg.eval_episodes, cfg.eval_policy)
    expert_returns = [p[0]["return_mean"] for p in paired(state.params["actor"])] if expert_run else [
        d.header["expert_return"] for d in demos]  # the expert's, on each member's keys: the same every chunk
    expert_std = shard_members(stack([jnp.asarray(d.header.get("expert_action_std", [1.0] * spec.action_dim),
                                                  jnp.float32) for d in demos]))

    def eps(params, rows, std, key):
        """ε = TV(π̂, π*) of the evaluated policy, averaged over every demonstrated state."""
        tv = networks.tv_to_expert(spec, cfg.eval_policy, actor.apply(params, rows.obs), rows.actions, std,
                                   jax.random.fold_in(key, 1))
        return jnp.sum(rows.weight * tv) / jnp.sum(rows.weight)

    eps_on_demos = jit_members(jax.vmap(eps))
    demo_rows = shard_members(expert._replace(weight=stack([jnp.arange(rows) < len(d.obs) for d in demos])))

    chunk = chunk_length(ppo_cfg.num_updates, cfg.num_chunks)
    per_update = cfg.num_envs * cfg.num_steps
    program = Timed(jit_members(jax.vmap(lambda s, h: ppo_chunk(s, h, chunk))))
    state, start = run.continue_from_checkpoint(state)

    def train(state):
        (state, metrics), seconds = program(state, hyper)
        return state, (metrics, seconds)

    def summarize(step, out, state):
        metrics, seconds = out
        params = state.params["actor"]
        returns = evaluate(cfg.env, actor, params, eval_keys, cfg.eval_episodes, cfg.eval_policy)
        tv = host(eps_on_demos(params, demo_rows, expert_std, eval_keys))
        figures = []
        for k, ret in enumerate(returns):
            count = float(metrics["episodes"][k].sum())
            figures.append({
                "env_steps": step * per_update, "return": ret["return_mean"],
                "return_gap": expert_returns[k] - ret["return_mean"], "tv_expert_states": float(tv[k]),
                "expert_queries": len(demos[k].obs),
                "train_return": float(metrics["episode_return_sum"][k].sum() / count) if count else None,
                **{name: float(metrics[name][k][-1]) for name in DISC_FIGURES},
                "entropy": float(metrics["entropy"][k][-1]),
                "steps_per_s": len(member_cfgs) * chunk * per_update / seconds})
        return figures

    with ui.progress(ppo_cfg.num_updates, "update") as progress:
        state, _ = run_chunks(state, train, total=ppo_cfg.num_updates, chunk=chunk, start=start, run=run, progress=progress,
                              summarize=summarize, members=run.members)
    run.wait()

    params = state.params["actor"]
    evals = evaluate(cfg.env, actor, params, eval_keys, cfg.eval_episodes, cfg.eval_policy)
    final = paired(params)
    tv = host(eps_on_demos(params, demo_rows, expert_std, eval_keys))
    keys = host(eval_keys)
    blocks = []
    for k, (m, d) in enumerate(zip(member_cfgs, demos)):
        logged = run.metrics(member=k)
        block = {"method": cfg.command, "reward_transform": m.reward_transform, "absorbing": m.absorbing,
                 **({"state_only": m.state_only} if airl else {}),
                 "tv_expert_states": float(tv[k]),
                 "demos": int(d.header["count"]), "demo_episodes": int(d.header["episodes"]),
                 "expert_queries": int(d.header["count"]), "updates": ppo_cfg.num_updates,
                 "env_steps": ppo_cfg.num_updates * per_update, "compile_s": program.compile_s,
                 "steps_per_s": throughput([{"samples_per_s": r["steps_per_s"]} for r in logged]),
                 **{name: logged[-1][name] for name in DISC_FIGURES}}
        if final is not None:
            expert_block, on_states = final[k]
            block["tv_learner_states"] = on_states["tv_learner_states"]
        else:
            expert_block = {"run": d.header.get("source"), "return_mean": d.header["expert_return"], "paired": False}
        expert_block["demo_return_mean"] = d.header["return_mean"]
        blocks.append({"eval": evals[k], "initial": initial[k], "expert": expert_block, cfg.command: block,
                       "return_gap": expert_block["return_mean"] - evals[k]["return_mean"]})
    blocks = normalize(blocks, cfg.env, keys, cfg.eval_episodes)
    summary = run_summary(cfg.command, cfg.env, cfg.seed, run, started, blocks, run.members)
    summary["curves"] = str(write_curves(run, summary))
    summary["discriminator_plot"] = str(plot_discriminator(run))
    run.write_summary(summary)
    return summary
