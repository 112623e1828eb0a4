"""Vectorized rollouts on gymnax environments, all built on one primitive.

`make_rollout` is the only place environments are stepped: an act function in, a per-step
record out, gymnax's auto-reset, and masks for episodes that finished. Evaluation,
demonstrations, raw stepping, DAgger's mixture policy and PPO's rollouts are all written
with it. Everything here is a `make_*` factory that closes over static shapes and returns
pure functions to be jit-compiled.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from il_cli import networks
from il_cli.envs import EnvSpec

MEASURE_STREAM = 0x3EA5  # measurement keys are never action or environment keys


class EnvCarry(NamedTuple):
    """The environments between steps (and between chunks of training)."""

    obs: jax.Array  # [E, *obs_shape]
    state: Any  # gymnax environment states
    episode_return: jax.Array  # [E] return of the running episode so far
    episodes_done: jax.Array  # [E] episodes finished since the carry was reset


class Step(NamedTuple):
    """One step of every environment ([E, ...] each), as the record function sees it."""

    obs: jax.Array  # the observation acted on
    action: jax.Array  # the action `act` chose (before clipping to the bounds)
    env_action: jax.Array  # the action the environment received
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # the observation reached, before gymnax's auto-reset
    episode_return: jax.Array  # the episode's return so far, this step's reward included
    first_episode: jax.Array  # True while this is the env's first episode since reset
    extra: Any  # what `act` returned beside the action


def make_rollout(env, env_params, spec: EnvSpec, num_envs: int) -> tuple[Callable, Callable]:
    """(reset(key) -> EnvCarry, rollout(act, record, carry, key, num_steps, aux=None) ->
    (carry, aux, records)).

    At step t (key_t = fold_in(key, t), split into an act key and an environment key)
    `act(obs, act_key, aux) -> (action, extra, aux)` chooses every environment's action; the
    environments step on the action clipped to its bounds (vmapped gymnax `step`, which
    auto-resets a terminated or truncated episode); `record(Step) -> pytree` is stacked
    over the `num_steps` steps. `aux` is the caller's own carry.
    """
    step_fn = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_fn = jax.vmap(env.reset, in_axes=(0, None))

    def reset(key) -> EnvCarry:
        obs, state = reset_fn(jax.random.split(key, num_envs), env_params)
        zeros = jnp.zeros(num_envs)
        return EnvCarry(obs, state, zeros, zeros.astype(jnp.int32))

    def rollout(act, record, carry: EnvCarry, key, num_steps: int, aux=None):
        def step(loop_carry, t):
            carry, aux = loop_carry
            act_key, env_key = jax.random.split(jax.random.fold_in(key, t))
            action, extra, aux = act(carry.obs, act_key, aux)
            env_action = networks.clip_action(spec, action)
            obs, state, reward, terminated, truncated, info = step_fn(
                jax.random.split(env_key, num_envs), carry.state, env_action, env_params)
            done = terminated | truncated
            episode_return = carry.episode_return + reward
            out = record(Step(carry.obs, action, env_action, reward, terminated, truncated,
                              info["final_observation"], episode_return, carry.episodes_done == 0,
                              extra))
            carry = EnvCarry(obs, state, jnp.where(done, 0.0, episode_return),
                             carry.episodes_done + done.astype(jnp.int32))
            return (carry, aux), out

        (carry, aux), records = jax.lax.scan(step, (carry, aux), jnp.arange(num_steps))
        return carry, aux, records

    return reset, rollout


class Episodes(NamedTuple):
    """One episode per environment. `obs`/`actions`/`valid` are [T, E, ...] when recorded."""

    returns: jax.Array  # [E]
    lengths: jax.Array  # [E]
    obs: jax.Array | None = None
    actions: jax.Array | None = None
    valid: jax.Array | None = None
    measure_mean: dict | None = None  # mean of each `measure` figure over all visited states
    rewards: jax.Array | None = None  # [T, E], with `ends`
    terminated: jax.Array | None = None  # [E]: the episode ended by termination (not the time limit)
    final_obs: jax.Array | None = None  # [E, *obs_shape]: the observation its last step reached


def recorded_rows(episodes: Episodes):
    """(obs, actions, size): the steps of recorded `episodes` as a padded dataset, the `size`
    live steps first in (step, env) order and the rest padding (as il_cli.algos.bc reads it)."""
    valid = episodes.valid.reshape(-1)
    order = jnp.argsort(~valid, stable=True)
    obs = episodes.obs.reshape(-1, *episodes.obs.shape[2:])[order]
    actions = episodes.actions.reshape(-1, *episodes.actions.shape[2:])[order]
    return obs, actions, jnp.sum(valid)


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
                  measure: Callable | None = None, ends: bool = False) -> Callable:
    """episodes(params, key) -> Episodes: one episode in each of `num_envs` environments.

    Steps run to the env's time limit (or `max_steps`); steps after an environment's first
    episode ends are masked out. `act(params, obs, key)` chooses actions;
    `measure(params, obs, key) -> {name: [E]}`, if given, is averaged over every visited state
    (with a key of its own, so measuring does not change the episodes). `record` keeps the
    observations and actions; `ends` keeps them with the rewards, how each episode ended and
    the observation it ended in (what a dataset other tools read holds).
    """
    horizon = int(max_steps or spec.max_steps)
    record = record or ends
    reset, rollout = make_rollout(env, env_params, spec, num_envs)

    def episodes(params, key):
        reset_key, run_key = jax.random.split(key)

        def policy(obs, key, aux):
            figures = {} if measure is None else measure(params, obs, jax.random.fold_in(key, MEASURE_STREAM))
            return act(params, obs, key), figures, aux

        def keep(s: Step):
            alive = s.first_episode
            out = {"reward": jnp.where(alive, s.reward, 0.0), "alive": alive,
                   "figures": {k: jnp.where(alive, v, 0.0).sum() for k, v in s.extra.items()}}
            if record:
                out["obs"], out["action"] = s.obs, s.env_action
            if ends:  # the step that ends the first episode: how, and in which observation
                last = alive & (s.terminated | s.truncated)
                out["terminated"] = last & s.terminated
                out["final_obs"] = jnp.where(last.reshape(-1, *[1] * (s.final_obs.ndim - 1)), s.final_obs, 0)
            return out

        carry, _, steps = rollout(policy, keep, reset(reset_key), run_key, horizon)
        lengths = steps["alive"].sum(axis=0)
        measured = None
        if measure is not None:
            measured = {k: v.sum() / jnp.sum(lengths) for k, v in steps["figures"].items()}
        if ends:  # (one non-zero step per ended episode; an episode cut at `horizon` ends in the carry's obs)
            cut = (carry.episodes_done == 0).reshape(-1, *[1] * (carry.obs.ndim - 1))
            final_obs = jnp.where(cut, carry.obs, steps["final_obs"].sum(axis=0).astype(carry.obs.dtype))
            return Episodes(steps["reward"].sum(axis=0), lengths, steps["obs"], steps["action"], steps["alive"],
                            measured, steps["reward"], steps["terminated"].any(axis=0), final_obs)
        if record:
            return Episodes(steps["reward"].sum(axis=0), lengths, steps["obs"], steps["action"],
                            steps["alive"], measure_mean=measured)
        return Episodes(steps["reward"].sum(axis=0), lengths, measure_mean=measured)

    return episodes


def make_random_stepper(env, env_params, spec: EnvSpec, num_envs: int, num_steps: int) -> Callable:
    """steps(key) -> total reward: `num_steps` random-action steps in `num_envs` envs.

    The machine's limit on this workload: the rollout primitive with no network.
    """
    reset, rollout = make_rollout(env, env_params, spec, num_envs)

    def random_action(obs, key, aux):
        if spec.discrete:
            return jax.random.randint(key, (num_envs,), 0, spec.action_dim), None, aux
        return jax.random.normal(key, (num_envs, spec.action_dim)), None, aux

    def steps(key):
        _, _, rewards = rollout(random_action, lambda s: s.reward.sum(), reset(key), key, num_steps)
        return rewards.sum()

    return steps


def uniform_action(spec: EnvSpec, key, shape):
    """Actions drawn uniformly: over the discrete actions, or over the continuous action box
    (`shape` is the batch shape of the actions, with the action dimension for continuous ones)."""
    if spec.discrete:
        return jax.random.randint(key, shape, 0, spec.action_dim)
    return jax.random.uniform(key, shape, minval=jnp.asarray(spec.action_low), maxval=jnp.asarray(spec.action_high))


def expert_action(spec: EnvSpec, expert, expert_params, obs):
    """(a*, σ*): the expert's executed action, its deterministic (mode) action clipped to the
    action bounds, as stored in every dataset and buffer; and its Gaussian std (continuous)."""
    out = expert.apply(expert_params, obs)
    std = None if spec.discrete else jnp.exp(jnp.split(out, 2, axis=-1)[1])
    return networks.clip_action(spec, networks.mode(spec.discrete, out)), std


def make_tv_measure(spec: EnvSpec, learner, expert, policy: str, indifferent: Callable | None = None) -> Callable:
    """measure((learner_params, expert_params), obs, key) -> {"tv": ε(s) of the evaluated
    policy (`policy`), "tv_stochastic": ε(s) of the stochastic π̂}, for `make_episodes`.
    `indifferent(obs)`, if given, marks states where every action does the same (Rail's lost
    state): no action is a mistake there, so ε(s) is 0."""

    def measure(params, obs, key):
        learner_params, expert_params = params
        a_star, std = expert_action(spec, expert, expert_params, obs)
        out = learner.apply(learner_params, obs)
        figures = {"tv": networks.tv_to_expert(spec, policy, out, a_star, std, key),
                   "tv_stochastic": networks.tv_sample(spec, out, a_star, std, key)}
        if indifferent is not None:
            figures = {k: jnp.where(indifferent(obs), 0.0, v) for k, v in figures.items()}
        return figures

    return measure


def make_paired_episodes(env, env_params, spec: EnvSpec, learner, expert, num_episodes: int,
                         policy: str) -> Callable:
    """paired((learner_params, expert_params), key) -> (learner Episodes, expert Episodes).

    The learner (acting with `policy`) and the expert (deterministic) run with the same key
    and episode count, so the return gap is a paired difference; ε is measured on each
    one's visited states (`measure_mean["tv"]` on the learner's states, on the expert's), 0 in
    the states where the environment says every action does the same (`all_actions_equivalent`)."""
    measure = make_tv_measure(spec, learner, expert, policy, getattr(env, "all_actions_equivalent", None))
    learner_act = make_policy_act(spec, learner, policy)
    on_learner = make_episodes(env, env_params, spec, num_episodes,
                               lambda p, obs, k: learner_act(p[0], obs, k), measure=measure)
    on_expert = make_episodes(env, env_params, spec, num_episodes,
                              lambda p, obs, k: expert_action(spec, expert, p[1], obs)[0],
                              measure=measure)

    def paired(params, key):
        return on_learner(params, key), on_expert(params, key)

    return paired


def tv_figures(on_learner: Episodes, on_expert: Episodes) -> dict:
    """The four ε figures of a `make_paired_episodes` evaluation: of the evaluated policy and
    of the stochastic π̂ (`_stochastic`), on the learner's and on the expert's states."""
    return {"tv_learner_states": on_learner.measure_mean["tv"],
            "tv_learner_states_stochastic": on_learner.measure_mean["tv_stochastic"],
            "tv_expert_states": on_expert.measure_mean["tv"],
            "tv_expert_states_stochastic": on_expert.measure_mean["tv_stochastic"]}
