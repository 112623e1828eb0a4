"""DAgger: schedules, the mixture policy, noisy labels, budgets, end to end."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_user_error, il_here, il_json

from il_cli.algos.dagger import corrupt_labels, hyper_of, mix_actions
from il_cli.envs import make_env
from il_cli.errors import UserError
from il_cli.schedules import beta_schedule


def test_linear_schedule():
    np.testing.assert_allclose(beta_schedule("linear", 5), [1, 0.75, 0.5, 0.25, 0])
    assert beta_schedule("linear", None) == pytest.approx([1 - i / 9 for i in range(10)])


def test_exponential_schedule():
    assert beta_schedule("exponential", 4, beta_decay=0.5) == [1, 0.5, 0.25, 0.125]


def test_step_and_constant_schedules():
    assert beta_schedule("step", 3) == [1, 0, 0]
    assert beta_schedule("constant", 3, beta=0.3) == [0.3, 0.3, 0.3]


def test_explicit_schedule():
    assert beta_schedule("1,1,0.5,0.25,0", None) == [1, 1, 0.5, 0.25, 0]
    assert beta_schedule("1,0", 2) == [1, 0]


@pytest.mark.parametrize("schedule,rounds,message", [
    ("1,0.5", 3, "has 2 values but --rounds is 3"),
    ("1,1.5,0", None, "must be in [0, 1]"),
    ("1,-0.1", None, "must be in [0, 1]"),
    ("linera", 3, "did you mean linear"),
])
def test_bad_schedules(schedule, rounds, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        beta_schedule(schedule, rounds)


def test_bad_schedule_on_the_command_line():
    assert_user_error(il_here("dagger", "--beta-schedule", "1,0.5", "--rounds", "3"),
                      "2 values", "--rounds is 3")
    assert_user_error(il_here("dagger", "--beta-schedule", "1,2"), "[0, 1]")
    assert_user_error(il_here("dagger", "--steps-per-round", "100", "--num-envs", "8"),
                      "multiple of --num-envs")


@pytest.mark.parametrize("continuous", [False, True])
def test_mixture_policy(continuous):
    key = jax.random.PRNGKey(0)
    shape = (1000, 2) if continuous else (1000,)
    expert, learner = jnp.ones(shape), jnp.zeros(shape)
    actions, used = mix_actions(expert, learner, 1.0, key)
    assert bool(jnp.all(actions == expert)) and bool(used.all())  # β = 1: every action the expert's
    actions, used = mix_actions(expert, learner, 0.0, key)
    assert bool(jnp.all(actions == learner)) and not bool(used.any())  # β = 0: none
    actions, used = mix_actions(expert, learner, 0.3, key)
    assert 0.25 < float(used.mean()) < 0.35
    assert bool(jnp.all(actions.reshape(1000, -1)[:, 0] == used))


def test_label_noise():
    _, _, spec = make_env("CartPole-v1")
    labels = jnp.zeros(10_000, jnp.int32)
    assert bool(jnp.all(corrupt_labels(spec, labels, 0.0, jax.random.PRNGKey(0)) == labels))
    noisy = corrupt_labels(spec, labels, 0.4, jax.random.PRNGKey(0))
    assert 0.17 < float(jnp.mean(noisy != labels)) < 0.23  # 40% random, half of them land on 1
    _, _, pendulum = make_env("Pendulum-v1")
    noisy = corrupt_labels(pendulum, jnp.zeros((10_000, 1)), 0.1, jax.random.PRNGKey(0))
    assert float(jnp.std(noisy)) == pytest.approx(0.1, rel=0.05)


def test_dagger_cartpole_linear_reaches_expert_and_eval_reproduces(cartpole_expert, tmp_runs):
    summary = il_json("dagger", "--env", "CartPole", "--beta-schedule", "linear", "--rounds", "10",
                      "--steps-per-round", "2000", "--expert", cartpole_expert)
    assert summary["eval"]["return_mean"] >= 475 and summary["eval"]["episodes"] == 100
    d = summary["dagger"]
    assert d["expert_queries"] == 10 * 2000 == d["dataset_size"]
    assert 0.45 * 20000 < d["expert_steps"] < 0.55 * 20000  # Σβ_i·m = 5·2000 in expectation
    assert d["tv_learner_states"] < 0.1 and d["tv_expert_states"] < 0.1
    assert summary["expert"]["paired"] and summary["expert"]["episodes"] == 100
    from pathlib import Path

    from il_cli.runs import Run

    rows = Run(Path(summary["run_dir"])).metrics()
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert [r["beta"] for r in rows] == pytest.approx([1 - i / 9 for i in range(10)])
    assert rows[-1]["return"] == summary["eval"]["return_mean"]
    assert il_json("eval", summary["run_dir"])["eval"] == summary["eval"]


def test_budget_smaller_than_a_round_stops_every_expert_call(cartpole_expert, tmp_runs):
    summary = il_json("dagger", "--expert", cartpole_expert, "--rounds", "3", "--steps-per-round", "400",
                      "--expert-budget", "300", "--beta-schedule", "constant", "--beta", "1",
                      "--train-steps", "50", "--eval-episodes", "5")
    d = summary["dagger"]
    assert d["expert_queries"] == 300 == d["dataset_size"]
    assert d["betas_effective"] == [0.75, 0.0, 0.0]  # β = 1 for the 300 asked states of 400
    assert d["expert_steps"] == 300  # β = 1: the expert acted in exactly the states it was asked
    rows = [json.loads(r) for r in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [r["expert_steps"] for r in rows] == [300, 300, 300]
    assert [r["expert_queries"] for r in rows] == [300, 300, 300]


def test_budget_counts_demonstrations(cartpole_expert, tmp_runs):
    summary = il_json("dagger", "--expert", cartpole_expert, "--rounds", "3", "--steps-per-round", "400",
                      "--expert-budget", "600", "--episodes", "1", "--beta-schedule", "exponential",
                      "--train-steps", "50", "--eval-episodes", "5")
    d = summary["dagger"]
    assert d["demo_labels"] == 500 and d["expert_queries"] == 600 == d["dataset_size"]
    assert d["betas"] == [1, 0.5, 0.25] and d["betas_effective"] == [0.25, 0.0, 0.0]


@pytest.fixture(scope="module")
def tiny_dagger(cartpole_expert):
    """A tiny DAgger program on CartPole with the session's expert, built from the library."""
    from il_cli import networks
    from il_cli.algos.dagger import make_dagger
    from il_cli.config import DAggerConfig
    from il_cli.evaluation import load_policy
    from il_cli.runs import Run

    spec, expert, expert_params = load_policy(Run(cartpole_expert))
    env, env_params, _ = make_env("CartPole-v1")
    learner = networks.make_actor(spec, (16,))

    def build(**overrides):
        cfg = DAggerConfig(**{"num_rounds": 2, "steps_per_round": 400, "train_steps": 20,
                              "eval_episodes": 2, "hidden": (16,), **overrides})
        init, rounds = make_dagger(cfg, env, env_params, spec, learner, expert, 0)
        state = init(jax.random.PRNGKey(0), jnp.zeros((0, 4)), jnp.zeros((0,), jnp.int32), 0, cfg.lr)
        return cfg, state, jax.jit(rounds, static_argnums=4)

    return build, spec, expert, expert_params


def test_rows_past_the_budget_never_reach_a_minibatch(tiny_dagger):
    build, _, _, expert_params = tiny_dagger
    cfg, state, rounds = build(expert_budget=250)
    poison = jnp.full_like(state.buffer_obs, jnp.nan)  # any poisoned row in a minibatch → NaN loss
    state, metrics = rounds(state.replace(buffer_obs=poison), hyper_of(cfg),
                            expert_params, jax.random.PRNGKey(1), 2)
    assert int(state.size) == 250 and int(state.queries) == 250
    assert bool(jnp.isfinite(metrics["loss"]).all())
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state.learner.params))
    assert bool(jnp.isnan(state.buffer_obs[250:]).all())  # nothing past the budget was written
    assert not bool(jnp.isnan(state.buffer_obs[:250]).any())


def test_stored_labels_are_the_noisy_supervisors(tiny_dagger):
    """--label-noise p: a fraction p(A−1)/A of stored labels differ from the expert's action."""
    from il_cli.rollout import expert_action

    build, spec, expert, expert_params = tiny_dagger
    cfg, state, rounds = build(label_noise=0.4, num_rounds=2, steps_per_round=2000)
    state, _ = rounds(state, hyper_of(cfg), expert_params, jax.random.PRNGKey(1), 2)
    obs, labels = state.buffer_obs[: int(state.size)], state.buffer_actions[: int(state.size)]
    flipped = float(jnp.mean(labels != expert_action(spec, expert, expert_params, obs)[0]))
    assert flipped == pytest.approx(0.4 * (2 - 1) / 2, abs=0.025)


def test_retrain_from_scratch_forgets_the_previous_learner(tiny_dagger):
    """With β = 1 the learner never acts, so D does not depend on it: after a round, a
    refit-from-scratch learner is the same whatever it was before; a warm start is not."""
    build, _, _, expert_params = tiny_dagger
    for scratch in (False, True):
        cfg, state, rounds = build(retrain_from_scratch=scratch, beta_schedule="constant", beta=1.0)
        hyper, key = hyper_of(cfg), jax.random.PRNGKey(1)
        state, _ = rounds(state, hyper, expert_params, key, 1)
        other = state.replace(learner=state.learner.replace(
            params=jax.tree.map(lambda p: p + 0.5, state.learner.params)))
        a, _ = rounds(state, hyper, expert_params, key, 1)
        b, _ = rounds(other, hyper, expert_params, key, 1)
        np.testing.assert_array_equal(a.buffer_actions, b.buffer_actions)  # the same D
        same = all(bool(jnp.array_equal(x, y)) for x, y in
                   zip(jax.tree.leaves(a.learner.params), jax.tree.leaves(b.learner.params)))
        assert same == scratch


def test_dagger_continuous_buffer_holds_executed_expert_actions(tmp_runs):
    """MountainCarContinuous (its expert written down: force clip(20v), a mean that reaches
    ±1.2), D seeded with demos: every label in D is the expert's clipped mode action."""
    from il_cli.evaluation import load_policy
    from il_cli.rollout import expert_action
    from il_cli.runs import Run

    expert = il_json("expert", "--recipe", "mountaincarcontinuous", "--eval-episodes", "4")["run_dir"]
    summary = il_json("dagger", "--env", "MountainCarContinuous", "--expert", expert, "--episodes", "1", "--rounds",
                      "2", "--steps-per-round", "400", "--train-steps", "50", "--eval-episodes", "4")
    d = summary["dagger"]
    size = d["demo_labels"] + 800
    assert 0 < d["demo_labels"] <= 999 and d["dataset_size"] == size
    run = Run(summary["run_dir"])
    state = run.restore_raw()  # member 0 of the leading member axis
    spec, expert, expert_params = load_policy(Run(summary["expert"]["run"]))
    obs, labels = state["buffer_obs"][0, :size], state["buffer_actions"][0, :size]
    expected = expert_action(spec, expert, expert_params, jnp.asarray(obs))[0]
    np.testing.assert_allclose(labels, expected, atol=1e-5)  # demos and queries: one convention
    mean = expert.apply(expert_params, jnp.asarray(obs))[:, 0]
    assert np.abs(mean).max() > 1 and np.abs(labels).max() == 1.0  # clipped, and used
