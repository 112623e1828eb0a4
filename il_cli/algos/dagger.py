"""DAgger (Ross et al. 2011, Algorithm 1) as one jit-compiled program.

For i = 1..N: π_i = β_i π* + (1 − β_i) π̂_i (at every step, in every environment, the
expert acts with probability β_i); roll π_i out for m steps; label every visited state
with the expert, D_i = {(s, π*(s))}; D ← D ∪ D_i; train π̂_{i+1} on D. Rounds are a
`lax.scan`; D is a preallocated buffer of D_0 + N·m rows of which the first `size` are
filled; environments continue their episodes from one round to the next.
"""


import jax
import jax.numpy as jnp
from flax import struct

from il_cli import networks, rollout
from il_cli.algos.bc import make_bc
from il_cli.algos.fit import FitState
from il_cli.config import DAggerConfig
from il_cli.envs import EnvSpec


class DAggerState(struct.PyTreeNode):
    learner: FitState
    env: rollout.EnvCarry  # environments continue their episodes from one round to the next
    buffer_obs: jax.Array  # D: [capacity, *obs_shape]
    buffer_actions: jax.Array  # expert labels: [capacity] or [capacity, action_dim]
    size: jax.Array  # rows of D filled
    queries: jax.Array  # supervisor burden: states the expert was asked about, demos included
    expert_steps: jax.Array  # rollout steps in which the expert itself acted
    key: jax.Array
    round: jax.Array  # rounds done


def mix_actions(expert_action, learner_action, beta, key):
    """π_i = β π* + (1 − β) π̂: per environment, the expert's action with probability β
    (a scalar, or one β per environment).

    Returns (actions, mask of environments where the expert acted)."""
    use_expert = jax.random.uniform(key, expert_action.shape[:1]) < beta
    mask = use_expert.reshape(use_expert.shape + (1,) * (expert_action.ndim - 1))
    return jnp.where(mask, expert_action, learner_action), use_expert


def corrupt_labels(spec: EnvSpec, labels, noise, key):
    """A noisy supervisor: discrete labels replaced by a uniform random action with
    probability `noise` (so a fraction noise·(A−1)/A of labels change); continuous labels
    plus Gaussian noise of scale `noise`, clipped to the bounds like every stored action."""
    flip_key, value_key = jax.random.split(key)
    if spec.discrete:
        flip = jax.random.uniform(flip_key, labels.shape) < noise
        return jnp.where(flip, jax.random.randint(value_key, labels.shape, 0, spec.action_dim), labels)
    return networks.clip_action(spec, labels + noise * jax.random.normal(value_key, labels.shape))


def hyper_of(cfg: DAggerConfig) -> dict:
    """The traced hyperparameters of DAgger: the β schedule's values and the label noise
    (the learning rate lives in the optimizer state)."""
    return {"betas": jnp.asarray(cfg.betas, jnp.float32), "label_noise": jnp.float32(cfg.label_noise)}


def make_dagger(cfg: DAggerConfig, env, env_params, spec: EnvSpec, learner, expert, max_demos: int):
    """(init(key, demo_obs, demo_actions, num_demos, lr) -> DAggerState, dagger_rounds(state,
    hyper, expert_params, eval_key, num_rounds) -> (state, per-round metrics)).

    `demo_obs`/`demo_actions` hold `max_demos` rows of which the first `num_demos` are
    demonstrations; `hyper` is `hyper_of(cfg)`.

    Supervisor burden: each state the expert is asked about is one query, whether its answer
    becomes a label, an action in the mixture, or both; demonstrations count one per row.
    `expert_budget` caps the queries: in each step the first `budget − queries` environments
    may ask, and once it is spent β is 0 and nothing more is labelled.
    """
    E, m = cfg.num_envs, cfg.steps_per_round
    T = m // E
    capacity = max_demos + cfg.rounds * m
    budget = cfg.expert_budget if cfg.expert_budget is not None else capacity
    init_bc, bc_update, _ = make_bc(learner, spec.discrete, cfg.batch_size)
    reset, env_rollout = rollout.make_rollout(env, env_params, spec, E)
    obs0 = networks.dummy_obs(spec)
    paired_eval = rollout.make_paired_episodes(env, env_params, spec, learner, expert,
                                               cfg.eval_episodes, cfg.eval_policy)

    def init(key, demo_obs, demo_actions, num_demos, lr) -> DAggerState:
        learner_key, reset_key, train_key = jax.random.split(key, 3)
        buffer_obs = jnp.zeros((capacity, *spec.obs_shape), demo_obs.dtype)
        buffer_actions = jnp.zeros((capacity, *demo_actions.shape[1:]), demo_actions.dtype)
        num_demos = jnp.asarray(num_demos, jnp.int32)
        return DAggerState(init_bc(learner_key, obs0, lr), reset(reset_key),
                           buffer_obs.at[:max_demos].set(demo_obs),
                           buffer_actions.at[:max_demos].set(demo_actions),
                           num_demos, num_demos, jnp.zeros((), jnp.int32), train_key,
                           jnp.zeros((), jnp.int32))

    def dagger_round(state: DAggerState, hyper, expert_params, eval_key):
        beta = hyper["betas"][state.round]
        round_key = jax.random.fold_in(state.key, state.round)
        roll_key, noise_key, init_key = jax.random.split(round_key, 3)

        def act(obs, key, queries):
            asked = jnp.arange(E) < budget - queries  # the states the expert may be asked about
            a_star, _ = rollout.expert_action(spec, expert, expert_params, obs)
            a_learner = networks.mode(spec.discrete, learner.apply(state.learner.params, obs))
            action, used = mix_actions(a_star, a_learner, jnp.where(asked, beta, 0.0), key)
            return action, (a_star, used, asked), queries + jnp.sum(asked)

        env_carry, queries, (visited, labels, used, asked) = env_rollout(
            act, lambda s: (s.obs, *s.extra), state.env, roll_key, T, state.queries)
        # Rows in (step, env) order: the asked states are a prefix of the m visited ones.
        visited = visited.reshape(m, *spec.obs_shape).astype(state.buffer_obs.dtype)
        labels = corrupt_labels(spec, labels.reshape(m, *labels.shape[2:]), hyper["label_noise"], noise_key)
        asked = asked.reshape(m)

        def write(buffer, rows):  # D ← D ∪ D_i: asked rows only, the rest of the buffer untouched
            start = (state.size,) + (0,) * (buffer.ndim - 1)
            old = jax.lax.dynamic_slice(buffer, start, (m, *buffer.shape[1:]))
            keep = asked.reshape((m,) + (1,) * (buffer.ndim - 1))
            return jax.lax.dynamic_update_slice(buffer, jnp.where(keep, rows.astype(buffer.dtype), old), start)

        buffer_obs, buffer_actions = write(state.buffer_obs, visited), write(state.buffer_actions, labels)
        size = state.size + jnp.sum(asked)

        learner_state = state.learner
        if cfg.retrain_from_scratch:  # a fresh initialisation with the same learning rate
            lr = learner_state.opt_state.hyperparams["learning_rate"]
            learner_state = init_bc(init_key, obs0, lr).replace(step=learner_state.step)
        learner_state, losses = jax.lax.scan(
            lambda s, _: bc_update(s, (buffer_obs, buffer_actions, jnp.maximum(size, 1))),
            learner_state, None, length=cfg.train_steps)

        state = state.replace(
            learner=learner_state, env=env_carry, buffer_obs=buffer_obs,
            buffer_actions=buffer_actions, size=size, queries=queries,
            expert_steps=state.expert_steps + jnp.sum(used), round=state.round + 1)
        on_learner, on_expert = paired_eval((learner_state.params, expert_params), eval_key)
        metrics = {"beta": beta * jnp.mean(asked), "beta_scheduled": beta, "dataset_size": size,
                   "expert_queries": state.queries, "expert_steps": state.expert_steps,
                   "loss": jnp.mean(losses[-max(1, cfg.train_steps // 10):]),
                   "return": jnp.mean(on_learner.returns), "return_std": jnp.std(on_learner.returns),
                   "expert_return": jnp.mean(on_expert.returns),
                   **rollout.tv_figures(on_learner, on_expert)}
        return state, metrics

    def dagger_rounds(state: DAggerState, hyper, expert_params, eval_key, num_rounds: int):
        return jax.lax.scan(lambda s, _: dagger_round(s, hyper, expert_params, eval_key),
                            state, None, length=num_rounds)

    return init, dagger_rounds
