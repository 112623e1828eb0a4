"""`il rlhf`: SFT → rankings → a reward model and PPO-ptx against it, or DPO on the rankings; one
driver for both tasks (a control task here, text in il_cli.text.rlhf)."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.algos.bc import make_bc
from il_cli.algos.ppo import hyper_of, make_ppo
from il_cli.algos.rlhf import (
    RLHFObjective,
    dpo_rewards,
    held_out_figures,
    kl_exact,
    make_ranking_fit,
    make_responses,
    make_reward_model,
    rank,
)
from il_cli.config import TEXT_TASK, RLHFConfig, member_configs
from il_cli.envs import make_env
from il_cli.evaluation import eval_key, evaluate, load_expert, load_policy, root_key, stack
from il_cli.experts import get_expert
from il_cli.holdout import NO_HOLDOUT, holdout_count
from il_cli.interop import load_any
from il_cli.loop import Timed, chunk_length, host, jit_members, replicate, run_chunks, shard_members
from il_cli.plots import plot_rlhf, write_curves
from il_cli.runs import Run, open_policy_run
from il_cli.summaries import run_summary, throughput
from il_cli.text.rlhf import TextTask

PREPARE_HYPER = ("demo_noise", "sft_lr", "human_beta", "human_error", "rm_lr", "kl_coef", "lr")
KL_PROMPTS = 32  # prompts whose K responses measure a DPO policy's KL to π_SFT on its own states
KL_PROBE_STREAM = 0x4B1  # the KL probe's keys: from the evaluation keys, never a training key
KL_UNIT = "nats per step: the exact KL(π_RL(·|s) ‖ π_SFT(·|s)), mean over the policy's own states"


def make_stages(cfg: RLHFConfig, env, env_params, spec, expert, actor, model):
    """(sft_stage, label_stage, fit_reward, score_held), the steps of one member before and
    between the RL updates, each its own program (XLA on CPU deadlocked on them fused into
    one when vmapped over four or more members).

    sft_stage(key, expert_params, hyper) -> (π_SFT's params, demonstrations (obs, actions,
    size), figures): episodes of the expert acting at random with probability demo_noise, and
    behavioral cloning on them unless --sft gives π_SFT (the demonstrations are D_pretrain of
    the ptx term unless --pretrain-data is given).
    label_stage(key, policy_params, labels, hyper) -> (labels, held, figures): K responses per
    prompt from the policy, the simulated human's rankings; the training prompts' rankings are
    appended to the buffer `labels` = (obs, actions, alive, order, size), the others held out.
    fit_reward(key, rm_params, labels, held, hyper) -> (r_θ's params, its scale, figures):
    r_θ (warm-started from `rm_params`) fitted by eq. 24.12 to every ranking so far.
    held_figures(scores, held): how well scores of the held-out responses order them."""
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
    _, rm_rewards = make_reward_model(spec, model)
    rm_init, rm_chunk = make_ranking_fit(rm_rewards, cfg.rm_batch)
    P, n_hold = cfg.num_prompts, holdout_count(cfg.num_prompts, cfg.holdout_frac)
    n_train = P - n_hold

    def sft_stage(key, expert_params, hyper):
        demo_key, sft_key = jax.random.split(key)
        demos = episodes((expert_params, hyper["demo_noise"]), demo_key)
        obs, actions, size = rollout.recorded_rows(demos)
        sft = None
        if not cfg.sft:  # else π_SFT is the given run's
            sft, _ = bc_chunk(bc_init(sft_key, networks.dummy_obs(spec), hyper["sft_lr"]), (obs, actions, size),
                              cfg.sft_steps)
        return None if sft is None else sft.params, (obs, actions, size), {"demo_transitions": size, "demo_return": jnp.mean(demos.returns)}

    def label_stage(key, policy_params, labels, hyper):
        prompt_key, rank_key, split_key = jax.random.split(key, 3)
        resp = responses(policy_params, jax.random.split(prompt_key, P))
        orders = jax.vmap(rank, in_axes=(0, 0, None, None))(jax.random.split(rank_key, P), resp.gold,
                                                              hyper["human_beta"], hyper["human_error"])
        perm = jax.random.permutation(split_key, P)
        train, held = perm[n_hold:], perm[:n_hold] if n_hold else perm
        *buffer, size = labels
        new = (resp.obs[train], resp.actions[train], resp.alive[train], orders[train])
        buffer = [jax.lax.dynamic_update_slice_in_dim(b, x, size, 0) for b, x in zip(buffer, new)]
        return ((*buffer, size + n_train), (resp.obs[held], resp.actions[held], resp.alive[held], orders[held],
                                            resp.gold[held]), {"response_gold": jnp.mean(resp.gold)})

    def held_figures(scores, held):
        return held_out_figures(scores, held[3], held[4])

    def fit_reward(key, rm_params, labels, held, hyper):
        rm, losses = rm_chunk(rm_init(rm_params, key, hyper["rm_lr"]), labels, cfg.rm_steps)
        r = rm_rewards(rm.params, *labels[:3])
        w = (jnp.arange(r.shape[0]) < labels[4])[:, None]  # the rankings in the buffer so far
        mean = jnp.sum(w * r) / (w.sum() * cfg.k)
        std = jnp.sqrt(jnp.sum(w * (r - mean) ** 2) / (w.sum() * cfg.k))
        figures = {**held_figures(rm_rewards(rm.params, *held[:3]), held), "rm_train_loss": jnp.mean(losses[-100:])}
        return rm.params, 1.0 / (std + 1e-8), figures

    return sft_stage, label_stage, fit_reward, held_figures


def empty_labels(cfg: RLHFConfig, spec, num_members: int):
    """A buffer for every training ranking of the run (iterations × training prompts), per member."""
    n = cfg.iterations * (cfg.num_prompts - holdout_count(cfg.num_prompts, cfg.holdout_frac))
    K, L = cfg.k, cfg.segment_length
    action = () if spec.discrete else (spec.action_dim,)
    return (jnp.zeros((num_members, n, K, L, *spec.obs_shape)),
            jnp.zeros((num_members, n, K, L, *action), jnp.int32 if spec.discrete else jnp.float32),
            jnp.zeros((num_members, n, K, L), bool), jnp.zeros((num_members, n, K), jnp.int32),
            jnp.zeros((num_members,), jnp.int32))


def pretrain_data(cfg: RLHFConfig, num_members: int):
    """D_pretrain from --pretrain-data, (obs, actions, size) for every member."""
    data = load_any(cfg.pretrain_data, cfg.env)
    obs, actions = jnp.asarray(data.obs), jnp.asarray(data.actions)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_members, *x.shape)),
                        (obs, actions, jnp.int32(obs.shape[0])))


def run_rlhf(cfg, run: Run, ui) -> dict:
    """`il rlhf`, both tasks: the task's stages 1–2 (ControlTask, or il_cli.text.rlhf's
    TextTask), then stage 3 (PPO against r_θ with the KL penalty and the ptx term, or DPO) in
    chunks, every member in one vmapped program, resumable; then the summary, curves.png and
    rlhf.png (the gold gain and the proxy against √KL)."""
    started = time.time()
    task = TextTask(cfg, run, ui) if getattr(cfg, "task", None) == TEXT_TASK else ControlTask(cfg, run, ui)
    state, start = run.continue_from_checkpoint(task.state)
    with ui.progress(cfg.steps, "DPO step" if task.dpo else "update") as progress:
        state, _ = run_chunks(state, task.train, total=cfg.steps, chunk=task.chunk, start=start, run=run,
                              progress=progress, members=run.members,
                              summarize=lambda step, out, state: [logged(r) for r in task.log(step, *out, state)])
    run.wait()
    blocks = task.blocks(state)
    summary = run_summary("rlhf", cfg.env, cfg.seed, run, started, blocks, run.members)
    summary["curves"] = str(write_curves(run, summary))
    summary["plot"] = str(plot_rlhf(run, task.sft_gold))
    run.write_summary(summary)
    return summary


def logged(figures: dict) -> dict:
    """A task's figures after a chunk as a metrics row, the same names in both tasks: the gold
    return (or score) of π_RL, the exact KL to π_SFT and its square root (rlhf.png's axis), the
    scorer's accuracy on the held-out rankings (`ranking_accuracy`) and on the pairs the gold
    score orders (`gold_pair_accuracy`), and the task's own figures."""
    figures = dict(figures)
    gold, kl = figures.pop("gold"), figures.pop("kl")
    return {"gold_return": gold, "return": gold, "kl": kl, "sqrt_kl": float(np.sqrt(max(kl, 0.0))), **figures}


class ControlTask:
    """Stages 1–2 of every member on a control task (noisy demonstrations and SFT, K responses
    per prompt ranked, r_θ) and the pieces of stage 3 the driver runs: `state`, `chunk`,
    `train`, `log`, `blocks`, `sft_gold`."""

    kl_unit = "nats per step: the exact KL(π_RL(·|s) ‖ π_SFT(·|s)), mean over the policy's own states"

    def __init__(self, cfg: RLHFConfig, run: Run, ui):
        self.cfg, self.run = cfg, run
        self.member_cfgs = member_cfgs = member_configs(cfg)
        M = len(member_cfgs)
        self.env, self.env_params, self.spec = env, env_params, spec = make_env(cfg.env)
        _, expert, expert_params = load_expert(str(get_expert(cfg.env, cfg.expert, ui).path))
        self.actor = actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
        if cfg.sft:  # its architecture is cfg's (il_cli.launch.sft_architecture)
            _, _, sft_params = load_policy(open_policy_run(cfg.sft, cfg.env, ("bc",)))
            sft_params = stack([sft_params] * M)
        model = networks.make_state_action(spec, cfg.rm_hidden)
        self.ppo_cfg = ppo_cfg = cfg.ppo()
        self.dpo = dpo = cfg.method == "dpo"

        # stage 1 and the first rankings, then the reward model (recomputed on --resume: deterministic)
        ui.print(f"stages 1–2: {'SFT from ' + cfg.sft if cfg.sft else 'noisy demonstrations and SFT'}, "
                 f"{cfg.num_prompts} prompts × {cfg.k} responses ranked"
                 + ("" if dpo else ", reward model") + (f", {cfg.iterations} iterations" if cfg.iterations > 1 else ""))
        t0 = time.perf_counter()
        sft_stage, label_stage, fit_reward, held_figures = make_stages(cfg, env, env_params, spec, expert, actor, model)
        self.label_stage = label_stage = jit_members(jax.vmap(label_stage))
        self.fit_reward = fit_reward = jit_members(jax.vmap(fit_reward))
        keys = [jax.random.split(jax.random.split(root_key(m.seed), 3)[0], 3) for m in member_cfgs]
        sft_keys, self.label_keys, self.rm_keys = (shard_members(stack([k[i] for k in keys])) for i in range(3))
        rm_keys = self.rm_keys
        self.hyper = hyper = shard_members({k: jnp.array([getattr(m, k) for m in member_cfgs], jnp.float32)
                                            for k in PREPARE_HYPER})
        trained_sft, pretrain, self.prepared = jax.block_until_ready(jit_members(jax.vmap(
            sft_stage, in_axes=(0, None, 0)))(sft_keys, replicate(expert_params), hyper))
        self.sft_params = sft_params = shard_members(sft_params if cfg.sft else trained_sft)
        if cfg.pretrain_data:
            pretrain = shard_members(pretrain_data(cfg, M))
        labels, held, label_figures = label_stage(self.label_keys, sft_params,
                                                  shard_members(empty_labels(cfg, spec, M)), hyper)
        self.sft_held = held  # the held-out rankings of π_SFT's responses (iteration 1), which the summary describes
        self.state = state = {"sft": sft_params, "labels": labels, "held": held, "figures": label_figures}
        self.per_iteration = cfg.steps // cfg.iterations
        self.chunk = chunk = chunk_length(self.per_iteration, max(1, cfg.num_chunks // cfg.iterations))
        if dpo:
            score = dpo_rewards(spec, actor)
            dpo_init, dpo_chunk = make_ranking_fit(score, cfg.rm_batch)
            state["dpo"] = jit_members(jax.vmap(dpo_init))(sft_params, rm_keys, hyper["lr"])
            self.implicit = jit_members(jax.vmap(lambda p, s, h, b: held_figures(score(p, *h[:3], s, b), h)))
            self.kl_probe = make_kl_probe(cfg, env, env_params, spec, actor)
            self.program = Timed(jit_members(jax.vmap(lambda s, data, sft, beta: dpo_chunk(s, data, chunk, sft, beta))))
        else:
            init_params, _ = make_reward_model(spec, model)
            rm_params = jit_members(jax.vmap(init_params))(jax.vmap(lambda k: jax.random.fold_in(k, 1))(rm_keys))
            state["rm"], state["rm_scale"], rm_figures = fit_reward(rm_keys, rm_params, labels, held, hyper)
            state["figures"] = {**label_figures, **rm_figures}
            objective = RLHFObjective(spec, actor, model, cfg.batch_size)
            _, ppo_init, ppo_chunk = make_ppo(ppo_cfg, env, env_params, spec, objective)
            self.ppo_hyper = shard_members({**stack([{**hyper_of(m.ppo()), "kl_coef": jnp.float32(m.kl_coef),
                                                      "kl_target": jnp.float32(m.kl_target),
                                                      "ptx_coef": jnp.float32(m.ptx_coef)} for m in member_cfgs]),
                                            "sft": sft_params, "pretrain": pretrain})
            init_keys = shard_members(stack([jax.random.split(root_key(m.seed), 3)[1] for m in member_cfgs]))
            ppo = jit_members(jax.vmap(ppo_init))(init_keys, self.ppo_hyper)
            state["ppo"] = ppo.replace(params={**ppo.params, "actor": sft_params})
            self.program = Timed(jit_members(jax.vmap(lambda s, h: ppo_chunk(s, h, chunk))))
        self.first = host(state["figures"])  # of the rankings of π_SFT's responses
        self.prepare_s = time.perf_counter() - t0
        self.eval_keys = shard_members(stack([eval_key(m.seed) for m in member_cfgs]))
        self.sft_evals = self.evaluate(sft_params)
        self.sft_gold = [e["return_mean"] for e in self.sft_evals]
        self.steps_per_update = ppo_cfg.num_envs * ppo_cfg.num_steps

    def evaluate(self, params) -> list[dict]:
        cfg = self.cfg
        return evaluate(cfg.env, self.actor, params, self.eval_keys, cfg.eval_episodes, cfg.eval_policy)

    def policy(self, state):
        return state["dpo"].params if self.dpo else state["ppo"].params["actor"]

    def step_of(self, state) -> int:
        return int(host(state["dpo"].step if self.dpo else state["ppo"].update)[0])

    def relabel(self, state, step):
        """--iterations: rank the current policy's responses, refit r_θ to every ranking so far."""
        i = step // self.per_iteration
        fold = lambda keys: jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i)
        labels, held, figures = self.label_stage(fold(self.label_keys), self.policy(state), state["labels"],
                                                 self.hyper)
        state = {**state, "labels": labels, "held": held}
        if not self.dpo:
            rm, scale, rm_figures = self.fit_reward(fold(self.rm_keys), state["rm"], labels, held, self.hyper)
            state.update(rm=rm, rm_scale=scale)
            figures = {**figures, **rm_figures}
        return {**state, "figures": figures}

    def train(self, state):
        step = self.step_of(state)
        if step and step % self.per_iteration == 0:
            state = jax.block_until_ready(self.relabel(state, step))
        if self.dpo:
            args = (state["dpo"], state["labels"], state["sft"], self.hyper["kl_coef"])
        else:
            args = (state["ppo"], {**self.ppo_hyper, "rm": state["rm"], "rm_scale": state["rm_scale"]})
        (out, metrics), seconds = self.program(*args)
        return {**state, "dpo" if self.dpo else "ppo": out}, (metrics, seconds)

    def log(self, step, metrics, train_s, state) -> list[dict]:
        """Each member's figures after a chunk (`logged` makes them a metrics row)."""
        M, chunk, per_update = len(self.member_cfgs), self.chunk, self.steps_per_update
        evals = self.evaluate(self.policy(state))
        figures = host(state["figures"])
        if self.dpo:
            figures = {**figures, **host(self.implicit(self.policy(state), state["sft"], state["held"],
                                                       self.hyper["kl_coef"]))}
            kl = host(self.kl_probe(self.policy(state), state["sft"], kl_probe_keys(self.eval_keys, step)))
        rows = []
        for k in range(M):
            m = jax.tree.map(lambda x: np.asarray(x[k]), metrics)
            row = {"gold": evals[k]["return_mean"], "gold_pair_accuracy": pair_accuracy(figures, k),
                   "ranking_accuracy": float(figures["ranking_accuracy"][k])}
            if self.dpo:
                row.update(kl=float(kl[k]), loss=float(np.mean(m)), steps_per_s=M * chunk / train_s)
            else:
                row.update(proxy_reward=float(m["proxy_reward"][-1]), kl=float(m["kl"][-1]),
                           kl_coef=float(m["kl_coef"][-1]), ptx_log_likelihood=float(m["ptx_log_likelihood"][-1]),
                           entropy=float(m["entropy"][-1]), loss=float(np.mean(m["loss"])),
                           env_steps=step * per_update, steps_per_s=M * chunk * per_update / train_s)
            rows.append(row)
        return rows

    def blocks(self, state) -> list[dict]:
        cfg, dpo, ppo_cfg = self.cfg, self.dpo, self.ppo_cfg
        evals = self.evaluate(self.policy(state))
        prepared, first, last = host(self.prepared), self.first, host(state["figures"])
        if dpo:  # the final policy's implicit reward, on π_SFT's held-out rankings and on the last iteration's
            final = lambda held: host(self.implicit(self.policy(state), state["sft"], held, self.hyper["kl_coef"]))
            first = {**first, **final(self.sft_held)}
            last = {**last, **final(state["held"])}
        scorer = "the final policy's implicit reward β log(π/π_SFT)" if dpo else "r_θ fitted to iteration 1's rankings"
        held_prompts = holdout_count(cfg.num_prompts, cfg.holdout_frac)
        where = "held-out prompts" if held_prompts else "training prompts (none held out)"
        blocks = []
        for k, m in enumerate(self.member_cfgs):
            rows = self.run.metrics(member=k)
            prep = {name: float(v[k]) for name, v in prepared.items()}
            ranked = lambda figures: {**{name: float(figures[name][k]) for name in (
                "ranking_accuracy", "decided_pairs", "response_gold")}, "gold_pair_accuracy": pair_accuracy(figures, k)}
            rl = {"method": cfg.method, "kl": rows[-1]["kl"], "kl_unit": self.kl_unit, "kl_coef": m.kl_coef,
                  "steps": cfg.steps, "iterations": cfg.iterations, "compile_s": self.program.compile_s,
                  "prepare_s": self.prepare_s,
                  "steps_per_s": throughput([{"samples_per_s": r["steps_per_s"]} for r in rows])}
            if not dpo:
                rl.update(proxy_reward=rows[-1]["proxy_reward"], ptx_log_likelihood=rows[-1]["ptx_log_likelihood"],
                          final_kl_coef=rows[-1]["kl_coef"], kl_target=m.kl_target, ptx_coef=m.ptx_coef,
                          pretrain_data=cfg.pretrain_data, updates=ppo_cfg.num_updates,
                          env_steps=ppo_cfg.num_updates * self.steps_per_update)
            blocks.append({
                "eval": evals[k],
                "sft": {"eval": self.sft_evals[k], "run": cfg.sft, "demo_noise": m.demo_noise,
                        "demo_episodes": None if cfg.sft else cfg.demo_episodes,
                        "demo_transitions": None if cfg.sft else int(prep["demo_transitions"]),
                        "demo_return": None if cfg.sft else prep["demo_return"]},
                "reward_model": {**ranked(first), "model": "implicit" if dpo else "r_θ",
                                 "measured_on": f"{scorer}, on π_SFT's responses to the {where}",
                                 "holdout": {"prompts": held_prompts} if held_prompts else NO_HOLDOUT,
                                 **({} if dpo else {"train_loss": float(first["rm_train_loss"][k])}),
                                 "rankings": cfg.iterations * cfg.num_prompts, "k": cfg.k,
                                 "labels": cfg.iterations * cfg.num_prompts * cfg.k * (cfg.k - 1) // 2,
                                 "held_out_prompts": held_prompts, "segment_length": cfg.segment_length,
                                 **({"last_iteration": {
                                     **ranked(last),
                                     "measured_on": f"{'the final policy' if dpo else 'r_θ fitted to every ranking'}"
                                     f", on iteration {cfg.iterations}'s responses (of the policy after "
                                     f"{cfg.iterations - 1} iterations) to the {where}"}} if cfg.iterations > 1 else {})},
                "rl": rl,
                "gold_gain": evals[k]["return_mean"] - self.sft_evals[k]["return_mean"],
            })
        return blocks


def pair_accuracy(figures, k: int) -> float | None:
    """Member k's held-out accuracy on the pairs the true returns order; None if they order none."""
    return float(figures["gold_pair_accuracy"][k]) if figures["decided_pairs"][k] > 0 else None


def kl_probe_keys(eval_keys, step: int):
    """The keys of the DPO KL probe after `step`: each member's evaluation key's own stream."""
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, KL_PROBE_STREAM), step))(eval_keys)


def make_kl_probe(cfg: RLHFConfig, env, env_params, spec, actor):
    """kl(params, sft_params, key) per member: the exact KL(π ‖ π_SFT) averaged over the states
    of K responses of π to each of KL_PROMPTS prompts (π's own states, as PPO's log has it)."""
    responses = jax.vmap(make_responses(env, env_params, spec, actor, cfg.k, cfg.segment_length), in_axes=(None, 0))

    def kl(params, sft_params, key):
        resp = responses(params, jax.random.split(key, KL_PROMPTS))
        per_state = kl_exact(spec.discrete, actor.apply(params, resp.obs), actor.apply(sft_params, resp.obs))
        return jnp.sum(jnp.where(resp.alive, per_state, 0.0)) / jnp.maximum(resp.alive.sum(), 1)

    return jit_members(jax.vmap(kl))
