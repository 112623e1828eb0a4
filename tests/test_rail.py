"""Rail-v0 (il_cli.rail): the gymnax interface, the dynamics, the time limit as a traced
parameter, the exact expert, and `il bc` on it end to end."""

import jax
import jax.numpy as jnp
import numpy as np
from helpers import il_json

from il_cli import networks, rollout
from il_cli.envs import make_env, resolve_env_id
from il_cli.exact import rail as expert_params
from il_cli.rail import EnvState, Rail, correct_action

ENV, PARAMS, SPEC = make_env("Rail-v0")
N, D = ENV.num_positions, ENV.depth
A_STAR = ENV.correct_actions()


def cell(x, d):
    return EnvState(x=jnp.int32(x), d=jnp.int32(d), time=0)


def step(state, action, key=0):
    obs, state, reward, terminated, truncated, _ = ENV.step(jax.random.PRNGKey(key), state, action, PARAMS)
    return obs, state, float(reward), bool(terminated), bool(truncated)


def expert_act(obs, key, aux):
    """a* read off the observation's one-hot x and d."""
    return correct_action(jnp.argmax(obs[..., :N], axis=-1), jnp.argmax(obs[..., N:], axis=-1)), None, aux


def all_cells():
    """(observations, a*) of every cell (x, d)."""
    d, x = np.divmod(np.arange(N * (D + 1)), N)
    return np.concatenate([np.eye(N, dtype=np.float32)[x], np.eye(D + 1, dtype=np.float32)[d]], 1), correct_action(x, d)


def test_registered_with_aliases_and_spec():
    assert resolve_env_id("Rail") == resolve_env_id("rail") == resolve_env_id("Rail-v0") == "Rail-v0"
    assert isinstance(ENV, Rail) and ENV.name == "Rail-v0" and ENV.num_actions == 2
    assert SPEC.obs_shape == (N + D + 1,) and SPEC.discrete and SPEC.action_dim == 2
    assert SPEC.max_steps == PARAMS.max_steps_in_episode == 200 and (N, D) == (1024, 2)


def test_reset_and_step_shapes_dtypes_jit_and_vmap():
    obs, state = ENV.reset(jax.random.PRNGKey(0), PARAMS)
    assert obs.shape == SPEC.obs_shape and obs.dtype == jnp.float32 and obs.sum() == 2 and obs[0] == obs[N] == 1
    assert (int(state.x), int(state.d), int(state.time)) == (0, 0, 0)
    assert ENV.observation_space(PARAMS).contains(obs) and ENV.action_space(PARAMS).contains(jnp.int32(1))
    obs, state, reward, terminated, truncated, info = jax.jit(ENV.step)(jax.random.PRNGKey(1), state, 1, PARAMS)
    assert obs.shape == SPEC.obs_shape and obs.dtype == jnp.float32
    assert reward.dtype == jnp.float32 and terminated.dtype == truncated.dtype == jnp.bool_
    assert info["final_observation"].shape == SPEC.obs_shape
    keys = jax.random.split(jax.random.PRNGKey(2), 8)
    obs, states = jax.vmap(ENV.reset, in_axes=(0, None))(keys, PARAMS)
    actions = jnp.asarray([A_STAR[0], 1 - A_STAR[0]] * 4)
    obs, states, rewards, *_ = jax.vmap(ENV.step, in_axes=(0, 0, 0, None))(keys, states, actions, PARAMS)
    assert obs.shape == (8, *SPEC.obs_shape)
    np.testing.assert_array_equal(rewards, [1, 0] * 4)
    np.testing.assert_array_equal(states.d, [0, 1] * 4)


def test_correct_action_is_a_fixed_fair_bit_in_jit():
    assert 0.45 < A_STAR.mean() < 0.55
    x = np.arange(N)
    np.testing.assert_array_equal(jax.jit(correct_action)(jnp.asarray(x), jnp.zeros(N, jnp.int32)), A_STAR)
    for d in range(1, D + 1):  # off the rail: step back (0), whatever x
        assert not correct_action(x, np.full(N, d)).any()
    np.testing.assert_array_equal(Rail().correct_actions(), A_STAR)  # the same for every instance


def test_dynamics():
    x = 10
    on = cell(x, 0)
    a = int(A_STAR[x])
    advanced = set()
    for key in range(16):  # the correct action on the rail: reward 1, x + 1 or x + 2
        obs, state, reward, terminated, truncated = step(on, a, key)
        assert reward == 1 and int(state.d) == 0 and not terminated and not truncated
        advanced.add(int(state.x) - x)
        assert obs[int(state.x)] == 1
    assert advanced == {1, 2}
    obs, state, reward, *_ = step(on, 1 - a)  # the wrong one: off the rail to (x, 1)
    assert (int(state.x), int(state.d), reward) == (x, 1, 0) and obs[x] == obs[N + 1] == 1
    for d in range(1, D):
        a = 0
        _, back, reward, *_ = step(cell(x, d), a)  # recovery: d − 1
        _, deeper, reward_wrong, *_ = step(cell(x, d), 1 - a)  # d + 1
        assert (int(back.x), int(back.d), reward) == (x + 1, d - 1, 0)
        assert (int(deeper.x), int(deeper.d), reward_wrong) == (x, d + 1, 0)
    for action in (0, 1):  # lost is absorbing
        _, state, reward, *_ = step(cell(x, D), action)
        assert (int(state.x), int(state.d), reward) == (x, D, 0)
    _, state, *_ = step(cell(N - 1, 0), int(A_STAR[N - 1]))  # x is clipped at N − 1
    assert int(state.x) == N - 1


def test_time_limit_auto_resets_and_records_the_final_observation():
    H = 12
    params = PARAMS.replace(max_steps_in_episode=H)
    reset, run = rollout.make_rollout(ENV, params, SPEC, 2)
    keep = lambda s: (s.obs, s.final_obs, s.reward, s.terminated, s.truncated, s.episode_return)
    _, _, (obs, final_obs, reward, terminated, truncated, ret) = jax.jit(
        lambda k: run(expert_act, keep, reset(k), k, 2 * H + 1))(jax.random.PRNGKey(0))
    assert not terminated.any() and (reward == 1).all()
    np.testing.assert_array_equal(np.where(truncated[:, 0])[0], [H - 1, 2 * H - 1])
    np.testing.assert_array_equal(ret[H - 1], [H, H])
    assert (obs[H].argmax(-1) == 0).all() and (obs[0] == obs[H]).all()  # the reset cell (0, 0)
    assert (final_obs[H - 1].argmax(-1) >= H).all()  # the cell reached at the limit, before the reset
    np.testing.assert_array_equal(final_obs[:H - 1], obs[1:H])  # otherwise it is the next observation


def test_exact_expert_returns_exactly_h_with_the_time_limit_traced():
    """The exact actor's mode action is a* in every cell (tanh or relu); rolled out with two
    horizons H in one vmapped program (max_steps_in_episode traced), it returns exactly H."""
    params = expert_params(ENV, (64, 64))
    for activation in ("tanh", "relu"):
        actor = networks.make_actor(SPEC, (64, 64), activation)
        init = jax.eval_shape(actor.init, jax.random.PRNGKey(0), networks.dummy_obs(SPEC))
        assert jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params) == init
        obs, a_star = all_cells()
        logits = actor.apply(params, obs)
        np.testing.assert_array_equal(networks.mode(True, logits), a_star)
        assert float(jax.nn.softmax(logits).min()) < 1e-8
    act = rollout.make_policy_act(SPEC, actor)
    horizons = jnp.array([50, 500])

    def episodes(horizon, key):
        return rollout.make_episodes(ENV, PARAMS.replace(max_steps_in_episode=horizon), SPEC, 4, act,
                                     max_steps=500)(params, key)

    out = jax.jit(jax.vmap(episodes))(horizons, jax.random.split(jax.random.PRNGKey(0), 2))
    np.testing.assert_array_equal(out.returns, [[50] * 4, [500] * 4])
    np.testing.assert_array_equal(out.lengths, [[50] * 4, [500] * 4])


def test_bc_on_rail_end_to_end(tmp_runs):
    summary = il_json("bc", "--env", "rail", "--episodes", "3", "--num-steps", "200",
                      "--eval-episodes", "10")
    assert summary["env"] == "Rail-v0"
    assert summary["expert"]["return_mean"] == 200  # the exact expert, paired
    assert 0 <= summary["eval"]["return_mean"] <= 200 and summary["eval"]["episodes"] == 10


def test_epsilon_counts_no_mistake_in_the_lost_state():
    """A learner that always takes the wrong action leaves the rail at step 0, is lost after
    step 1, and stays lost: ε on its own states counts those two mistakes, not the lost steps
    where every action does the same."""
    params = expert_params(ENV, (16,))
    wrong = jax.tree.map(lambda x: x, params)
    wrong["params"]["Dense_1"]["kernel"] = -params["params"]["Dense_1"]["kernel"]  # mode = 1 − a* everywhere
    actor = networks.make_actor(SPEC, (16,))
    horizon = 16
    paired = rollout.make_paired_episodes(ENV, PARAMS.replace(max_steps_in_episode=horizon), SPEC, actor, actor, 4,
                                          "mode")
    on_learner, on_expert = jax.jit(paired)((wrong, params), jax.random.PRNGKey(0))
    np.testing.assert_array_equal(on_learner.returns, np.zeros(4))
    assert float(on_learner.measure_mean["tv"]) == 2 / horizon  # steps 0 and 1; the other 14 are lost
    assert float(on_expert.measure_mean["tv"]) == 1.0  # on the rail the wrong action is always a mistake
