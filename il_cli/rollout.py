"""Vectorized rollouts on gymnax environments: evaluation, demonstrations, raw stepping.

Everything here is a `make_*` factory that closes over static shapes and returns a pure
function of (params, key) to be jit-compiled.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from il_cli import networks
from il_cli.envs import EnvSpec

MEASURE_STREAM = 0x3EA5  # measurement keys are never action or environment keys


class Episodes(NamedTuple):
    """One episode per environment. `obs`/`actions`/`valid` are [T, E, ...] when recorded."""

    returns: jax.Array  # [E]
    lengths: jax.Array  # [E]
    obs: jax.Array | None = None
    actions: jax.Array | None = None
    valid: jax.Array | None = None
    measure_mean: dict | None = None  # mean of each `measure` figure over all visited states


def make_policy_act(spec: EnvSpec, actor, policy: str = "mode") -> Callable:
    """act(params, obs[E,...], key) -> action[E,...] (before clipping): the greedy (mode)
    action, or one sampled from π̂(·|s) when `policy` is "sample"."""

    def act(params, obs, key):
        out = actor.apply(params, obs)
        if policy == "mode":
            return networks.mode(spec.discrete, out)
        return networks.sample(spec.discrete, out, key)

    return act


def make_episodes(env, env_params, spec: EnvSpec, num_envs: int, act: Callable,
                  max_steps: int | None = None, record: bool = False,
                  measure: Callable | None = None) -> Callable:
    """episodes(params, key) -> Episodes: one episode in each of `num_envs` environments.

    Steps are a `lax.scan` of `max_steps` (the env's time limit by default); steps after an
    environment's first episode ends are masked out. `act(params, obs, key)` chooses actions;
    `measure(params, obs, key) -> {name: [E]}`, if given, is averaged over every visited state
    (with a key of its own, so measuring does not change the episodes).
    """
    horizon = int(max_steps or spec.max_steps)
    step_fn = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_fn = jax.vmap(env.reset, in_axes=(0, None))

    def episodes(params, key):
        reset_key, run_key = jax.random.split(key)
        obs, state = reset_fn(jax.random.split(reset_key, num_envs), env_params)

        def step(carry, t):
            obs, state, alive, ret, length, total = carry
            t_key = jax.random.fold_in(run_key, t)
            act_key, step_key = jax.random.split(t_key)
            if measure is not None:
                figures = measure(params, obs, jax.random.fold_in(t_key, MEASURE_STREAM))
                total = {k: total[k] + jnp.sum(jnp.where(alive, v, 0.0)) for k, v in figures.items()}
            action = act(params, obs, act_key)
            env_action = networks.clip_action(spec, action)
            next_obs, state, reward, terminated, truncated, _ = step_fn(
                jax.random.split(step_key, num_envs), state, env_action, env_params)
            ret = ret + jnp.where(alive, reward, 0.0)
            length = length + alive.astype(jnp.int32)
            out = (obs, env_action, alive) if record else None
            alive = alive & ~(terminated | truncated)
            return (next_obs, state, alive, ret, length, total), out

        total = None
        if measure is not None:
            shapes = jax.eval_shape(measure, params, obs, run_key)
            total = {k: jnp.zeros(()) for k in shapes}
        init = (obs, state, jnp.ones(num_envs, bool), jnp.zeros(num_envs),
                jnp.zeros(num_envs, jnp.int32), total)
        (_, _, _, returns, lengths, total), trace = jax.lax.scan(step, init, jnp.arange(horizon))
        measured = None if total is None else {k: v / jnp.sum(lengths) for k, v in total.items()}
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


def expert_action(spec: EnvSpec, expert, expert_params, obs):
    """(a*, σ*): the expert's executed action, its deterministic (mode) action clipped to the
    action bounds, as stored in every dataset and buffer; and its Gaussian std (continuous)."""
    out = expert.apply(expert_params, obs)
    std = None if spec.discrete else jnp.exp(jnp.split(out, 2, axis=-1)[1])
    return networks.clip_action(spec, networks.mode(spec.discrete, out)), std


def make_tv_measure(spec: EnvSpec, learner, expert, policy: str) -> Callable:
    """measure((learner_params, expert_params), obs, key) -> {"tv": ε(s) of the evaluated
    policy (`policy`), "tv_stochastic": ε(s) of the stochastic π̂}, for `make_episodes`."""

    def measure(params, obs, key):
        learner_params, expert_params = params
        a_star, std = expert_action(spec, expert, expert_params, obs)
        out = learner.apply(learner_params, obs)
        return {"tv": networks.tv_to_expert(spec, policy, out, a_star, std, key),
                "tv_stochastic": networks.tv_sample(spec, out, a_star, std, key)}

    return measure


def make_paired_episodes(env, env_params, spec: EnvSpec, learner, expert, num_episodes: int,
                         policy: str) -> Callable:
    """paired((learner_params, expert_params), key) -> (learner Episodes, expert Episodes).

    The learner (acting with `policy`) and the expert (deterministic) run with the same key
    and episode count, so the return gap is a paired difference; ε is measured on each
    one's visited states (`measure_mean["tv"]` on the learner's states, on the expert's)."""
    measure = make_tv_measure(spec, learner, expert, policy)
    learner_act = make_policy_act(spec, learner, policy)
    on_learner = make_episodes(env, env_params, spec, num_episodes,
                               lambda p, obs, k: learner_act(p[0], obs, k), measure=measure)
    on_expert = make_episodes(env, env_params, spec, num_episodes,
                              lambda p, obs, k: expert_action(spec, expert, p[1], obs)[0],
                              measure=measure)

    def paired(params, key):
        return on_learner(params, key), on_expert(params, key)

    return paired
