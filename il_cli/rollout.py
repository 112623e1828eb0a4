"""Vectorized rollouts on gymnax environments: evaluation, demonstrations, raw stepping.

Everything here is a `make_*` factory that closes over static shapes and returns a pure
function of (params, key) to be jit-compiled.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from il_cli import networks
from il_cli.envs import EnvSpec


class Episodes(NamedTuple):
    """One episode per environment. `obs`/`actions`/`valid` are [T, E, ...] when recorded."""

    returns: jax.Array  # [E]
    lengths: jax.Array  # [E]
    obs: jax.Array | None = None
    actions: jax.Array | None = None
    valid: jax.Array | None = None
    measure_mean: jax.Array | None = None  # mean of `measure` over all visited states


def make_policy_act(spec: EnvSpec, actor, deterministic: bool = True) -> Callable:
    """act(params, obs[E,...], key) -> action[E,...] (before clipping)."""

    def act(params, obs, key):
        out = actor.apply(params, obs)
        if deterministic:
            return networks.mode(spec.discrete, out)
        return networks.sample(spec.discrete, out, key)

    return act


def make_episodes(env, env_params, spec: EnvSpec, num_envs: int, act: Callable,
                  max_steps: int | None = None, record: bool = False,
                  measure: Callable | None = None) -> Callable:
    """episodes(params, key) -> Episodes: one episode in each of `num_envs` environments.

    Steps are a `lax.scan` of `max_steps` (the env's time limit by default); steps after an
    environment's first episode ends are masked out. `act(params, obs, key)` chooses actions;
    `measure(params, obs) -> [E]`, if given, is averaged over every visited state.
    """
    horizon = int(max_steps or spec.max_steps)
    step_fn = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_fn = jax.vmap(env.reset, in_axes=(0, None))

    def episodes(params, key):
        reset_key, run_key = jax.random.split(key)
        obs, state = reset_fn(jax.random.split(reset_key, num_envs), env_params)

        def step(carry, t):
            obs, state, alive, ret, length, total = carry
            act_key, step_key = jax.random.split(jax.random.fold_in(run_key, t))
            if measure is not None:
                total = total + jnp.sum(jnp.where(alive, measure(params, obs), 0.0))
            action = act(params, obs, act_key)
            env_action = networks.clip_action(spec, action)
            next_obs, state, reward, terminated, truncated, _ = step_fn(
                jax.random.split(step_key, num_envs), state, env_action, env_params)
            ret = ret + jnp.where(alive, reward, 0.0)
            length = length + alive.astype(jnp.int32)
            out = (obs, env_action, alive) if record else None
            alive = alive & ~(terminated | truncated)
            return (next_obs, state, alive, ret, length, total), out

        init = (obs, state, jnp.ones(num_envs, bool), jnp.zeros(num_envs),
                jnp.zeros(num_envs, jnp.int32), jnp.zeros(()))
        (_, _, _, returns, lengths, total), trace = jax.lax.scan(step, init, jnp.arange(horizon))
        measured = total / jnp.sum(lengths) if measure is not None else None
        if record:
            return Episodes(returns, lengths, *trace, measure_mean=measured)
        return Episodes(returns, lengths, measure_mean=measured)

    return episodes


def make_random_stepper(env, env_params, spec: EnvSpec, num_envs: int, num_steps: int) -> Callable:
    """steps(key) -> total reward: `num_steps` random-action steps in `num_envs` envs.

    The machine's limit on this workload: jit(vmap(scan(env.step))) with no network.
    """
    step_fn = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_fn = jax.vmap(env.reset, in_axes=(0, None))

    def random_action(key):
        if spec.discrete:
            return jax.random.randint(key, (num_envs,), 0, spec.action_dim)
        return networks.clip_action(spec, jax.random.normal(key, (num_envs, spec.action_dim)))

    def steps(key):
        obs, state = reset_fn(jax.random.split(key, num_envs), env_params)

        def step(carry, t):
            state, total = carry
            act_key, step_key = jax.random.split(jax.random.fold_in(key, t))
            _, state, reward, _, _, _ = step_fn(
                jax.random.split(step_key, num_envs), state, random_action(act_key), env_params)
            return (state, total + reward.sum()), None

        (_, total), _ = jax.lax.scan(step, (state, 0.0), jnp.arange(num_steps))
        return total

    return steps
