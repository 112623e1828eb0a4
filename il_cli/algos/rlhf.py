"""RLHF on control tasks: InstructGPT's three steps (lecture section 24.2.4).

A prompt x is a start state of the environment; a response y is a segment of L steps the
policy generates from it. (1) SFT: behavioral cloning (il_cli.algos.bc). (2) A reward model
r_θ(x, y) = Σ_t r_θ(s_t, a_t) is fitted to K-way rankings of K responses per prompt by

    loss(θ) = −1/C(K,2) · E_{(x, y_w, y_l)} log σ(r_θ(x, y_w) − r_θ(x, y_l))        (eq. 24.12)

with all C(K,2) pairs of one ranking in one batch element. (3) PPO maximises

    E[r_θ(x, y) − β log(π_RL(y|x)/π_SFT(y|x))] + γ E_{x∼D_pretrain}[log π_RL(x)]     (eq. 24.13–24.14)

with the KL penalty paid per step, r_θ(s,a) − β log(π_RL(a|s)/π_SFT(a|s)) (its expectation
under π_RL is the KL that is logged, in closed form), and the pretraining ("ptx")
log-likelihood of the SFT demonstrations added to the PPO objective; β may follow Ziegler et
al.'s adaptive controller. DPO (Rafailov et al.) fits the policy to the same rankings directly,
its implicit reward β log(π(y|x)/π_SFT(y|x)) in place of r_θ in eq. 24.12.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from il_cli import networks, rollout
from il_cli.algos.fit import make_fit
from il_cli.envs import EnvSpec


def kl_exact(discrete: bool, out_p, out_q):
    """KL(p ‖ q) per state in closed form: categorical Σ p log(p/q); diagonal Gaussian
    Σ_i log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½."""
    if discrete:
        logp, logq = jax.nn.log_softmax(out_p), jax.nn.log_softmax(out_q)
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)
    mu_p, log_sp = jnp.split(out_p, 2, axis=-1)
    mu_q, log_sq = jnp.split(out_q, 2, axis=-1)
    var_p, var_q = jnp.exp(2 * log_sp), jnp.exp(2 * log_sq)
    return jnp.sum(log_sq - log_sp + (var_p + (mu_p - mu_q) ** 2) / (2 * var_q) - 0.5, axis=-1)


class Responses(NamedTuple):
    """K responses to each prompt: [P, K, L, ...] steps (the actions as sampled, before
    clipping to the bounds), `alive` masks the steps after the episode ended; `gold` [P, K]
    is the environment's return of each response."""

    obs: jax.Array
    actions: jax.Array
    alive: jax.Array
    gold: jax.Array


def make_responses(env, env_params, spec: EnvSpec, actor, k: int, length: int):
    """responses(policy_params, key) -> Responses of one prompt: a start state from
    `env.reset`, and `k` segments of `length` steps sampled from the policy from that same
    state (gymnax states are explicit, so the prompt is copied, not replayed)."""
    _, run = rollout.make_rollout(env, env_params, spec, k)

    def responses(params, key):
        reset_key, run_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)
        copies = jax.tree.map(lambda x: jnp.broadcast_to(x, (k, *x.shape)), (obs, state))
        carry = rollout.EnvCarry(*copies, jnp.zeros(k), jnp.zeros(k, jnp.int32))

        def act(obs, key, aux):
            return networks.sample(spec.discrete, actor.apply(params, obs), key), None, aux

        def keep(s: rollout.Step):
            return s.obs, s.action, s.first_episode, jnp.where(s.first_episode, s.reward, 0.0)

        _, _, (obs, actions, alive, reward) = run(act, keep, carry, run_key, length)
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # [L, K, ...] -> [K, L, ...]
        return Responses(swap(obs), swap(actions), swap(alive), reward.sum(axis=0))

    return responses


def rank(key, gold, human_beta, human_error):
    """A simulated human's ranking of K responses, best first: Plackett–Luce with utilities
    β_h · gold (sorting β_h·R + Gumbel noise samples it exactly), replaced by a uniformly
    random order with probability `human_error`."""
    k_gumbel, k_err, k_perm = jax.random.split(key, 3)
    noisy = human_beta * gold + jax.random.gumbel(k_gumbel, gold.shape)
    order = jnp.argsort(-noisy)
    random_order = jax.random.permutation(k_perm, gold.shape[0])
    return jnp.where(jax.random.bernoulli(k_err, human_error), random_order, order)


def kway_loss(rewards_ranked):
    """Eq. 24.12 for one ranking: −1/C(K,2) Σ_{i<j} log σ(r_i − r_j), responses best first."""
    k = rewards_ranked.shape[-1]
    diff = rewards_ranked[..., :, None] - rewards_ranked[..., None, :]
    upper = jnp.triu(jnp.ones((k, k), bool), 1)
    return -jnp.sum(jnp.where(upper, jax.nn.log_sigmoid(diff), 0.0), axis=(-2, -1)) / (k * (k - 1) / 2)


def ranking_accuracy(rewards_ranked):
    """The fraction of a ranking's C(K,2) pairs that the rewards order the same way."""
    k = rewards_ranked.shape[-1]
    upper = jnp.triu(jnp.ones((k, k), bool), 1)
    agree = (rewards_ranked[..., :, None] > rewards_ranked[..., None, :]) & upper
    return jnp.sum(agree, axis=(-2, -1)) / (k * (k - 1) / 2)


def held_out_figures(scores, order, gold):
    """How well `scores` [P, K] of held-out responses order them: the accuracy on the
    rankings' pairs (`order` [P, K], best first), on the pairs the gold scores [P, K] order
    (`gold_pair_accuracy`), and the fraction of pairs the gold scores order at all."""
    k = gold.shape[-1]
    better = gold[:, :, None] > gold[:, None, :]
    return {"ranking_accuracy": jnp.mean(ranking_accuracy(jnp.take_along_axis(scores, order, axis=-1))),
            "gold_pair_accuracy": jnp.sum(better & (scores[:, :, None] > scores[:, None, :])) / jnp.maximum(better.sum(), 1),
            "decided_pairs": better.sum() / (gold.shape[0] * k * (k - 1) / 2)}


def segment_sum(values, alive):
    """Σ_t over the live steps of each response: [..., L] -> [...]."""
    return jnp.sum(jnp.where(alive, values, 0.0), axis=-1)


def make_ranking_fit(score, batch_size: int):
    """(init(params, key, lr) -> FitState, train_chunk(state, data, num_steps, *args) -> (state, losses)):
    il_cli.algos.fit's minibatch Adam on eq. 24.12. `score(params, obs, actions, alive, *args)
    -> [..., K]` scores every response; each step draws `batch_size` rankings from `data` =
    (obs [P,K,L,...], actions, alive, order [P,K], size) and fits their scores to the orders."""

    def loss(params, obs, actions, alive, order, *args):
        return jnp.mean(kway_loss(jnp.take_along_axis(score(params, obs, actions, alive, *args), order, axis=-1)))

    init, _, train_chunk = make_fit(loss, batch_size)
    return init, train_chunk


def make_reward_model(spec: EnvSpec, model: networks.StateActionNet):
    """(init_params(key), rewards(params, obs, actions, alive)): r_θ(x, y) = Σ_t r_θ(s_t, a_t)
    of every response, [..., K], on the actions clipped to the bounds (those executed)."""

    def init_params(key):
        return model.init(key, networks.dummy_obs(spec), networks.dummy_action(spec))

    def rewards(params, obs, actions, alive):
        return segment_sum(model.apply(params, obs, networks.clip_action(spec, actions)), alive)

    return init_params, rewards


def segment_log_prob(spec: EnvSpec, actor, params, obs, actions, alive):
    """log π(y|x) = Σ_t log π(a_t|s_t) of every response, [..., K] (the dynamics' factors of
    the trajectory's likelihood cancel in every ratio to π_SFT)."""
    return segment_sum(networks.log_prob(spec.discrete, actor.apply(params, obs), actions), alive)


def dpo_rewards(spec: EnvSpec, actor):
    """DPO's implicit reward of every response, β log(π(y|x)/π_SFT(y|x)): the score whose
    eq. 24.12 loss is DPO's, −log σ(β[log π(y+|x)/π_SFT(y+|x) − log π(y−|x)/π_SFT(y−|x)])
    averaged over the C(K,2) pairs of a ranking."""

    def score(params, obs, actions, alive, sft_params, beta):
        return beta * (segment_log_prob(spec, actor, params, obs, actions, alive)
                       - segment_log_prob(spec, actor, sft_params, obs, actions, alive))

    return score


KL_GAIN = 0.1  # K_β of Ziegler et al.'s proportional controller


class RLHFObjective:
    """The RLHF terms PPO adds to its own (il_cli.algos.ppo.make_ppo's `objective`).

    `hyper` carries, per member: "sft" (π_SFT's parameters), "rm" (r_θ's), "rm_scale" (1/std of
    r_θ over the ranked responses, so β means the same whatever the reward model's scale),
    "kl_coef" β, "kl_target" (0: β fixed), "ptx_coef" γ, and "pretrain" (obs, actions, size)
    for the ptx term. The β in use is PPO state (`init`, `adapt`), read over `hyper`'s."""

    def __init__(self, spec: EnvSpec, actor, model: networks.StateActionNet, ptx_batch: int):
        self.spec, self.actor, self.model, self.ptx_batch = spec, actor, model, ptx_batch

    def init(self, hyper, key=None):
        return {"kl_coef": jnp.asarray(hyper["kl_coef"], jnp.float32)}

    def adapt(self, state, hyper, figures):
        """Ziegler et al. (2019): β ← β(1 + K_β e), e = clip(KL/KL_target − 1, −0.2, 0.2), after
        each PPO update with the KL of its rollout; β is kept when kl_target is 0."""
        error = jnp.clip(figures["kl"] / jnp.maximum(hyper["kl_target"], 1e-8) - 1.0, -0.2, 0.2)
        beta = state["kl_coef"]
        return {"kl_coef": jnp.where(hyper["kl_target"] > 0, beta * (1.0 + KL_GAIN * error), beta)}

    def step_reward(self, hyper, obs, action, out, log_prob):
        """(reward, figures): r_θ(s,a) − β log(π_RL(a|s)/π_SFT(a|s)) per step, with the
        proxy reward and the exact KL(π_RL ‖ π_SFT) at s for the log."""
        sft_out = self.actor.apply(hyper["sft"], obs)
        proxy = self.model.apply(hyper["rm"], obs, networks.clip_action(self.spec, action)) * hyper["rm_scale"]
        log_ratio = log_prob - networks.log_prob(self.spec.discrete, sft_out, action)
        return proxy - hyper["kl_coef"] * log_ratio, {"proxy_reward": proxy,
                                                      "kl": kl_exact(self.spec.discrete, out, sft_out)}

    def extra_loss(self, actor_params, hyper, key):
        """−γ E_{D_pretrain}[log π_RL(a|s)] on a minibatch of the pretraining data."""
        obs, actions, size = hyper["pretrain"]
        idx = jax.random.randint(key, (self.ptx_batch,), 0, size)
        ptx = jnp.mean(networks.log_prob(self.spec.discrete, self.actor.apply(actor_params, obs[idx]), actions[idx]))
        return -hyper["ptx_coef"] * ptx, {"ptx_log_likelihood": ptx}
