"""One supervised fit: Adam on a loss over minibatches drawn from a fixed dataset.

Behavioral cloning (eq. 24.2), the preference loss (eq. 24.11), the reward model and DPO
(eq. 24.12), and text pretraining and SFT are all this loop with their own loss.
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


class FitState(struct.PyTreeNode):
    params: Any
    opt_state: Any
    key: jax.Array  # raw uint32 PRNG key; the minibatch of step t uses fold_in(key, t)
    step: jax.Array


def adam(lr):
    """Adam whose learning rate is a traced value kept in the optimizer state
    (`optax.inject_hyperparams`): `init` stores `lr`; `update` reads it back from the state,
    so one compiled program serves every learning rate of a sweep."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


def make_fit(loss, batch_size: int, trainable: str | None = None):
    """(init(params, key, lr) -> FitState, update(state, data, *args) -> (state, loss),
    chunk(state, data, num_steps, *args) -> (state, losses)).

    `data` is (array, ..., size): each step draws `batch_size` rows uniformly with
    replacement from the first `size` rows of every array (the rest is padding and never
    drawn), with the key fold_in(key, step), so the result does not depend on how steps are
    chunked; then one Adam step on `loss(params, *rows, *args)`. With `trainable`, only
    params[trainable] is optimised (the rest, like a temperature, is held fixed)."""
    tx = adam(0.0)  # the learning rate in the state is the one used

    def init(params, key, lr) -> FitState:
        return FitState(params, adam(lr).init(params if trainable is None else params[trainable]), key,
                        jnp.zeros((), jnp.int32))

    def update(state: FitState, data, *args):
        *arrays, size = data
        idx = jax.random.randint(jax.random.fold_in(state.key, state.step), (batch_size,), 0, size)
        rows = [x[idx] for x in arrays]
        if trainable is None:
            value, grads = jax.value_and_grad(loss)(state.params, *rows, *args)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        else:
            part = lambda p: loss({**state.params, trainable: p}, *rows, *args)
            value, grads = jax.value_and_grad(part)(state.params[trainable])
            updates, opt_state = tx.update(grads, state.opt_state, state.params[trainable])
            params = {**state.params, trainable: optax.apply_updates(state.params[trainable], updates)}
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1), value

    def chunk(state: FitState, data, num_steps: int, *args):
        return jax.lax.scan(lambda s, _: update(s, data, *args), state, None, length=num_steps)

    return init, update, chunk
