"""`il gail` and `il airl`: the discriminator's loss and AIRL's D by hand, the reward transforms,
the absorbing state on a terminal step, and the commands end to end (members, resume, the
learned reward re-optimised by `il expert --reward`, bad inputs)."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_one_error_line, final_params, il_json, invoke

from il_cli import networks
from il_cli.algos.adversarial import (
    REWARDS,
    AdversarialObjective,
    Discriminator,
    Transitions,
    disc_loss,
    expert_transitions,
)
from il_cli.algos.ppo import Transition
from il_cli.envs import make_env
from il_cli.runs import Run

TINY = ("--episodes", "2", "--total-timesteps", "8192", "--num-chunks", "2", "--eval-episodes", "6")
GAMMA = 0.9


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


@pytest.fixture(scope="module")
def cartpole():
    return make_env("CartPole-v1")[2]


def batch(spec, key, n=16):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jnp.concatenate([jax.random.normal(k1, (n, 4)), jnp.zeros((n, 1))], -1)
    x_next = jnp.concatenate([jax.random.normal(k2, (n, 4)), jnp.zeros((n, 1))], -1)
    return x, jax.random.randint(k3, (n,), 0, 2), x_next, -jnp.abs(jax.random.normal(k3, (n,)))


def test_disc_loss_is_logistic_regression_with_the_expert_as_one(cartpole):
    disc = Discriminator(cartpole, (8,), airl=False)
    params = disc.init(jax.random.PRNGKey(0))
    expert, learner = batch(cartpole, jax.random.PRNGKey(1)), batch(cartpole, jax.random.PRNGKey(2))
    loss, figures = disc_loss(disc, params, expert, learner, GAMMA, 0.0)
    d_expert = sigmoid(disc.g.apply(params["g"], expert[0], expert[1]))
    d_learner = sigmoid(disc.g.apply(params["g"], learner[0], learner[1]))
    by_hand = -np.mean(np.log(d_expert)) - np.mean(np.log(1 - d_learner))
    np.testing.assert_allclose(float(loss), by_hand, rtol=1e-5)
    np.testing.assert_allclose(float(figures["disc_expert_accuracy"]), np.mean(d_expert > 0.5))
    np.testing.assert_allclose(float(figures["disc_learner_accuracy"]), np.mean(d_learner < 0.5))
    with_penalty, _ = disc_loss(disc, params, expert, learner, GAMMA, 2.0)
    grads = jax.vmap(jax.grad(lambda x, a: disc.g.apply(params["g"], x[None], a[None])[0]))
    penalty = sum(np.mean(np.sum(np.asarray(grads(b[0], b[1])) ** 2, -1)) for b in (expert, learner))
    np.testing.assert_allclose(float(with_penalty), by_hand + 2.0 * penalty, rtol=1e-4)


@pytest.mark.parametrize("state_only", [True, False])
def test_airl_discriminator_is_exp_f_over_exp_f_plus_pi(cartpole, state_only):
    disc = Discriminator(cartpole, (8,), airl=True, state_only=state_only)
    params = disc.init(jax.random.PRNGKey(3))
    x, a, x_next, log_pi = batch(cartpole, jax.random.PRNGKey(4))
    g = disc.g.apply(params["g"], x) if state_only else disc.g.apply(params["g"], x, a)
    f = np.asarray(g + GAMMA * disc.h.apply(params["h"], x_next) - disc.h.apply(params["h"], x), np.float64)
    d_by_hand = np.exp(f) / (np.exp(f) + np.exp(np.asarray(log_pi, np.float64)))
    np.testing.assert_allclose(sigmoid(disc.logit(params, x, a, x_next, log_pi, GAMMA)), d_by_hand, rtol=1e-5)


def test_reward_transforms_are_their_literature_formulas():
    logit = jnp.linspace(-6, 6, 13)
    d = sigmoid(logit)
    np.testing.assert_allclose(REWARDS["gail"](logit), -np.log(1 - d), rtol=1e-5)
    np.testing.assert_allclose(REWARDS["logit"](logit), np.log(d) - np.log(1 - d), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(REWARDS["log-d"](logit), np.log(d), rtol=1e-5, atol=1e-6)
    assert (REWARDS["gail"](logit) > 0).all() and (REWARDS["log-d"](logit) < 0).all()


def test_expert_transitions_end_in_the_absorbing_state_only_when_terminated():
    obs = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    actions = np.zeros(8, np.int32)
    rows = expert_transitions(obs, actions, np.array([3, 5]), max_steps=5, num_rows=10, need_next=True)
    assert rows.terminal.tolist() == [False, False, True] + [False] * 7  # 3 < 5 steps: terminated
    assert rows.weight.tolist() == [1] * 7 + [0] + [0, 0]  # the truncated end has no s' (AIRL); padding
    assert rows.next_obs[0, 0] == 1 and rows.next_obs[3, 0] == 4
    gail = expert_transitions(obs, actions, np.array([3, 5]), max_steps=5, num_rows=8, need_next=False)
    assert gail.weight.tolist() == [1] * 8  # GAIL judges (s, a): the truncated end counts


@pytest.mark.parametrize("absorbing", [True, False])
def test_a_terminal_step_gains_the_absorbing_states_return(cartpole, absorbing):
    """r_t = transform(ℓ_t) + terminated_t γ r(s_abs)/(1 − γ) with the absorbing state, and no
    more than transform(ℓ_t) without it (the survival-biased version)."""
    actor = networks.make_actor(cartpole, (8,))
    disc = Discriminator(cartpole, (8,), airl=False)
    objective = AdversarialObjective(cartpole, actor, disc, "gail", absorbing, disc_steps=2, disc_batch=8)
    T, E, key = 3, 2, jax.random.PRNGKey(5)
    obs = jax.random.normal(key, (T, E, 4))
    terminated = jnp.zeros((T, E)).at[1, 0].set(1.0)
    traj = Transition(obs, jnp.ones((T, E), jnp.int32), jnp.zeros((T, E)), jnp.zeros((T, E)), jnp.zeros((T, E)),
                      terminated, terminated, jnp.zeros((T, E)), obs + 1)
    expert = Transitions(jax.random.normal(key, (6, 4)), jnp.zeros(6, jnp.int32), jnp.zeros((6, 4)),
                         jnp.zeros(6, bool).at[5].set(True), jnp.ones(6))
    normalizer = (jnp.zeros(4), jnp.ones(4))
    hyper = {"gamma": jnp.float32(GAMMA), "disc_lr": jnp.float32(1e-3), "grad_penalty": jnp.float32(0.0),
             "expert": expert, "normalizer": normalizer}
    state = objective.init(hyper, jax.random.PRNGKey(6))
    state, out, figures = objective.relabel(state, hyper, actor.init(key, obs[0]), traj, jax.random.PRNGKey(7))
    params = state["disc"]
    r = REWARDS["gail"](disc.g.apply(params["g"], disc.features(obs, normalizer), traj.action))
    x_abs = jnp.zeros((1, 5)).at[0, 4].set(1.0)
    r_abs = REWARDS["gail"](disc.g.apply(params["g"], x_abs, jnp.zeros(1, jnp.int32)))[0]
    bonus = GAMMA / (1 - GAMMA) * r_abs if absorbing else 0.0
    np.testing.assert_allclose(out.reward, r + terminated * bonus, rtol=1e-5)
    np.testing.assert_allclose(figures["absorbing_reward"], r_abs, rtol=1e-5)


@pytest.fixture(scope="module")
def gail_runs(cartpole_expert, tmp_path_factory):
    """A tiny `il gail --seeds 2` and the single run with seed 1 (member 1's)."""
    root = tmp_path_factory.mktemp("gail")
    both = il_json("gail", *TINY, "--expert", cartpole_expert, "--seeds", "2", "--run-dir", root / "seeds")
    one = il_json("gail", *TINY, "--expert", cartpole_expert, "--seed", "1", "--run-dir", root / "one")
    return root, both, one


def test_gail_reports_what_a_user_of_it_debugs_with(gail_runs):
    root, both, _ = gail_runs
    for member in both["members"]:
        assert member["initial"]["episodes"] == member["eval"]["episodes"] == 6  # the untrained policy, same keys
        assert member["random"]["return_mean"] > 0 and member["normalized_return"] is not None
        block = member["gail"]
        assert 0 <= block["disc_expert_accuracy"] <= 1 and 0 <= block["disc_learner_accuracy"] <= 1
        assert block["expert_queries"] == block["demos"] == 1000 and block["absorbing"] is True
        assert 0 <= block["tv_expert_states"] <= 1 and np.isfinite(block["absorbing_reward"])
    assert (root / "seeds" / "discriminator.png").stat().st_size > 10_000
    rows = Run(root / "seeds").metrics(member=0)
    assert [r["step"] for r in rows] == [2, 4] and "disc_learner_logit" in rows[-1]
    for member, row in zip(both["members"], (rows[-1], Run(root / "seeds").metrics(member=1)[-1])):  # per chunk too
        assert row["tv_expert_states"] == pytest.approx(member["gail"]["tv_expert_states"])
        assert row["return_gap"] == pytest.approx(member["return_gap"]) and row["expert_queries"] == 1000


def test_member_k_is_the_single_run_with_seed_s_plus_k(gail_runs):
    root, both, one = gail_runs
    assert both["members"][1]["eval"] == one["eval"]
    for name in ("disc_loss", "disc_expert_logit", "disc_reward_mean"):  # (float sums in another order: last bits)
        assert both["members"][1]["gail"][name] == pytest.approx(one["gail"][name], rel=1e-5)
    a, b = final_params(root / "seeds"), final_params(root / "one")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x[1], y[0], rtol=1e-4, atol=1e-6)


def test_resumed_after_its_first_checkpoint_it_ends_bit_for_bit(gail_runs, tmp_path):
    """The run as a kill after its first checkpoint leaves it, resumed: the same final policy
    and discriminator as the uninterrupted run."""
    root, _, one = gail_runs
    shutil.copytree(root / "one", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "4")
    (tmp_path / "cut" / "summary.json").unlink()
    resumed = il_json("gail", "--resume", tmp_path / "cut")
    assert resumed["eval"] == one["eval"]
    a, b = Run(tmp_path / "cut").restore_raw(), Run(root / "one").restore_raw()
    for x, y in zip(jax.tree.leaves((a["params"], a["objective"])), jax.tree.leaves((b["params"], b["objective"])),
                    strict=True):
        np.testing.assert_array_equal(x, y)
    assert [r["step"] for r in Run(tmp_path / "cut").metrics()] == [2, 4]


def test_airl_reward_is_re_optimised_by_il_expert_and_bad_inputs_are_one_line(cartpole_expert, tmp_path):
    airl = il_json("airl", *TINY, "--expert", cartpole_expert, "--run-dir", tmp_path / "airl")
    assert airl["airl"]["state_only"] is True and airl["airl"]["reward_transform"] == "logit"
    ppo = il_json("expert", "--reward", tmp_path / "airl", "--env-param", "length=0.7", "--total-timesteps", "4096",
                  "--eval-episodes", "6", "--run-dir", tmp_path / "ppo")  # AIRL's transfer: new dynamics
    assert ppo["reward"] == {"run": str(tmp_path / "airl"), "method": "airl",
                             "imitation_return": airl["eval"]["return_mean"]}
    assert ppo["expert"]["env_params"] == {"length": 0.7} and "reference_return" not in ppo["expert"]
    assert ppo["imitated"]["return_mean"] > 0 and ppo["normalized_return"] is not None
    assert "cached_as" not in ppo  # PPO on a learned reward never becomes the cached expert
    assert il_json("eval", tmp_path / "ppo")["eval"] == ppo["eval"]  # evaluated in the dynamics it trained in

    assert_one_error_line(*invoke(["expert", "--env-param", "lenght=0.7"]), "no numeric parameter 'lenght'",
                          "did you mean length")
    assert_one_error_line(*invoke(["expert", "--env-param", "length=0.7,0.8"]), "one value per parameter")

    assert_one_error_line(*invoke(["expert", "--env", "Acrobot", "--reward", tmp_path / "airl"]),
                          "ran on CartPole-v1, not Acrobot-v1")
    assert_one_error_line(*invoke(["expert", "--reward", cartpole_expert]), "is an il expert run, not a run of il airl")
    demos = tmp_path / "airl" / "data" / "demos.npz"
    assert_one_error_line(*invoke(["gail", "--env", "Acrobot", "--demos", demos]), "CartPole-v1")
    assert_one_error_line(*invoke(["airl", "--reward-transform", "softplus"]), "--reward-transform must be one of")
    with np.load(demos) as f:  # a schema 1 dataset: no episode boundaries
        arrays = {k: f[k] for k in ("obs", "actions", "episode_returns")}
        header = json.loads(f["header"].tobytes().decode())
    old = tmp_path / "schema1.npz"
    np.savez(old, **arrays, header=np.frombuffer(json.dumps({**header, "schema_version": 1}).encode(), np.uint8))
    assert_one_error_line(*invoke(["gail", *TINY, "--demos", old, "--run-dir", tmp_path / "old"]),
                          "no episode boundaries")
