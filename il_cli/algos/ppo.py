"""PPO with the clipped surrogate objective, GAE(λ), a value loss and an entropy bonus.

Used to train experts and, later, the RL step of RLHF. Truncated episodes are bootstrapped
from V(final_observation); terminated ones are not.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from il_cli import networks, rollout
from il_cli.config import PPOConfig
from il_cli.envs import EnvSpec


class PPOState(struct.PyTreeNode):
    params: Any  # {"actor": ..., "critic": ...}
    opt_state: Any
    env: rollout.EnvCarry  # the environments continue from one update to the next
    key: jax.Array  # raw uint32 PRNG key; per-update keys are fold_in(key, update)
    update: jax.Array
    objective: Any = None  # the objective's adapted state (RLHF: the KL coefficient β)


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_value: jax.Array  # V(final_observation): the state reached, before auto-reset
    next_obs: Any = None  # the final_observation itself, kept for an objective that `needs_next_obs`


def discounted_sum(delta, decay):
    """A_t = δ_t + decay_t · A_{t+1} over the leading (time) axis, backwards from A_T = 0: GAE
    with decay γλ(1 − done_t), and its per-token form in il_cli.algos.text_rlhf."""

    def backward(next_adv, x):
        delta_t, decay_t = x
        adv = delta_t + decay_t * next_adv
        return adv, adv

    _, adv = jax.lax.scan(backward, jnp.zeros_like(delta[0]), (delta, decay), reverse=True)
    return adv


def gae(tr: Transition, gamma, gae_lambda):
    """Generalized advantage estimation over a [T, E] rollout.

    δ_t = r_t + γ (1 − terminated_t) V(s'_t) − V(s_t);  A_t = δ_t + γλ (1 − done_t) A_{t+1}.
    Returns (advantages, value targets A_t + V(s_t)).
    """
    delta = tr.reward + gamma * (1.0 - tr.terminated) * tr.next_value - tr.value
    adv = discounted_sum(delta, gamma * gae_lambda * (1.0 - tr.done))
    return adv, adv + tr.value


def clipped_surrogate(ratio, adv, clip_eps):
    """min(ρA, clip(ρ, 1 − ε, 1 + ε)A) per sample, ρ = π/π_old: PPO's objective, to be maximised."""
    return jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)


def sgd_epochs(step, carry, data, epoch_keys, num_minibatches: int, minibatch_keys):
    """PPO's optimisation: for each key of `epoch_keys` (an epoch), the rows of `data` (a pytree
    of arrays with a leading row axis) permuted and cut into `num_minibatches` minibatches, and
    `step(carry, minibatch, key) -> (carry, figures)` on each with the keys
    `minibatch_keys(epoch_key)`. Returns (carry, figures [epochs, minibatches])."""
    rows = jax.tree.leaves(data)[0].shape[0]

    def epoch(carry, key):
        perm = jax.random.permutation(key, rows).reshape(num_minibatches, -1)
        return jax.lax.scan(lambda c, xs: step(c, jax.tree.map(lambda x: x[xs[0]], data), xs[1]), carry,
                            (perm, minibatch_keys(key)))

    return jax.lax.scan(epoch, carry, epoch_keys)


def ppo_loss(params, batch, actor, critic, discrete, clip_eps, vf_coef, ent_coef, extra=None):
    """L = −E[min(ρA, clip(ρ, 1±ε)A)] + c_v · ½E[(V − R)²] − c_e · E[H(π)], ρ = π/π_old,
    plus `extra(actor_params) -> (loss term, figures)` if given (RLHF's ptx term)."""
    tr, adv, targets = batch
    out = actor.apply(params["actor"], tr.obs)
    ratio = jnp.exp(networks.log_prob(discrete, out, tr.action) - tr.log_prob)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = -jnp.mean(clipped_surrogate(ratio, adv, clip_eps))
    value_loss = 0.5 * jnp.mean((critic.apply(params["critic"], tr.obs) - targets) ** 2)
    ent = jnp.mean(networks.entropy(discrete, out))
    loss = pg_loss + vf_coef * value_loss - ent_coef * ent
    figures = {"pg_loss": pg_loss, "value_loss": value_loss, "entropy": ent}
    if extra is not None:
        term, extra_figures = extra(params["actor"])
        loss = loss + term
        figures.update(extra_figures)
    return loss, {"loss": loss, **figures}


OBJECTIVE_STREAM = 0x0B1  # the objective's keys: never a rollout's or an epoch's

HYPER = ("lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm",
         "reward_scale")


def hyper_of(cfg: PPOConfig) -> dict:
    """The traced hyperparameters of PPO: floats passed into the program, never closed over."""
    return {name: jnp.float32(getattr(cfg, name)) for name in HYPER}


def _optimizer(learning_rate, max_grad_norm):
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate, eps=1e-5))


optimizer = optax.inject_hyperparams(_optimizer)  # lr and clip norm live in the optimizer state


def make_ppo(cfg: PPOConfig, env, env_params, spec: EnvSpec, objective=None):
    """(actor, init(key, hyper) -> PPOState, train_chunk(state, hyper, num_updates) -> (state, metrics)).

    `hyper` is `hyper_of(cfg)` (or a member of a stack of them): changing a value does not
    recompile. The learning rate anneals linearly to 0 over the run when `anneal_lr`.
    `objective` changes what PPO optimises, by the methods it has (its state, from
    `objective.init(hyper, key)`, is PPO state): `step_reward` replaces the environment's reward
    as the policy acts and `extra_loss` adds a term to the loss (RLHF, il_cli.algos.rlhf), both
    reading `hyper` overridden by the state, which `adapt(state, hyper, figures)` updates after
    each update; `relabel(state, hyper, actor_params, rollout, key)` replaces a whole rollout's
    rewards before GAE (adversarial imitation, il_cli.algos.adversarial). The environment's
    return is still what `episode_return_sum` reports.
    """
    actor = networks.make_actor(spec, cfg.hidden, cfg.activation)
    critic = networks.make_critic(spec, cfg.hidden, cfg.activation)
    E, T, M = cfg.num_envs, cfg.num_steps, cfg.num_minibatches
    num_steps_total = cfg.num_updates * cfg.num_epochs * M
    tx = optimizer(learning_rate=0.0, max_grad_norm=0.0)  # the values in the state are used
    reset, env_rollout = rollout.make_rollout(env, env_params, spec, E)

    def init(key, hyper) -> PPOState:
        actor_key, critic_key, reset_key, train_key = jax.random.split(key, 4)
        obs0 = networks.dummy_obs(spec)
        params = {"actor": actor.init(actor_key, obs0), "critic": critic.init(critic_key, obs0)}
        opt_state = optimizer(learning_rate=hyper["lr"], max_grad_norm=hyper["max_grad_norm"]).init(params)
        return PPOState(params, opt_state, reset(reset_key), train_key, jnp.zeros((), jnp.int32),
                        None if objective is None else objective.init(hyper, jax.random.fold_in(key, OBJECTIVE_STREAM)))

    def collect(state: PPOState, hyper, key):
        """T steps of E envs with actions sampled from π: transitions, finished episodes."""

        def act(obs, key, aux):
            out = actor.apply(state.params["actor"], obs)
            action = networks.sample(spec.discrete, out, key)
            log_prob = networks.log_prob(spec.discrete, out, action)
            reward, figures = (None, {}) if not hasattr(objective, "step_reward") else objective.step_reward(
                hyper, obs, action, out, log_prob)
            return action, (log_prob, critic.apply(state.params["critic"], obs), reward, figures), aux

        def record(s: rollout.Step):
            log_prob, value, reward, figures = s.extra
            done = s.terminated | s.truncated
            tr = Transition(s.obs, s.action, log_prob, value,
                            (s.reward if reward is None else reward) * hyper["reward_scale"],
                            s.terminated.astype(jnp.float32), done.astype(jnp.float32),
                            critic.apply(state.params["critic"], s.final_obs),
                            s.final_obs if getattr(objective, "needs_next_obs", False) else None)
            return tr, (jnp.sum(jnp.where(done, s.episode_return, 0.0)), jnp.sum(done),
                        {k: jnp.mean(v) for k, v in figures.items()})

        env_carry, _, (traj, finished) = env_rollout(act, record, state.env, key, T)
        return state.replace(env=env_carry), traj, finished

    def update(state: PPOState, hyper):
        """One PPO iteration: a rollout of T steps in E envs, then epochs × minibatches of SGD."""
        adaptive = hasattr(objective, "adapt")  # RLHF's β: PPO state read over `hyper`
        hyper = {**hyper, **state.objective} if adaptive else hyper
        update_key = jax.random.fold_in(state.key, state.update)
        rollout_key, epoch_key = jax.random.split(update_key)
        state, traj, (ret_sum, ret_count, rollout_figures) = collect(state, hyper, rollout_key)
        if hasattr(objective, "relabel"):  # adversarial imitation: the rollout's rewards from the discriminator
            objective_state, traj, relabel_figures = objective.relabel(
                state.objective, hyper, state.params["actor"], traj, jax.random.fold_in(update_key, OBJECTIVE_STREAM))
            state = state.replace(objective=objective_state)
            rollout_figures = {**rollout_figures, **relabel_figures}
            traj = traj._replace(next_obs=None)
        adv, targets = gae(traj, hyper["gamma"], hyper["gae_lambda"])
        data = jax.tree.map(lambda x: x.reshape(T * E, *x.shape[2:]), (traj, adv, targets))

        def minibatch(carry, batch, key):
            params, opt_state = carry
            extra = None if not hasattr(objective, "extra_loss") else (lambda p: objective.extra_loss(p, hyper, key))
            grads, metrics = jax.grad(ppo_loss, has_aux=True)(
                params, batch, actor, critic, spec.discrete, hyper["clip_eps"], hyper["vf_coef"],
                hyper["ent_coef"], extra)
            if cfg.anneal_lr:  # linear decay to 0 over every minibatch step of the run
                frac = 1.0 - opt_state.count / num_steps_total
                opt_state = opt_state._replace(
                    hyperparams={**opt_state.hyperparams, "learning_rate": hyper["lr"] * frac})
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        (params, opt_state), metrics = sgd_epochs(
            minibatch, (state.params, state.opt_state), data, jax.random.split(epoch_key, cfg.num_epochs), M,
            lambda key: jax.random.split(jax.random.fold_in(key, 1), M))
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics.update(episode_return_sum=ret_sum, episodes=ret_count,
                       **{k: jnp.mean(v) for k, v in rollout_figures.items()})
        if adaptive:
            metrics.update(state.objective)
            state = state.replace(objective=objective.adapt(state.objective, hyper, metrics))
        state = state.replace(params=params, opt_state=opt_state, update=state.update + 1)
        return state, metrics

    def train_chunk(state: PPOState, hyper, num_updates: int):
        return jax.lax.scan(lambda s, _: update(s, hyper), state, None, length=num_updates)

    return actor, init, train_chunk
