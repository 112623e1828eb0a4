"""Behavioral cloning: π̂ = argmax_π Σ_i log π(a*_i | s_i) (eq. 24.2), by minibatch SGD."""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from il_cli import networks


class BCState(struct.PyTreeNode):
    params: Any
    opt_state: Any
    key: jax.Array  # raw uint32 PRNG key; the minibatch of step t uses fold_in(key, t)
    step: jax.Array


def bc_loss(params, actor, discrete, obs, actions):
    """Negative log-likelihood −1/B Σ_i log π_θ(a*_i | s_i)."""
    return -jnp.mean(networks.log_prob(discrete, actor.apply(params, obs), actions))


def adam(lr):
    """Adam whose learning rate is a traced value kept in the optimizer state
    (`optax.inject_hyperparams`): `init` stores `lr`; `update` reads it back from the state,
    so one compiled program serves every learning rate of a sweep."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


def make_bc(actor, discrete: bool, batch_size: int):
    """(init(key, obs0, lr) -> BCState, bc_update, train_chunk(state, data, num_steps) -> (state, losses)).

    `bc_update(state, obs, actions, size)` takes one Adam step on a minibatch of `batch_size`
    rows drawn uniformly with replacement from the first `size` rows, with the key
    fold_in(key, step): the result does not depend on how steps are chunked. `data` is
    (obs, actions, size): rows past `size` are padding and are never drawn.
    """
    tx = adam(0.0)  # the learning rate in the state is the one used

    def init(key, obs0, lr) -> BCState:
        init_key, train_key = jax.random.split(key)
        params = actor.init(init_key, obs0)
        return BCState(params, adam(lr).init(params), train_key, jnp.zeros((), jnp.int32))

    def bc_update(state: BCState, obs, actions, size):
        idx = jax.random.randint(jax.random.fold_in(state.key, state.step), (batch_size,), 0, size)
        loss, grads = jax.value_and_grad(bc_loss)(state.params, actor, discrete, obs[idx], actions[idx])
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return state.replace(params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state, step=state.step + 1), loss

    def train_chunk(state: BCState, data, num_steps: int):
        obs, actions, size = data
        return jax.lax.scan(lambda s, _: bc_update(s, obs, actions, size), state, None,
                            length=num_steps)

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
