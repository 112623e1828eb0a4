"""The text task of `il rlhf --task text` (il_cli.jobs.rlhf drives it): pretraining → SFT →
rankings (simulated or a person's) → a reward model and PPO-ptx on the tokens, or DPO; every
member of a sweep in one vmapped program. And the evaluation `il eval` repeats on a text run."""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from il_cli.algos.fit import make_fit
from il_cli.algos.rlhf import held_out_figures, kl_exact, make_ranking_fit, rank
from il_cli.algos.text_rlhf import (
    answer_logits,
    lm_loss,
    make_text_ppo,
    make_text_reward,
    scaled_head,
    sequence_log_likelihood,
    text_dpo_score,
)
from il_cli.config import TextRLHFConfig, member_configs
from il_cli.errors import UserError
from il_cli.evaluation import root_key, stack
from il_cli.holdout import NO_HOLDOUT, split_units
from il_cli.loop import Timed, chunk_length, host, jit_members, shard_members
from il_cli.runs import Run
from il_cli.text import model as text_model
from il_cli.text.task import (
    PROMPT_LEN,
    SEQ_LEN,
    answer_mask,
    corpus,
    decode,
    gold_score,
    noisy_answers,
    reference_answers,
    train_prompts,
)

PREPARE_HYPER = ("pretrain_lr", "sft_lr", "demo_noise", "human_beta", "human_error", "rm_lr", "kl_coef")
PPO_HYPER = ("lr", "clip_eps", "vf_coef", "gae_lambda", "kl_coef", "ptx_coef")
HELD_CORPUS = 512  # rows of held-out corpus on which the pretraining log-likelihood is measured
EXAMPLES = 6  # held-out prompts shown with SFT's and RLHF's answers
KL_UNIT = "nats per answer: the exact KL(π_RL ‖ π_SFT) summed over the answer's tokens, mean over held-out prompts"


def models(cfg: TextRLHFConfig):
    """(policy, reward model): the reward model (and PPO's value function) is the transformer
    with a scalar head, --rm-d-model wide."""
    policy = text_model.Transformer(num_layers=cfg.num_layers, d_model=cfg.d_model, num_heads=cfg.num_heads)
    rm = text_model.Transformer(num_layers=cfg.num_layers, d_model=cfg.rm_d_model, num_heads=cfg.num_heads,
                                head="scalar")
    return policy, rm


def make_stages(cfg: TextRLHFConfig, policy, rm_model):
    """The steps of one member before stage 3, each its own program.

    pretrain(key, hyper) -> (params, corpus, held corpus, figures): next-token training on
    D_pretrain. sft(key, params, hyper) -> (params, figures): the log-likelihood of the noisy
    writer's answers. answers(key, params) -> (prompts [P, K, Tp], answers [P, K, Ta], gold
    [P, K]): K answers of π_SFT to each of P training prompts. simulated_ranks(key, gold,
    hyper) -> orders [P, K]. fit_reward(key, sft_params, labels, held, hyper) -> (r_θ's params,
    its scale, figures): eq. 24.12 on the rankings, r_θ initialised from π_SFT's transformer
    (InstructGPT's choice) when it has π's width."""
    pre_init, _, pre_chunk = make_fit(lm_loss(policy), cfg.batch_size)
    sft_init, _, sft_chunk = make_fit(lm_loss(policy, PROMPT_LEN), cfg.batch_size)
    score = make_text_reward(rm_model)
    rm_init, rm_chunk = make_ranking_fit(score, cfg.rm_batch)
    P, K = cfg.num_prompts, cfg.k

    def pretrain(key, hyper):
        corpus_key, _, init_key, fit_key = jax.random.split(key, 4)
        rows = corpus(corpus_key, cfg.corpus_size, SEQ_LEN)
        held = held_corpus_of(key)
        params = policy.init(init_key, rows[:1, :-1])
        state, losses = pre_chunk(pre_init(params, fit_key, hyper["pretrain_lr"]), (rows, cfg.corpus_size),
                                  cfg.pretrain_steps)
        return state.params, rows, held, {"pretrain_loss": jnp.mean(losses[-50:])}

    def sft(key, params, hyper):
        prompt_key, noise_key, fit_key = jax.random.split(key, 3)
        prompts = train_prompts(prompt_key, cfg.sft_examples)
        answers = noisy_answers(noise_key, prompts, hyper["demo_noise"])
        state, losses = sft_chunk(sft_init(params, fit_key, hyper["sft_lr"]),
                                  (jnp.concatenate([prompts, answers], 1), cfg.sft_examples), cfg.sft_steps)
        return state.params, {"sft_loss": jnp.mean(losses[-50:]), "demo_gold": jnp.mean(gold_score(prompts, answers))}

    def answers(key, params):
        prompt_key, sample_key = jax.random.split(key)
        prompts = jnp.repeat(train_prompts(prompt_key, P), K, axis=0)
        ans = text_model.sample(policy, params, prompts, sample_key)
        return (prompts.reshape(P, K, -1), ans.reshape(P, K, -1), gold_score(prompts, ans).reshape(P, K))

    def simulated_ranks(key, gold, hyper):
        return jax.vmap(rank, in_axes=(0, 0, None, None))(jax.random.split(key, gold.shape[0]), gold,
                                                          hyper["human_beta"], hyper["human_error"])

    def fit_reward(key, sft_params, labels, held, hyper):
        init_key, fit_key = jax.random.split(key)
        params = rm_model.init(init_key, labels[0][0, :1, :-1])
        if cfg.rm_d_model == cfg.d_model:  # π_SFT's transformer, the unembedding replaced by a scalar head
            params = {"params": {**sft_params["params"], "Dense_0": params["params"]["Dense_0"]}}
        state, losses = rm_chunk(rm_init(params, fit_key, hyper["rm_lr"]), labels, cfg.rm_steps)
        r = score(state.params, *labels[:3])
        w = (jnp.arange(r.shape[0]) < labels[4])[:, None]
        mean = jnp.sum(w * r) / (w.sum() * K)
        std = jnp.sqrt(jnp.sum(w * (r - mean) ** 2) / (w.sum() * K))
        figures = {**held_out_figures(score(state.params, *held[:3]), held[3], held[4]),
                   "rm_train_loss": jnp.mean(losses[-50:])}
        return state.params, 1.0 / (std + 1e-8), figures

    return pretrain, sft, answers, simulated_ranks, fit_reward


def make_evaluate(cfg: TextRLHFConfig, policy):
    """evaluate(params, sft_params, key, held_corpus) -> figures on the held-out prompts: the
    gold score of sampled and of greedy answers, the exact KL(π ‖ π_SFT) summed over the
    answer's tokens, and the per-token log-likelihood of the held-out corpus."""

    def evaluate(params, sft_params, key, held_corpus):
        prompt_key, sample_key = jax.random.split(key)
        prompts = train_prompts(prompt_key, cfg.eval_prompts, held_out=True)
        sampled = text_model.sample(policy, params, prompts, sample_key)
        greedy = text_model.sample(policy, params, prompts, sample_key, 0.0)
        mask = answer_mask(sampled)
        kl = kl_exact(True, answer_logits(policy, params, prompts, sampled),
                      answer_logits(policy, sft_params, prompts, sampled))
        return {"gold": jnp.mean(gold_score(prompts, sampled)), "gold_greedy": jnp.mean(gold_score(prompts, greedy)),
                "exact": jnp.mean(jnp.all(greedy == reference_answers(prompts), axis=-1)),
                "kl": jnp.mean(jnp.sum(jnp.where(mask, kl, 0.0), -1)),
                "corpus_log_likelihood": jnp.mean(sequence_log_likelihood(policy, params, held_corpus))}

    return evaluate


def member_keys(seed: int):
    """The keys of a member's stages: pretraining, SFT, answers, rankings, r_θ, PPO, evaluation."""
    return jax.random.split(root_key(seed), 8)


def held_corpus_of(key):
    """The held-out corpus rows of the member whose pretraining key is `key`."""
    return corpus(jax.random.split(key, 4)[1], HELD_CORPUS, SEQ_LEN)


def evaluate_run(run: Run, stage: str | None = None) -> list[dict]:
    """Every member's figures on the run's held-out prompts and keys, for the final policy or
    an earlier `stage`'s (`il eval` of a text run reproduces the run's own numbers)."""
    from il_cli.evaluation import policy_tree, read_checkpoint
    from il_cli.recipe import from_json

    cfg = from_json(TextRLHFConfig, run.meta["config"])
    tree = read_checkpoint(run)
    params, sft_params = policy_tree(run, tree, stage), tree["sft"]
    keys = stack([member_keys(m.seed) for m in member_configs(cfg)])
    figures = jax.jit(jax.vmap(make_evaluate(cfg, models(cfg)[0])))(
        params, sft_params, keys[:, 6], jax.jit(jax.vmap(held_corpus_of))(keys[:, 0]))
    return [{name: float(v[k]) for name, v in host(figures).items()} for k in range(keys.shape[0])]


def person_rankings(cfg: TextRLHFConfig, prompts, answers, ui, ask: bool):
    """(indices, orders) of the prompts ranked in --rankings FILE, after the person ranks the
    rest in the terminal if `ask` (--human, and no training has started on the file yet)."""
    from il_cli.text import human

    path = Path(cfg.rankings)
    rankings = (human.load_rankings(path, prompts, answers) if path.exists()
                else human.new_rankings(prompts, answers))
    if ask:
        ui.print(f"rank each prompt's {cfg.k} answers, best first (like 3142), s to skip, q to stop; "
                 f"saved to {path} after every answer")
        rankings = human.rank_in_terminal(ui.console, rankings, lambda row: decode(row[1:-1]),
                                          lambda row: decode(row) or "(empty)", path)
    index, orders = human.ranked(rankings)
    if len(index) < 2:
        raise UserError(f"{path} holds {len(index)} ranking(s); rank at least 2 (run again with --human "
                        f"--rankings {path} to go on where you stopped)")
    return index, orders


class TextTask:
    """Stages 1–2 of every member (pretraining, SFT, K answers per prompt, rankings, r_θ) and the
    pieces of stage 3 that il_cli.jobs.rlhf's driver runs: `state`, `chunk`, `train`, `rows`,
    `blocks`, `sft_gold`."""

    kl_unit = "nats per answer: the exact KL(π_RL ‖ π_SFT) summed over the answer's tokens, mean over held-out prompts"

    def __init__(self, cfg: TextRLHFConfig, run: Run, ui):
        self.cfg, self.run = cfg, run
        self.member_cfgs = member_cfgs = member_configs(cfg)
        M = len(member_cfgs)
        policy, rm_model = models(cfg)
        self.policy = policy
        self.dpo = dpo = cfg.method == "dpo"
        pretrain, sft, answers, simulated_ranks, fit_reward = make_stages(cfg, policy, rm_model)
        keys = [member_keys(m.seed) for m in member_cfgs]
        key = lambda i: shard_members(stack([k[i] for k in keys]))
        floats = lambda names: shard_members({n: jnp.array([getattr(m, n) for m in member_cfgs], jnp.float32)
                                              for n in names})  # each member's values of these hyperparameters
        self.hyper = hyper = floats(PREPARE_HYPER)

        ui.print(f"stages 1–2: pretraining ({cfg.pretrain_steps} steps on {cfg.corpus_size} corpus rows), SFT on "
                 f"{cfg.sft_examples} noisy answers, {cfg.num_prompts} prompts × {cfg.k} answers ranked"
                 + (" by you" if cfg.human else " by a person (--rankings)" if cfg.rankings else "")
                 + ("" if dpo else ", reward model"))
        t0 = time.perf_counter()
        pretrained, rows, self.held_corpus, pre_figures = jit_members(jax.vmap(pretrain))(key(0), hyper)
        sft_params, sft_figures = jit_members(jax.vmap(sft))(key(1), pretrained, hyper)
        self.sft_params = sft_params
        prompts, ans, gold = jit_members(jax.vmap(answers))(key(2), sft_params)
        if cfg.rankings:  # a person's rankings of member 0's answers (--human allows one member)
            index, orders = person_rankings(cfg, np.asarray(prompts[0, :, 0]), np.asarray(ans[0]), ui,
                                            ask=cfg.human and run.latest_step() is None)
            prompts, ans, gold = (x[:, index] for x in (prompts, ans, gold))
            orders = jnp.asarray(orders)[None]
        else:
            orders = jit_members(jax.vmap(simulated_ranks))(key(3), gold, hyper)
        splits = [split_units(jax.random.fold_in(k[3], 1), gold.shape[1], cfg.holdout_frac) for k in keys]
        self.train_idx, held_idx = (np.stack([s[i] for s in splits]) for i in (0, 1))  # each member's own split
        self.held_out = held_idx.shape[1] > 0
        self.held_idx = held_idx if self.held_out else self.train_idx  # none held out: measured on training data
        mask = answer_mask(ans)
        rows_of = lambda x, idx: jax.vmap(lambda a, i: a[i])(x, jnp.asarray(idx))
        labels = (*(rows_of(x, self.train_idx) for x in (prompts, ans, mask, orders)),
                  jnp.full((M,), self.train_idx.shape[1], jnp.int32))
        held_labels = tuple(rows_of(x, self.held_idx) for x in (prompts, ans, mask, orders, gold))
        self.labels, self.held_labels = shard_members(labels), shard_members(held_labels)
        self.state = {"sft": sft_params}
        if dpo:
            score = text_dpo_score(policy)
            dpo_init, dpo_chunk = make_ranking_fit(score, cfg.rm_batch)
            self.state["dpo"] = jit_members(jax.vmap(dpo_init))(sft_params, key(4), floats(["lr"])["lr"])
            self.implicit = jit_members(jax.vmap(lambda p, s, h, b: held_out_figures(score(p, *h[:3], s, b), h[3], h[4])))
            rm_figures = {}
        else:
            rm_params, rm_scale, rm_figures = jit_members(jax.vmap(fit_reward))(key(4), sft_params, self.labels,
                                                                                self.held_labels, hyper)
            sample = lambda params, prompts, key: text_model.sample(policy, params, prompts, key)
            ppo_init, ppo_chunk = make_text_ppo(policy, rm_model, make_text_reward(rm_model), sample,
                                                rollout_prompts=cfg.rollout_prompts, num_epochs=cfg.num_epochs,
                                                num_minibatches=cfg.num_minibatches, ptx_batch=cfg.batch_size,
                                                max_grad_norm=cfg.max_grad_norm)
            self.ppo_hyper = {**floats(PPO_HYPER), "sft": sft_params, "rm": rm_params, "rm_scale": rm_scale,
                              "corpus": rows}
            value_params = jit_members(jax.vmap(scaled_head))(rm_params, rm_scale)  # V on the rewards' scale
            self.state["ppo"] = jit_members(jax.vmap(ppo_init))(sft_params, value_params, key(5), self.ppo_hyper["lr"])
        self.prepare_s = time.perf_counter() - t0
        self.prepared = host({**pre_figures, **sft_figures, **rm_figures})

        self.evaluate = jit_members(jax.vmap(make_evaluate(cfg, policy)))
        self.eval_keys = key(6)
        self.sft_eval = host(self.evaluate(sft_params, sft_params, self.eval_keys, self.held_corpus))
        self.pre_eval = host(self.evaluate(pretrained, sft_params, self.eval_keys, self.held_corpus))
        self.sft_gold = [float(g) for g in self.sft_eval["gold"]]
        self.chunk = chunk = chunk_length(cfg.steps, cfg.num_chunks)
        if dpo:
            self.program = Timed(jit_members(jax.vmap(lambda s, data, sft_, beta: dpo_chunk(s, data, chunk, sft_, beta))))
        else:
            self.program = Timed(jit_members(jax.vmap(lambda s, h: ppo_chunk(s, h, chunk))))

    def policy_of(self, state):
        return state["dpo"].params if self.dpo else state["ppo"].params["policy"]

    def train(self, state):
        (out, metrics), seconds = (self.program(state["dpo"], self.labels, state["sft"], self.hyper["kl_coef"])
                                   if self.dpo else self.program(state["ppo"], self.ppo_hyper))
        return {**state, "dpo" if self.dpo else "ppo": out}, (metrics, seconds)

    def figures(self, state) -> dict:
        """Each member's held-out figures of the policy: gold (sampled, greedy), exact answers, KL
        per answer, corpus log-likelihood; and how its scorer orders the held-out rankings."""
        ev = host(self.evaluate(self.policy_of(state), state["sft"], self.eval_keys, self.held_corpus))
        ranked = host(self.implicit(self.policy_of(state), state["sft"], self.held_labels, self.hyper["kl_coef"])) \
            if self.dpo else self.prepared  # DPO's implicit reward now; r_θ's, fitted once
        return {**ev, **{k: ranked[k] for k in ("ranking_accuracy", "gold_pair_accuracy")}}

    def log(self, step, metrics, train_s, state) -> list[dict]:
        """Each member's figures after a chunk (il_cli.jobs.rlhf.logged makes them a metrics row)."""
        figures = self.figures(state)
        M, chunk = len(self.member_cfgs), self.chunk
        rows = []
        for k in range(M):
            row = {name: float(figures[name][k]) for name in ("gold", "kl", "ranking_accuracy", "gold_pair_accuracy",
                                                               "gold_greedy", "exact", "corpus_log_likelihood")}
            if self.dpo:
                row.update(loss=float(np.mean(metrics[k])), steps_per_s=M * chunk / train_s)
            else:
                m = jax.tree.map(lambda x: float(x[k][-1]), metrics)
                row.update(proxy_reward=m["proxy_reward"], train_gold=m["gold_reward"], train_kl=m["kl"],
                           ptx_log_likelihood=m["ptx_log_likelihood"], answer_length=m["answer_length"],
                           value_loss=m["value_loss"], answers_per_s=M * chunk * self.cfg.rollout_prompts / train_s)
            rows.append(row)
        return rows

    def blocks(self, state) -> list[dict]:
        cfg, dpo, prepared = self.cfg, self.dpo, self.prepared
        final = host(self.evaluate(self.policy_of(state), state["sft"], self.eval_keys, self.held_corpus))
        if dpo:  # the final policy's implicit reward β log(π/π_SFT) on the held-out rankings
            prepared = {**prepared, **host(self.implicit(self.policy_of(state), state["sft"], self.held_labels,
                                                         self.hyper["kl_coef"]))}
        examples = side_by_side(self.policy, [m.seed for m in self.member_cfgs], self.sft_params, self.policy_of(state))
        scorer = "the final policy's implicit reward β log(π/π_SFT)" if dpo else "r_θ"
        where = "held-out prompts" if self.held_out else "training prompts (none held out)"
        blocks = []
        for k, m in enumerate(self.member_cfgs):
            rows = self.run.metrics(member=k)
            pick = lambda ev: {name: float(v[k]) for name, v in ev.items()}
            rl = {"method": cfg.method, "kl_unit": self.kl_unit, "kl_coef": m.kl_coef, "steps": cfg.steps,
                  "compile_s": self.program.compile_s, "prepare_s": self.prepare_s, **pick(final)}
            if not dpo:
                rl.update(ptx_coef=m.ptx_coef, proxy_reward=rows[-1]["proxy_reward"],
                          answers_per_s=float(np.median([r["answers_per_s"] for r in rows])))
            blocks.append({
                "eval": {"return_mean": float(final["gold"][k]), "gold_greedy": float(final["gold_greedy"][k]),
                         "exact": float(final["exact"][k]), "prompts": cfg.eval_prompts, "held_out": True},
                "pretrained": {**pick(self.pre_eval), "loss": float(prepared["pretrain_loss"][k])},
                "sft": {**pick(self.sft_eval), "loss": float(prepared["sft_loss"][k]),
                        "demo_gold": float(prepared["demo_gold"][k]), "demo_noise": m.demo_noise},
                "reward_model": {
                    "model": "implicit" if dpo else "r_θ",
                    "ranking_accuracy": float(prepared["ranking_accuracy"][k]),
                    "gold_pair_accuracy": float(prepared["gold_pair_accuracy"][k]),
                    "measured_on": f"{scorer}, on π_SFT's answers to the {where}",
                    "holdout": {"rankings": self.held_idx.shape[1]} if self.held_out else NO_HOLDOUT,
                    **({} if dpo else {"train_loss": float(prepared["rm_train_loss"][k]), "d_model": cfg.rm_d_model}),
                    "rankings": self.train_idx.shape[1],
                    "held_out_rankings": self.held_idx.shape[1] if self.held_out else 0,
                    "k": cfg.k, "ranker": "person" if cfg.rankings else "simulated"},
                "rl": rl,
                "gold_gain": float(final["gold"][k] - self.sft_eval["gold"][k]),
                "examples": examples[k],
            })
        return blocks


def side_by_side(policy, seeds: list[int], sft_params, params) -> list[list[dict]]:
    """Per member, EXAMPLES held-out prompts (drawn with its seed) with π_SFT's and π_RL's greedy
    answers and their gold scores."""
    prompts = jnp.stack([train_prompts(jax.random.PRNGKey(seed), EXAMPLES, held_out=True) for seed in seeds])
    greedy = jax.jit(jax.vmap(lambda p, x: text_model.sample(policy, p, x, jax.random.PRNGKey(0), 0.0)))
    sft_ans, rl_ans, prompts = host((greedy(sft_params, prompts), greedy(params, prompts), prompts))
    out = []
    for k, x in enumerate(prompts):
        out.append([{"prompt": decode(p[1:-1]), "sft": decode(s), "rlhf": decode(r),
                     "sft_gold": float(gs), "rlhf_gold": float(gr)}
                    for p, s, r, gs, gr in zip(x, sft_ans[k], rl_ans[k], gold_score(x, sft_ans[k]),
                                               gold_score(x, rl_ans[k]))])
    return out
