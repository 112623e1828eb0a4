"""Policy and value networks, and the action distributions they parameterise.

An actor maps observations to one array `out`: logits [..., A] for discrete actions, or
mean and log-std concatenated [..., 2A] for a diagonal Gaussian over continuous actions.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from il_cli.envs import EnvSpec


def _flatten(obs, obs_ndim: int):
    return obs.reshape(*obs.shape[: obs.ndim - obs_ndim], -1).astype(jnp.float32)


ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


def orthogonal(scale: float):
    """flax's orthogonal initializer, with each matrix's QR factorization run on its own when
    vmapped over members (a loop, not one batched LAPACK call): jaxlib 0.10's batched CPU QR
    splits its batch over the intra-op thread pool and waits inside it, and two of them running
    at once (an actor's and a critic's initialisation) deadlocked the process. The values are
    the same, bit for bit."""
    base = nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        return jax.custom_batching.sequential_vmap(lambda k: base(k, shape, dtype))(key)

    return init


def _torso(x, hidden, activation):
    """Dense layers with orthogonal(√2) initialisation; called inside a compact module."""
    for width in hidden:
        x = ACTIVATIONS[activation](nn.Dense(width, kernel_init=orthogonal(np.sqrt(2)))(x))
    return x


class Actor(nn.Module):
    """MLP policy π(a|s); a state-independent log-std for continuous actions."""

    action_dim: int
    discrete: bool
    obs_ndim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs):
        x = _torso(_flatten(obs, self.obs_ndim), self.hidden, self.activation)
        head = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))(x)
        if self.discrete:
            return head
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return jnp.concatenate([head, jnp.broadcast_to(log_std, head.shape)], axis=-1)


class Critic(nn.Module):
    """MLP state-value function V(s)."""

    obs_ndim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs):
        x = _torso(_flatten(obs, self.obs_ndim), self.hidden, self.activation)
        return nn.Dense(1, kernel_init=orthogonal(1.0))(x)[..., 0]


class StateActionNet(nn.Module):
    """f(s, a), an MLP on the observation and the action (one-hot for discrete actions): the
    Q(s, a) of `il prefs` for continuous actions, and the reward model r_θ(s, a) of `il rlhf`."""

    obs_ndim: int
    action_dim: int
    discrete: bool
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs, action):
        a = jax.nn.one_hot(action, self.action_dim) if self.discrete else action.astype(jnp.float32)
        x = _torso(jnp.concatenate([_flatten(obs, self.obs_ndim), a], -1), self.hidden, self.activation)
        return nn.Dense(1, kernel_init=orthogonal(1.0))(x)[..., 0]


def make_state_action(spec: EnvSpec, hidden: Sequence[int], activation: str = "tanh") -> StateActionNet:
    return StateActionNet(len(spec.obs_shape), spec.action_dim, spec.discrete, tuple(hidden), activation)


def make_actor(spec: EnvSpec, hidden: Sequence[int], activation: str = "tanh") -> Actor:
    return Actor(spec.action_dim, spec.discrete, len(spec.obs_shape), tuple(hidden), activation)


def make_critic(spec: EnvSpec, hidden: Sequence[int], activation: str = "tanh") -> Critic:
    return Critic(len(spec.obs_shape), tuple(hidden), activation)


def dummy_obs(spec: EnvSpec):
    return jnp.zeros((1, *spec.obs_shape), jnp.float32)


def dummy_action(spec: EnvSpec):
    """One zero action (action 0, or the zero vector), to initialise a network of (s, a)."""
    return jnp.zeros((1,), jnp.int32) if spec.discrete else jnp.zeros((1, spec.action_dim))


# --- distributions over `out` ----------------------------------------------------------


def _gaussian(out):
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, log_std


def log_prob(discrete: bool, out, action):
    """log π(a|s)."""
    if discrete:
        logp = jax.nn.log_softmax(out)
        return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    mean, log_std = _gaussian(out)
    z = (action - mean) / jnp.exp(log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def sample(discrete: bool, out, key):
    if discrete:
        return jax.random.categorical(key, out).astype(jnp.int32)
    mean, log_std = _gaussian(out)
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def mode(discrete: bool, out):
    """The most likely action: argmax for discrete, the mean for Gaussian."""
    if discrete:
        return jnp.argmax(out, axis=-1).astype(jnp.int32)
    return _gaussian(out)[0]


def entropy(discrete: bool, out):
    if discrete:
        logp = jax.nn.log_softmax(out)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    _, log_std = _gaussian(out)
    return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)


EVAL_POLICIES = ("mode", "sample")


def tv_mode(spec: EnvSpec, out, expert_action, expert_std=None):
    """TV(π̂_mode(·|s), π*(·|s)) per state, for the greedy learner that is evaluated.

    Discrete: both policies are deterministic, so TV = 1[argmax π̂(s) ≠ a*], and its mean
    is the disagreement rate P[π̂(s) ≠ π*(s)]. Continuous: two deterministic policies are
    at TV 0 or 1, so both executed actions are smoothed by the expert's Gaussian noise Σ*:
    TV(N(clip μ̂, Σ*), N(a*, Σ*)) = erf(d / 2√2), d = ‖Σ*^(-1/2)(clip μ̂ − a*)‖.
    `expert_action` a* is the executed (clipped) expert action, as stored in datasets.
    """
    if spec.discrete:
        return (mode(True, out) != expert_action).astype(jnp.float32)
    d = jnp.linalg.norm((clip_action(spec, mode(False, out)) - expert_action) / expert_std, axis=-1)
    return jax.scipy.special.erf(d / (2 * jnp.sqrt(2.0)))


def tv_sample(spec: EnvSpec, out, expert_action, expert_std, key, num_samples: int = 64):
    """TV(π̂(·|s), π*(·|s)) per state, for the stochastic learner (softmax or Gaussian).

    Discrete: π* puts all mass on a*, so TV = 1 − π̂(a*|s). Continuous: against the expert's
    own Gaussian N(a*, Σ*), by Monte Carlo TV(p, q) = E_{x∼p}[max(0, 1 − q(x)/p(x))] with
    p = N(μ̂, Σ̂) and `num_samples` draws per state (TV has no closed form when Σ̂ ≠ Σ*).
    """
    if spec.discrete:
        return 1.0 - jnp.exp(log_prob(True, out, expert_action))
    x = sample(False, jnp.broadcast_to(out, (num_samples, *out.shape)), key)
    expert_out = jnp.concatenate([expert_action, jnp.broadcast_to(jnp.log(expert_std), expert_action.shape)], -1)
    log_ratio = log_prob(False, expert_out, x) - log_prob(False, out, x)
    return jnp.mean(jnp.maximum(0.0, 1.0 - jnp.exp(log_ratio)), axis=0)


def tv_to_expert(spec: EnvSpec, policy: str, out, expert_action, expert_std, key):
    """ε(s) of the policy that is evaluated: `policy` is "mode" (greedy) or "sample"."""
    if policy == "mode":
        return tv_mode(spec, out, expert_action, expert_std)
    return tv_sample(spec, out, expert_action, expert_std, key)


def clip_action(spec: EnvSpec, action):
    """The action the environment receives: continuous actions are clipped to their bounds."""
    if spec.discrete:
        return action
    low = jnp.asarray(spec.action_low, jnp.float32).reshape(spec.action_dim)
    high = jnp.asarray(spec.action_high, jnp.float32).reshape(spec.action_dim)
    return jnp.clip(action, low, high)
