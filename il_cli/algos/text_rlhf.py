"""RLHF on language, as InstructGPT did it (lecture section 24.2.4), in miniature.

A prompt x is a token sequence, a response y an answer drawn token by token from
π(y_t | x, y_<t) (il_cli.text). The stages: pretraining, the next-token log-likelihood of a
corpus D_pretrain; SFT, the log-likelihood of demonstrated answers; a reward model r_θ(x, y),
the transformer with a scalar head read at y's last token, fitted to K-way rankings by eq.
24.12 (il_cli.algos.rlhf.make_ranking_fit); pretraining and SFT are il_cli.algos.fit's fit; and PPO on the tokens for

    E_{x, y∼π_RL}[r_θ(x, y) − β log(π_RL(y|x)/π_SFT(y|x))] + γ E_{x∼D_pretrain}[log π_RL(x)]   (eq. 24.13–24.14)

with the KL penalty paid per token, −β log(π_RL(y_t|·)/π_SFT(y_t|·)), and r_θ(x, y) at the
answer's last token. DPO scores a response by β log(π(y|x)/π_SFT(y|x)) in eq. 24.12 instead.
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from il_cli.algos.fit import adam
from il_cli.algos.ppo import clipped_surrogate, discounted_sum, sgd_epochs
from il_cli.algos.rlhf import kl_exact
from il_cli.text.task import answer_mask, gold_score, train_prompts


def sequence_log_likelihood(model, params, tokens):
    """log π(t_i | t_<i) of every token after the first, [..., T−1] (a corpus row: eq. 24.14's log π(x))."""
    logits = model.apply(params, tokens[..., :-1])
    return jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[..., 1:, None], axis=-1)[..., 0]


def answer_logits(model, params, prompts, answers):
    """The logits that predict each answer token, [B, A, V], from one pass over x ⊕ y."""
    tokens = jnp.concatenate([prompts, answers], axis=-1)
    return model.apply(params, tokens[..., :-1])[..., prompts.shape[-1] - 1:, :]


def answer_log_probs(logits, answers):
    return jnp.take_along_axis(jax.nn.log_softmax(logits), answers[..., None], axis=-1)[..., 0]


def lm_loss(model, prompt_len: int | None = None):
    """The mean next-token negative log-likelihood of token rows: all of them (pretraining),
    or those of the answer up to its <eos> after a `prompt_len` prompt (SFT)."""

    def loss(params, rows):
        ll = sequence_log_likelihood(model, params, rows)
        if prompt_len is None:
            return -jnp.mean(ll)
        mask = answer_mask(rows[:, prompt_len:])
        return -jnp.sum(jnp.where(mask, ll[:, prompt_len - 1:], 0.0)) / mask.sum()

    return loss


def make_text_reward(rm_model):
    """score(params, prompts, answers, mask) -> [..., K]: r_θ(x, y), the scalar head at y's
    last token (its <eos>, or its last position if it has none)."""

    def score(params, prompts, answers, mask):
        tokens = jnp.concatenate([prompts, answers], axis=-1)
        values = rm_model.apply(params, tokens.reshape(-1, tokens.shape[-1])).reshape(tokens.shape)
        last = prompts.shape[-1] + mask.sum(-1) - 1
        return jnp.take_along_axis(values, last[..., None], axis=-1)[..., 0]

    return score


def scaled_head(params, scale):
    """The parameters of a scalar-head transformer whose every output is `scale` times that of
    `params` (its head, the top-level Dense_0, scaled). PPO's value function starts from r_θ
    this way: the reward it learns to predict is r_θ(x, y)·rm_scale, so V starts on that scale."""
    head = params["params"]["Dense_0"]
    return {"params": {**params["params"], "Dense_0": {name: w * scale for name, w in head.items()}}}


def text_dpo_score(model):
    """DPO's implicit reward β log(π(y|x)/π_SFT(y|x)) = β Σ_t [log π(y_t|·) − log π_SFT(y_t|·)]
    over the answer's tokens, [..., K]: eq. 24.12 on it is DPO's loss."""

    def log_prob(params, prompts, answers, mask):
        flat = lambda x: x.reshape(-1, x.shape[-1])
        lp = answer_log_probs(answer_logits(model, params, flat(prompts), flat(answers)), flat(answers))
        return jnp.sum(jnp.where(mask, lp.reshape(answers.shape), 0.0), axis=-1)

    def score(params, prompts, answers, mask, sft_params, beta):
        return beta * (log_prob(params, prompts, answers, mask) - log_prob(sft_params, prompts, answers, mask))

    return score


class TextPPOState(struct.PyTreeNode):
    """PPO's policy and value function (params {"policy", "value"}) and Adam."""

    params: Any
    opt_state: Any
    key: jax.Array
    update: jax.Array


def make_text_ppo(policy_model, value_model, rm_score, sample, *, rollout_prompts: int, num_epochs: int,
                  num_minibatches: int, ptx_batch: int, max_grad_norm: float):
    """(init(policy, value, key, lr) -> TextPPOState, chunk(state, hyper, num_updates) -> (state, figures)).

    One update: `rollout_prompts` training prompts, an answer to each from π_RL; per-token
    rewards −β log(π_RL/π_SFT) and r_θ(x, y)·rm_scale at the last token; GAE (γ = 1, λ) with
    the value function; `num_epochs` passes of clipped PPO over `num_minibatches` minibatches,
    the loss −(clipped surrogate) + vf_coef·(V − return)² − γ_ptx·(corpus log-likelihood).
    `hyper` per member: lr, clip_eps, vf_coef, gae_lambda, kl_coef, ptx_coef, and the arrays
    sft (π_SFT's params), rm (r_θ's), rm_scale, corpus (rows [N, T])."""
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), adam(0.0))

    def init(policy, value, key, lr):
        params = {"policy": policy, "value": value}
        return TextPPOState(params, optax.chain(optax.clip_by_global_norm(max_grad_norm), adam(lr)).init(params),
                            key, jnp.zeros((), jnp.int32))

    def values_of(params, prompts, answers):
        tokens = jnp.concatenate([prompts, answers], axis=-1)
        return value_model.apply(params, tokens[:, :-1])[:, prompts.shape[-1] - 1:]  # V before each y_t

    def rollout(state, hyper, key):
        prompt_key, sample_key = jax.random.split(key)
        prompts = train_prompts(prompt_key, rollout_prompts)
        answers = sample(state.params["policy"], prompts, sample_key)
        mask = answer_mask(answers)
        logits = answer_logits(policy_model, state.params["policy"], prompts, answers)
        sft_logits = answer_logits(policy_model, hyper["sft"], prompts, answers)
        log_prob, sft_log_prob = answer_log_probs(logits, answers), answer_log_probs(sft_logits, answers)
        proxy = rm_score(hyper["rm"], prompts, answers, mask) * hyper["rm_scale"]
        last = jax.nn.one_hot(mask.sum(-1) - 1, answers.shape[-1])
        rewards = jnp.where(mask, -hyper["kl_coef"] * (log_prob - sft_log_prob), 0.0) + last * proxy[:, None]
        values = jnp.where(mask, values_of(state.params["value"], prompts, answers), 0.0)

        # GAE backwards over the answer's tokens, γ = 1: A_t = δ_t + λ A_{t+1} on the answer, 0 after it
        next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
        delta = jnp.where(mask, rewards + next_values - values, 0.0)
        adv = discounted_sum(delta.T, jnp.where(mask, hyper["gae_lambda"], 0.0).T).T
        figures = {"gold_reward": jnp.mean(gold_score(prompts, answers)), "proxy_reward": jnp.mean(proxy),
                   "kl": jnp.mean(jnp.sum(jnp.where(mask, kl_exact(True, logits, sft_logits), 0.0), -1)),
                   "answer_length": jnp.mean(mask.sum(-1))}
        return (prompts, answers, mask, log_prob, adv, adv + values), figures

    def loss(params, batch, hyper, ptx_rows):
        prompts, answers, mask, old_log_prob, adv, returns = batch
        n = jnp.maximum(mask.sum(), 1)
        masked_mean = lambda x: jnp.sum(jnp.where(mask, x, 0.0)) / n
        mean = masked_mean(adv)
        adv = (adv - mean) / (jnp.sqrt(masked_mean((adv - mean) ** 2)) + 1e-8)
        ratio = jnp.exp(answer_log_probs(answer_logits(policy_model, params["policy"], prompts, answers), answers)
                        - old_log_prob)
        policy_loss = -masked_mean(clipped_surrogate(ratio, adv, hyper["clip_eps"]))
        value_loss = masked_mean((values_of(params["value"], prompts, answers) - returns) ** 2)
        ptx = jnp.mean(sequence_log_likelihood(policy_model, params["policy"], ptx_rows))
        total = policy_loss + hyper["vf_coef"] * value_loss - hyper["ptx_coef"] * ptx
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "ptx_log_likelihood": ptx}

    def update(state, hyper):
        key = jax.random.fold_in(state.key, state.update)
        rollout_key, perm_key = jax.random.split(key)
        batch, figures = rollout(state, hyper, rollout_key)

        def minibatch(carry, minibatch, key):
            params, opt_state = carry
            rows = jax.random.randint(key, (ptx_batch,), 0, hyper["corpus"].shape[0])
            (_, parts), grads = jax.value_and_grad(loss, has_aux=True)(params, minibatch, hyper, hyper["corpus"][rows])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), parts

        (params, opt_state), parts = sgd_epochs(minibatch, (state.params, state.opt_state), batch,
                                                jax.random.split(perm_key, num_epochs), num_minibatches,
                                                lambda key: jax.random.split(key, num_minibatches))
        figures = {**figures, **jax.tree.map(jnp.mean, parts)}
        return state.replace(params=params, opt_state=opt_state, update=state.update + 1), figures

    def chunk(state, hyper, num_updates: int):
        return jax.lax.scan(lambda s, _: update(s, hyper), state, None, length=num_updates)

    return init, chunk

