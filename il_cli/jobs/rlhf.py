"""`il rlhf`: SFT → reward model from K-way rankings → PPO with KL penalty and ptx term."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.algos.bc import make_bc
from il_cli.algos.ppo import hyper_of, make_ppo
from il_cli.algos.rlhf import (RewardModel, RLHFObjective, make_responses, make_reward_model, rank,
                               ranking_accuracy)
from il_cli.config import RLHFConfig, member_configs
from il_cli.envs import make_env
from il_cli.jobs.common import (eval_key, evaluate, load_expert, load_policy, root_key, run_summary, stack,
                                throughput)
from il_cli.jobs.expert import get_expert
from il_cli.loop import chunk_length, jit_members, replicate, run_chunks, shard_members
from il_cli.plots import plot_rlhf, write_curves
from il_cli.runs import Run, open_policy_run

PREPARE_HYPER = ("demo_noise", "sft_lr", "human_beta", "human_error", "rm_lr")


def make_stages(cfg: RLHFConfig, env, env_params, spec, expert, actor, model):
    """(sft_stage, reward_stage), the first two steps of one member, each one program (XLA
    on CPU deadlocked on the two fused into one when vmapped over four or more members).

    sft_stage(key, expert_params, hyper) -> (π_SFT's params, demonstrations (obs, actions,
    size), figures): episodes of the expert acting at random with probability demo_noise,
    and behavioral cloning on them unless --sft gives π_SFT (the demonstrations are D_pretrain
    of the ptx term either way).
    reward_stage(key, sft_params, hyper) -> (r_θ's params, its scale, figures): K responses
    per prompt from π_SFT, the simulated human's rankings, and r_θ fitted by eq. 24.12."""
    episodes = rollout.make_episodes(env, env_params, spec, cfg.demo_episodes,
                                     lambda p, obs, key: noisy_act(p, obs, key), record=True)

    def noisy_act(params, obs, key):
        expert_params, noise = params
        a_star, _ = rollout.expert_action(spec, expert, expert_params, obs)
        k_coin, k_act = jax.random.split(key)
        other = rollout.uniform_action(spec, k_act, a_star.shape)
        coin = jax.random.bernoulli(k_coin, noise, (a_star.shape[0],) + (1,) * (a_star.ndim - 1))
        return jnp.where(coin, other, a_star)

    bc_init, _, bc_chunk = make_bc(actor, spec.discrete, cfg.batch_size)
    responses = jax.vmap(make_responses(env, env_params, spec, actor, cfg.k, cfg.segment_length), in_axes=(None, 0))
    rm_init, rm_chunk, rm_rewards, rm_ranked = make_reward_model(spec, model, cfg.rm_batch)
    P = cfg.num_prompts
    n_hold = held_out_prompts(cfg)

    def sft_stage(key, expert_params, hyper):
        demo_key, sft_key = jax.random.split(key)
        demos = episodes((expert_params, hyper["demo_noise"]), demo_key)
        valid = demos.valid.reshape(-1)
        order = jnp.argsort(~valid, stable=True)  # the recorded steps first, in order
        obs = demos.obs.reshape(-1, *spec.obs_shape)[order]
        actions = demos.actions.reshape(-1, *demos.actions.shape[2:])[order]
        size = jnp.sum(valid)
        sft = None
        if not cfg.sft:  # else π_SFT is the given run's
            sft, _ = bc_chunk(bc_init(sft_key, networks.dummy_obs(spec), hyper["sft_lr"]), (obs, actions, size),
                              cfg.sft_steps)
        return None if sft is None else sft.params, (obs, actions, size), {"demo_transitions": size, "demo_return": jnp.mean(demos.returns)}

    def reward_stage(key, sft_params, hyper):
        prompt_key, rank_key, split_key, rm_key = jax.random.split(key, 4)
        resp = responses(sft_params, jax.random.split(prompt_key, P))
        orders = jax.vmap(rank, in_axes=(0, 0, None, None))(jax.random.split(rank_key, P), resp.gold,
                                                              hyper["human_beta"], hyper["human_error"])
        perm = jax.random.permutation(split_key, P)
        train, held = perm[n_hold:], perm[:n_hold] if n_hold else perm
        pick = lambda idx: (resp.obs[idx], resp.actions[idx], resp.alive[idx], orders[idx])
        rm, losses = rm_chunk(rm_init(rm_key, hyper["rm_lr"]), pick(train), cfg.rm_steps)
        r_train = rm_rewards(rm.params, *pick(train)[:3])
        r_held = rm_rewards(rm.params, *pick(held)[:3])
        gold = resp.gold[held]
        better = gold[:, :, None] > gold[:, None, :]  # the pairs the true returns order
        figures = {
            "ranking_accuracy": jnp.mean(ranking_accuracy(rm_ranked(rm.params, *pick(held)))),
            "gold_pair_accuracy": jnp.sum(better & (r_held[:, :, None] > r_held[:, None, :])) / jnp.maximum(better.sum(), 1),
            "decided_pairs": better.sum() / (held.shape[0] * cfg.k * (cfg.k - 1) / 2),
            "rm_train_loss": jnp.mean(losses[-100:]),
            "sft_response_gold": jnp.mean(resp.gold),
        }
        return rm.params, 1.0 / (jnp.std(r_train) + 1e-8), figures

    return sft_stage, reward_stage


def held_out_prompts(cfg: RLHFConfig) -> int:
    return max(1, round(cfg.num_prompts * cfg.holdout_frac)) if cfg.holdout_frac > 0 else 0


def run_rlhf(cfg: RLHFConfig, run: Run, ui) -> dict:
    started = time.time()
    member_cfgs = member_configs(cfg)
    M = len(member_cfgs)
    env, env_params, spec = make_env(cfg.env)
    _, expert, expert_params = load_expert(str(get_expert(cfg.env, cfg.expert, ui).path))
    actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
    if cfg.sft:  # its architecture is cfg's (il_cli.commands.rlhf.sft_architecture)
        _, _, sft_params = load_policy(open_policy_run(cfg.sft, cfg.env, ("bc",)))
        sft_params = stack([sft_params] * M)
    model = RewardModel(spec, tuple(cfg.rm_hidden))

    ppo_cfg = cfg.ppo()

    # stages 1 and 2, two vmapped programs (recomputed on --resume: they are deterministic)
    ui.print(f"stages 1–2: {'SFT from ' + cfg.sft if cfg.sft else 'noisy demonstrations and SFT'}, "
             f"{cfg.num_prompts} prompts × {cfg.k} responses ranked, reward model")
    t0 = time.perf_counter()
    sft_stage, reward_stage = make_stages(cfg, env, env_params, spec, expert, actor, model)
    sft_keys, rm_keys = (shard_members(stack([jax.random.split(jax.random.split(root_key(m.seed), 3)[0])[i]
                                               for m in member_cfgs])) for i in (0, 1))
    hyper = shard_members({k: jnp.array([getattr(m, k) for m in member_cfgs], jnp.float32) for k in PREPARE_HYPER})
    trained_sft, pretrain, prepared = jax.block_until_ready(jit_members(jax.vmap(
        sft_stage, in_axes=(0, None, 0)))(sft_keys, replicate(expert_params), hyper))
    if not cfg.sft:
        sft_params = trained_sft
    sft_params = shard_members(sft_params)
    rm_params, rm_scale, rm_figures = jax.block_until_ready(jit_members(jax.vmap(reward_stage))(
        rm_keys, sft_params, hyper))
    prepared = {**prepared, **rm_figures}
    prepare_s = time.perf_counter() - t0

    # stage 3: PPO from π_SFT against r_θ, with the KL penalty and the ptx term
    objective = RLHFObjective(spec, actor, model, cfg.batch_size)
    _, ppo_init, ppo_chunk = make_ppo(ppo_cfg, env, env_params, spec, objective)
    ppo_hyper = stack([{**hyper_of(m.ppo()), "kl_coef": jnp.float32(m.kl_coef),
                        "ptx_coef": jnp.float32(m.ptx_coef)} for m in member_cfgs])
    ppo_hyper = shard_members({**ppo_hyper, "sft": sft_params, "rm": rm_params, "rm_scale": rm_scale,
                               "pretrain": pretrain})
    init_keys = shard_members(stack([jax.random.split(root_key(m.seed), 3)[1] for m in member_cfgs]))
    state = jit_members(jax.vmap(ppo_init))(init_keys, ppo_hyper)
    state = {"ppo": state.replace(params={**state.params, "actor": sft_params}), "sft": sft_params}
    state, start = run.continue_from_checkpoint(state)
    chunk = chunk_length(ppo_cfg.num_updates, cfg.num_chunks)
    t0 = time.perf_counter()
    compiled = jit_members(jax.vmap(lambda s, h: ppo_chunk(s, h, chunk))).lower(state["ppo"], ppo_hyper).compile()
    compile_s = time.perf_counter() - t0
    eval_keys = shard_members(stack([eval_key(m.seed) for m in member_cfgs]))
    sft_evals = evaluate(cfg.env, actor, sft_params, eval_keys, cfg.eval_episodes, cfg.eval_policy)
    steps_per_update = ppo_cfg.num_envs * ppo_cfg.num_steps

    def train(state):
        t0 = time.perf_counter()
        ppo, metrics = jax.block_until_ready(compiled(state["ppo"], ppo_hyper))
        return {**state, "ppo": ppo}, (metrics, time.perf_counter() - t0)

    def summarize(update, out, state):
        metrics, train_s = out
        evals = evaluate(cfg.env, actor, state["ppo"].params["actor"], eval_keys, cfg.eval_episodes, cfg.eval_policy)
        rows = []
        for k in range(M):
            m = jax.tree.map(lambda x: np.asarray(x[k]), metrics)
            rows.append({"gold_return": evals[k]["return_mean"], "return": evals[k]["return_mean"],
                         "proxy_reward": float(m["proxy_reward"][-1]), "kl": float(m["kl"][-1]),
                         "sqrt_kl": float(np.sqrt(max(m["kl"][-1], 0.0))),
                         "ptx_log_likelihood": float(m["ptx_log_likelihood"][-1]),
                         "entropy": float(m["entropy"][-1]), "loss": float(np.mean(m["loss"])),
                         "env_steps": update * steps_per_update,
                         "steps_per_s": M * chunk * steps_per_update / train_s})
        return rows

    with ui.progress(ppo_cfg.num_updates, "update") as progress:
        state, _ = run_chunks(state, train, total=ppo_cfg.num_updates, chunk=chunk, start=start, run=run,
                              progress=progress, summarize=summarize, members=run.members)
    run.wait()

    evals = evaluate(cfg.env, actor, state["ppo"].params["actor"], eval_keys, cfg.eval_episodes, cfg.eval_policy)
    prepared = jax.device_get(prepared)
    blocks = []
    for k, m in enumerate(member_cfgs):
        rows = run.metrics(member=k)
        prep = {name: float(v[k]) for name, v in prepared.items()}
        blocks.append({
            "eval": evals[k],
            "sft": {"eval": sft_evals[k], "run": cfg.sft, "demo_noise": m.demo_noise,
                    "demo_episodes": None if cfg.sft else cfg.demo_episodes,
                    "demo_transitions": None if cfg.sft else int(prep["demo_transitions"]),
                    "demo_return": None if cfg.sft else prep["demo_return"]},
            "reward_model": {"ranking_accuracy": prep["ranking_accuracy"],
                             "gold_pair_accuracy": prep["gold_pair_accuracy"],
                             "decided_pairs": prep["decided_pairs"], "train_loss": prep["rm_train_loss"],
                             "rankings": cfg.num_prompts, "k": cfg.k,
                             "labels": cfg.num_prompts * cfg.k * (cfg.k - 1) // 2,
                             "held_out_prompts": held_out_prompts(cfg),
                             "sft_response_gold": prep["sft_response_gold"], "segment_length": cfg.segment_length},
            "rl": {"kl": rows[-1]["kl"], "proxy_reward": rows[-1]["proxy_reward"],
                   "ptx_log_likelihood": rows[-1]["ptx_log_likelihood"], "kl_coef": m.kl_coef,
                   "ptx_coef": m.ptx_coef, "updates": ppo_cfg.num_updates,
                   "env_steps": ppo_cfg.num_updates * steps_per_update, "steps_per_s": throughput(
                       [{"samples_per_s": r["steps_per_s"]} for r in rows]),
                   "compile_s": compile_s, "prepare_s": prepare_s},
            "gold_gain": evals[k]["return_mean"] - sft_evals[k]["return_mean"],
        })
    summary = run_summary("rlhf", cfg.env, cfg.seed, run, started, blocks, run.members)
    if "members" in summary:
        from il_cli.sweep import aggregate

        for cell in summary["cells"]:
            cell["gold_gain"] = aggregate([summary["members"][s_]["gold_gain"] for s_ in range(M)
                                           if summary["members"][s_]["cell"] == cell["cell"]])
    summary["curves"] = str(write_curves(run))
    summary["plot"] = str(plot_rlhf(run, [b["sft"]["eval"]["return_mean"] for b in blocks]))
    run.write_summary(summary)
    return summary
