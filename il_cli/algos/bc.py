"""Behavioral cloning: π̂ = argmax_π Σ_i log π(a*_i | s_i) (eq. 24.2), by minibatch SGD."""

import jax
import jax.numpy as jnp

from il_cli import networks
from il_cli.algos.fit import FitState, make_fit


def bc_loss(params, actor, discrete, obs, actions):
    """Negative log-likelihood −1/B Σ_i log π_θ(a*_i | s_i)."""
    return -jnp.mean(networks.log_prob(discrete, actor.apply(params, obs), actions))


def make_bc(actor, discrete: bool, batch_size: int):
    """(init(key, obs0, lr) -> FitState, bc_update(state, data) -> (state, loss),
    train_chunk(state, data, num_steps) -> (state, losses)): il_cli.algos.fit's minibatch Adam
    on `bc_loss`, `data` being (obs, actions, size)."""
    fit_init, bc_update, train_chunk = make_fit(lambda p, obs, actions: bc_loss(p, actor, discrete, obs, actions),
                                                batch_size)

    def init(key, obs0, lr) -> FitState:
        init_key, train_key = jax.random.split(key)
        return fit_init(actor.init(init_key, obs0), train_key, lr)

    return init, bc_update, train_chunk


def make_bc_metrics(spec, actor, policy: str):
    """metrics(params, obs, expert_actions, expert_std, key) on held-out expert states.

    ε = mean TV(π̂, π*) (Theorem 24.1) of the evaluated policy (`policy`: greedy "mode" or
    "sample"), and of the stochastic π̂ under `tv_expert_states_stochastic`; the mean
    log-likelihood of the expert's action; the greedy action accuracy (discrete; for a greedy
    policy ε = 1 − accuracy) or mean squared error of the executed action (continuous)."""

    def metrics(params, obs, actions, expert_std, key):
        out = actor.apply(params, obs)
        result = {
            "holdout_log_likelihood": jnp.mean(networks.log_prob(spec.discrete, out, actions)),
            "tv_expert_states": jnp.mean(
                networks.tv_to_expert(spec, policy, out, actions, expert_std, key)),
            "tv_expert_states_stochastic": jnp.mean(
                networks.tv_sample(spec, out, actions, expert_std, key)),
        }
        greedy = networks.clip_action(spec, networks.mode(spec.discrete, out))
        if spec.discrete:
            result["action_accuracy"] = jnp.mean(greedy == actions)
        else:
            result["action_mse"] = jnp.mean((greedy - actions) ** 2)
        return result

    return metrics
