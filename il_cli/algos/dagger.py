"""DAgger (Ross et al. 2011, Algorithm 1) as one jit-compiled program.

For i = 1..N: π_i = β_i π* + (1 − β_i) π̂_i (at every step, in every environment, the
expert acts with probability β_i); roll π_i out for m steps; label every visited state
with the expert, D_i = {(s, π*(s))}; D ← D ∪ D_i; train π̂_{i+1} on D. Rounds are a
`lax.scan`; D is a preallocated buffer of D_0 + N·m rows of which the first `size` are
filled; environments continue their episodes from one round to the next.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from il_cli import networks, rollout
from il_cli.algos.bc import BCState, make_bc
from il_cli.config import DAggerConfig
from il_cli.envs import EnvSpec


class DAggerState(struct.PyTreeNode):
    learner: BCState
    env_state: Any
    obs: jax.Array
    buffer_obs: jax.Array  # D: [capacity, *obs_shape]
    buffer_actions: jax.Array  # expert labels: [capacity] or [capacity, action_dim]
    size: jax.Array  # rows of D filled
    queries: jax.Array  # expert labels requested in rounds (supervisor burden)
    expert_steps: jax.Array  # rollout steps in which the expert itself acted
    key: jax.Array
    round: jax.Array  # rounds done


def mix_actions(expert_action, learner_action, beta, key):
    """π_i = β π* + (1 − β) π̂: per environment, the expert's action with probability β.

    Returns (actions, mask of environments where the expert acted)."""
    use_expert = jax.random.uniform(key, expert_action.shape[:1]) < beta
    mask = use_expert.reshape(use_expert.shape + (1,) * (expert_action.ndim - 1))
    return jnp.where(mask, expert_action, learner_action), use_expert


def corrupt_labels(spec: EnvSpec, labels, noise, key):
    """A noisy supervisor: discrete labels replaced by a uniform random action with
    probability `noise`; continuous labels plus Gaussian noise of scale `noise`."""
    flip_key, value_key = jax.random.split(key)
    if spec.discrete:
        flip = jax.random.uniform(flip_key, labels.shape) < noise
        return jnp.where(flip, jax.random.randint(value_key, labels.shape, 0, spec.action_dim), labels)
    return labels + noise * jax.random.normal(value_key, labels.shape)


def make_dagger(cfg: DAggerConfig, env, env_params, spec: EnvSpec, learner, expert, num_demos: int):
    """(init(key, demo_obs, demo_actions) -> DAggerState, dagger_rounds(state, betas,
    expert_params, num_rounds) -> (state, per-round metrics))."""
    E, m = cfg.num_envs, cfg.steps_per_round
    T = m // E
    capacity = num_demos + cfg.rounds * m
    budget = cfg.expert_budget if cfg.expert_budget is not None else cfg.rounds * m
    init_bc, bc_update, _ = make_bc(learner, spec.discrete, cfg.lr, cfg.batch_size)
    step_fn = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_fn = jax.vmap(env.reset, in_axes=(0, None))
    obs0 = networks.dummy_obs(spec)

    def expert_act(expert_params, obs):
        out = expert.apply(expert_params, obs)
        return networks.mode(spec.discrete, out), out

    def tv(params, obs):
        """ε(s) = TV(π̂(·|s), π*(·|s)) at each state."""
        learner_params, expert_params = params
        a_star, e_out = expert_act(expert_params, obs)
        std = None if spec.discrete else jnp.exp(jnp.split(e_out, 2, axis=-1)[1])
        return networks.tv_to_expert(spec.discrete, learner.apply(learner_params, obs), a_star, std)

    learner_eval = rollout.make_episodes(
        env, env_params, spec, cfg.eval_episodes,
        lambda p, obs, k: networks.mode(spec.discrete, learner.apply(p[0], obs)), measure=tv)
    expert_eval = rollout.make_episodes(
        env, env_params, spec, cfg.eval_episodes,
        lambda p, obs, k: expert_act(p[1], obs)[0], measure=tv)

    def init(key, demo_obs, demo_actions) -> DAggerState:
        learner_key, reset_key, train_key = jax.random.split(key, 3)
        obs, env_state = reset_fn(jax.random.split(reset_key, E), env_params)
        buffer_obs = jnp.zeros((capacity, *spec.obs_shape), demo_obs.dtype)
        buffer_actions = jnp.zeros((capacity, *demo_actions.shape[1:]), demo_actions.dtype)
        zero = jnp.zeros((), jnp.int32)
        return DAggerState(init_bc(learner_key, obs0), env_state, obs,
                           buffer_obs.at[:num_demos].set(demo_obs),
                           buffer_actions.at[:num_demos].set(demo_actions),
                           zero + num_demos, zero, zero, train_key, zero)

    def dagger_round(state: DAggerState, beta, expert_params, eval_key):
        round_key = jax.random.fold_in(state.key, state.round)
        roll_key, noise_key, init_key = jax.random.split(round_key, 3)

        def env_step(carry, t):
            obs, env_state = carry
            mix_key, step_key = jax.random.split(jax.random.fold_in(roll_key, t))
            a_star, _ = expert_act(expert_params, obs)
            a_learner = networks.mode(spec.discrete, learner.apply(state.learner.params, obs))
            action, used = mix_actions(a_star, a_learner, beta, mix_key)
            obs_next, env_state, _, _, _, _ = step_fn(
                jax.random.split(step_key, E), env_state, networks.clip_action(spec, action), env_params)
            return (obs_next, env_state), (obs, a_star, used)

        (obs, env_state), (visited, labels, used) = jax.lax.scan(
            env_step, (state.obs, state.env_state), jnp.arange(T))
        visited = visited.reshape(m, *spec.obs_shape)
        labels = corrupt_labels(spec, labels.reshape(m, *labels.shape[2:]), cfg.label_noise, noise_key)
        labels = labels.astype(state.buffer_actions.dtype)
        accepted = jnp.clip(budget - state.queries, 0, m)  # D_i is cut at the expert budget
        start = (state.size,) + (0,) * (visited.ndim - 1)
        buffer_obs = jax.lax.dynamic_update_slice(state.buffer_obs, visited.astype(state.buffer_obs.dtype), start)
        buffer_actions = jax.lax.dynamic_update_slice(state.buffer_actions, labels, start[: labels.ndim])
        size = state.size + accepted

        learner_state = state.learner
        if cfg.retrain_from_scratch:
            learner_state = init_bc(init_key, obs0).replace(step=learner_state.step)
        learner_state, losses = jax.lax.scan(
            lambda s, _: bc_update(s, buffer_obs, buffer_actions, jnp.maximum(size, 1)),
            learner_state, None, length=cfg.train_steps)

        state = state.replace(
            learner=learner_state, env_state=env_state, obs=obs, buffer_obs=buffer_obs,
            buffer_actions=buffer_actions, size=size, queries=state.queries + accepted,
            expert_steps=state.expert_steps + jnp.sum(used), round=state.round + 1)
        params = (learner_state.params, expert_params)
        on_learner = learner_eval(params, eval_key)
        on_expert = expert_eval(params, eval_key)
        metrics = {"beta": beta, "dataset_size": size, "expert_queries": state.queries,
                   "expert_steps": state.expert_steps, "loss": jnp.mean(losses[-max(1, cfg.train_steps // 10):]),
                   "return": jnp.mean(on_learner.returns), "return_std": jnp.std(on_learner.returns),
                   "tv_learner_states": on_learner.measure_mean,
                   "tv_expert_states": on_expert.measure_mean}
        return state, metrics

    def dagger_rounds(state: DAggerState, betas, expert_params, eval_key, num_rounds: int):
        return jax.lax.scan(lambda s, _: dagger_round(s, betas[s.round], expert_params, eval_key),
                            state, None, length=num_rounds)

    return init, dagger_rounds
