"""Adversarial imitation on il's PPO: GAIL (Ho & Ermon 2016) and AIRL (Fu, Luo & Levine 2018),
with DAC's absorbing state (Kostrikov et al. 2019).

A discriminator D = σ(ℓ) tells the expert's transitions (label 1) from the policy's (label 0),
trained by logistic regression on minibatches of both,

    L(D) = −E_{π_E}[log D] − E_π[log(1 − D)] = E_{π_E}[softplus(−ℓ)] + E_π[softplus(ℓ)],

GAIL's logit ℓ(s, a) an MLP; AIRL's ℓ(s, a, s') = f(s, a, s') − log π(a|s) with
f = g(s[, a]) + γ h(s') − h(s), so that D = exp f / (exp f + π(a|s)). The policy's reward is a
transform of ℓ (`REWARDS`): −log(1 − D) (GAIL's), log D − log(1 − D) = ℓ (AIRL's f − log π), or
log D. A reward of one sign on every step rewards living long (or dying early) whatever the
expert did: with the absorbing state, a terminated episode goes on in s_abs forever, the
discriminator judges (s_abs, ·, s_abs) transitions too (one per finished episode, the
expert's and the policy's), and the terminal step's reward gains γ r(s_abs)/(1 − γ), the
return of staying there. The discriminator sees states as x(s) = [(s − μ)/σ, 0] (μ, σ of the
expert's states) and s_abs as x = [0, 1].
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from il_cli import networks
from il_cli.envs import EnvSpec

REWARDS = {"gail": lambda logit: jax.nn.softplus(logit),  # −log(1 − σ(ℓ))
           "logit": lambda logit: logit,  # log σ(ℓ) − log(1 − σ(ℓ))
           "log-d": lambda logit: -jax.nn.softplus(-logit)}  # log σ(ℓ)


class Transitions(NamedTuple):
    """Rows (s, a, s') the discriminator judges, with `terminal` marking a terminated episode's
    last step (its s' is s_abs) and `weight` the rows that count (0: padding, or an AIRL row
    without s')."""

    obs: jax.Array
    actions: jax.Array
    next_obs: jax.Array
    terminal: jax.Array
    weight: jax.Array


def expert_transitions(obs, actions, lengths, max_steps: int, num_rows: int, need_next: bool):
    """Transitions of demonstrations (numpy; rows episode after episode, `lengths` per episode),
    padded to `num_rows`: s' is the next row within the episode; an episode shorter than the
    time limit terminated (its last s' is s_abs); a truncated episode's last row has no s' and
    counts only when `need_next` is False (GAIL judges (s, a) alone)."""
    n = len(obs)
    ends = np.cumsum(lengths) - 1
    last = np.zeros(n, bool)
    last[ends] = True
    terminal = np.zeros(n, bool)
    terminal[ends[lengths < max_steps]] = True
    next_obs = np.concatenate([obs[1:], obs[-1:]])
    weight = np.where(last & ~terminal & need_next, 0.0, 1.0).astype(np.float32)
    pad = num_rows - n

    def padded(a):
        return np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])

    return Transitions(padded(obs.astype(np.float32)), padded(actions), padded(next_obs.astype(np.float32)),
                       padded(terminal), padded(weight))


def state_normalizer(obs, weight):
    """(μ, σ) of the expert's (flattened) states, σ = 1 where a feature does not vary."""
    flat = obs.reshape(obs.shape[0], -1)
    w = weight[:, None] / weight.sum()
    mean = jnp.sum(w * flat, axis=0)
    std = jnp.sqrt(jnp.sum(w * (flat - mean) ** 2, axis=0))
    return mean, jnp.where(std > 1e-6, std, 1.0)


class Discriminator:
    """ℓ(s, a, s') of GAIL (`airl=False`: an MLP on (x(s), a)) or AIRL (g on x(s) — and a, unless
    `state_only` — and the shaping h on x(s) and x(s')), and the learned reward each leaves."""

    def __init__(self, spec: EnvSpec, hidden, airl: bool, state_only: bool = True):
        self.spec, self.airl, self.state_only = spec, airl, state_only
        self.dim = int(jnp.prod(jnp.array(spec.obs_shape))) + 1
        sa = networks.StateActionNet(1, spec.action_dim, spec.discrete, tuple(hidden))
        s = networks.Critic(1, tuple(hidden))
        self.g = s if airl and state_only else sa
        self.h = s

    def features(self, obs, normalizer, absorbing=None):
        """x(s) = [(s − μ)/σ, 0], or [0, 1] where `absorbing`."""
        mean, std = normalizer
        flat = (obs.reshape(*obs.shape[: obs.ndim - len(self.spec.obs_shape)], -1) - mean) / std
        x = jnp.concatenate([flat, jnp.zeros((*flat.shape[:-1], 1))], axis=-1)
        if absorbing is None:
            return x
        return jnp.where(absorbing[..., None], jnp.zeros_like(x).at[..., -1].set(1.0), x)

    def absorbing_input(self, normalizer):
        """(x(s_abs), a): the absorbing state's features [1, dim] and the action 0 it is judged with."""
        x_abs = self.features(jnp.zeros((1, *self.spec.obs_shape)), normalizer, jnp.ones(1, bool))
        return x_abs, networks.dummy_action(self.spec)

    def init(self, key):
        x, a = jnp.zeros((1, self.dim)), networks.dummy_action(self.spec)
        g_key, h_key = jax.random.split(key)
        g = self.g.init(g_key, x) if self.airl and self.state_only else self.g.init(g_key, x, a)
        return {"g": g, "h": self.h.init(h_key, x)} if self.airl else {"g": g}

    def g_value(self, params, x, a):
        """GAIL's ℓ(s, a), or AIRL's g(s[, a]): the learned reward before any transform."""
        return self.g.apply(params["g"], x) if self.airl and self.state_only else self.g.apply(params["g"], x, a)

    def logit(self, params, x, a, x_next, log_pi, gamma):
        """ℓ = log D − log(1 − D): GAIL's MLP, or AIRL's g + γ h(x') − h(x) − log π(a|s)."""
        if not self.airl:
            return self.g_value(params, x, a)
        f = self.g_value(params, x, a) + gamma * self.h.apply(params["h"], x_next) - self.h.apply(params["h"], x)
        return f - log_pi


def disc_loss(disc: Discriminator, params, expert, learner, gamma, grad_penalty):
    """L(D) = E_E[softplus(−ℓ)] + E_π[softplus(ℓ)] + λ(E_E + E_π)[‖∇_x ℓ‖²] on minibatches
    `expert`, `learner` = (x, a, x', log π); figures: accuracies (D > ½ on expert rows, D < ½ on
    the policy's) and mean logits."""

    def logits(x, batch):
        return disc.logit(params, x, batch[1], batch[2], batch[3], gamma)

    def penalty(batch):
        grad = jax.grad(lambda x: jnp.sum(logits(x, batch)))(batch[0])
        return jnp.mean(jnp.sum(grad ** 2, axis=-1))

    le, lp = logits(expert[0], expert), logits(learner[0], learner)
    gp = penalty(expert) + penalty(learner)
    loss = jnp.mean(jax.nn.softplus(-le)) + jnp.mean(jax.nn.softplus(lp)) + grad_penalty * gp
    return loss, {"disc_loss": loss, "disc_expert_accuracy": jnp.mean(le > 0), "disc_learner_accuracy": jnp.mean(lp < 0),
                  "disc_expert_logit": jnp.mean(le), "disc_learner_logit": jnp.mean(lp), "grad_penalty": gp}


def _disc_optimizer(learning_rate):
    return optax.adam(learning_rate)


disc_optimizer = optax.inject_hyperparams(_disc_optimizer)  # the learning rate lives in the optimizer state


class AdversarialObjective:
    """GAIL's or AIRL's terms of il's PPO (il_cli.algos.ppo.make_ppo's `objective`): after each
    rollout, `disc_steps` discriminator steps on the rollout's transitions against the
    expert's, then the rollout's rewards replaced by the discriminator's.

    `hyper` carries, per member: "expert" (Transitions), "normalizer" (μ, σ), "disc_lr",
    "grad_penalty", "gamma". The discriminator's parameters and Adam state are PPO state
    (`init`), saved in every checkpoint: the learned reward of `il expert --reward`."""

    needs_next_obs = True

    def __init__(self, spec: EnvSpec, actor, disc: Discriminator, transform: str, absorbing: bool,
                 disc_steps: int, disc_batch: int):
        self.spec, self.actor, self.disc = spec, actor, disc
        self.transform, self.absorbing = REWARDS[transform], absorbing
        self.disc_steps, self.disc_batch = disc_steps, disc_batch

    def init(self, hyper, key):
        params = self.disc.init(key)
        return {"disc": params, "disc_opt": disc_optimizer(learning_rate=hyper["disc_lr"]).init(params),
                "normalizer": hyper["normalizer"]}

    def _pool(self, rows: Transitions, log_pi, normalizer):
        """(x, a, x', log π) of the rows followed by one s_abs row per row (live where the row is
        terminal and absorbing is on), with each row's sampling weight."""
        d, n = self.disc, rows.obs.shape[0]
        x = d.features(rows.obs, normalizer)
        x_next = d.features(rows.next_obs, normalizer, rows.terminal & self.absorbing)
        x_abs = d.features(rows.obs, normalizer, jnp.ones(n, bool))
        a = networks.clip_action(self.spec, rows.actions)
        pool = (jnp.concatenate([x, x_abs]), jnp.concatenate([a, jnp.zeros_like(a)]),
                jnp.concatenate([x_next, x_abs]), jnp.concatenate([log_pi, jnp.zeros_like(log_pi)]))
        weight = jnp.concatenate([rows.weight, rows.weight * (rows.terminal & self.absorbing)])
        return pool, weight

    def relabel(self, state, hyper, actor_params, traj, key):
        """(state, traj with the discriminator's rewards, figures): `disc_steps` Adam steps of
        `disc_loss` on minibatches drawn from the rollout `traj` [T, E] and the expert's rows,
        then r_t = transform(ℓ_t) + terminated_t γ r(s_abs)/(1 − γ)."""
        T, E = traj.reward.shape
        gamma, normalizer, expert = hyper["gamma"], state["normalizer"], hyper["expert"]
        flat = lambda x: x.reshape(T * E, *x.shape[2:])
        terminated = flat(traj.terminated) > 0
        learner = Transitions(flat(traj.obs), flat(traj.action), flat(traj.next_obs), terminated, jnp.ones(T * E))
        learner_pool, learner_w = self._pool(learner, flat(traj.log_prob), normalizer)
        expert_log_pi = networks.log_prob(self.spec.discrete, self.actor.apply(actor_params, expert.obs),
                                          expert.actions) if self.disc.airl else jnp.zeros(expert.obs.shape[0])
        expert_pool, expert_w = self._pool(expert, expert_log_pi, normalizer)
        tx = disc_optimizer(learning_rate=0.0)  # the rate in the state is used

        def step(carry, key):
            params, opt_state = carry
            e_key, l_key = jax.random.split(key)
            draw = lambda key, pool, w: jax.tree.map(lambda x: x[jax.random.choice(
                key, w.shape[0], (self.disc_batch,), p=w / w.sum())], pool)
            grads, figures = jax.grad(lambda p: disc_loss(self.disc, p, draw(e_key, expert_pool, expert_w),
                                                          draw(l_key, learner_pool, learner_w), gamma,
                                                          hyper["grad_penalty"]), has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), figures

        (params, opt_state), figures = jax.lax.scan(step, (state["disc"], state["disc_opt"]),
                                                    jax.random.split(key, self.disc_steps))
        ell = self.disc.logit(params, *(x[: T * E] for x in learner_pool), gamma)  # the rollout's rows
        reward = self.transform(ell)
        x_abs, a0 = self.disc.absorbing_input(normalizer)
        r_abs = self.transform(self.disc.logit(params, x_abs, a0, x_abs, jnp.zeros(1), gamma)[0])
        if self.absorbing:
            reward = reward + terminated * gamma / (1.0 - gamma) * r_abs
        figures = {**jax.tree.map(jnp.mean, figures), "disc_reward_mean": jnp.mean(reward),
                   "disc_reward_std": jnp.std(reward), "absorbing_reward": r_abs}
        state = {**state, "disc": params, "disc_opt": opt_state}
        return state, traj._replace(reward=reward.reshape(T, E)), figures


class LearnedReward:
    """A finished GAIL or AIRL run's reward as the objective of a fresh PPO (`il expert --reward`):
    AIRL's g(s[, a]) (the disentangled reward), or GAIL's transform(ℓ(s, a)) (a control), with
    the absorbing state's return γ r(s_abs)/(1 − γ) added on terminal steps when the run used
    one, times `reward_scale`. `hyper` carries "reward" (the saved discriminator parameters),
    "normalizer" and "reward_scale"."""

    needs_next_obs = False

    def __init__(self, spec: EnvSpec, disc: Discriminator, transform: str, absorbing: bool):
        self.spec, self.disc, self.absorbing = spec, disc, absorbing
        self.transform = REWARDS[transform]

    def init(self, hyper, key):
        return {}

    def value(self, params, x, a):
        ell = self.disc.g_value(params, x, a)
        return ell if self.disc.airl else self.transform(ell)

    def relabel(self, state, hyper, actor_params, traj, key):
        normalizer, gamma = hyper["normalizer"], hyper["gamma"]
        a = networks.clip_action(self.spec, traj.action)
        reward = self.value(hyper["reward"], self.disc.features(traj.obs, normalizer), a)
        r_abs = self.value(hyper["reward"], *self.disc.absorbing_input(normalizer))[0]
        if self.absorbing:
            reward = reward + traj.terminated * gamma / (1.0 - gamma) * r_abs
        reward = reward * hyper["reward_scale"]
        return state, traj._replace(reward=reward), {"learned_reward": jnp.mean(reward), "absorbing_reward": r_abs}
