"""DAgger: schedules, the mixture policy, noisy labels, budgets, end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import il, il_json
from il_cli.algos.dagger import corrupt_labels, mix_actions
from il_cli.envs import make_env
from il_cli.errors import UserError
from il_cli.schedules import beta_schedule
from test_errors import assert_user_error


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
    assert_user_error(il("dagger", "--beta-schedule", "1,0.5", "--rounds", "3", check=False),
                      "2 values", "--rounds is 3")
    assert_user_error(il("dagger", "--beta-schedule", "1,2", check=False), "[0, 1]")
    assert_user_error(il("dagger", "--steps-per-round", "100", "--num-envs", "8", check=False),
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
    assert 0.3 * 20000 < d["expert_steps"] < 0.7 * 20000  # Σβ_i·m = 5·2000 in expectation
    assert 0 <= d["tv_learner_states"] < 0.1 and 0 <= d["tv_expert_states"] < 0.1
    from pathlib import Path
    from il_cli.runs import Run

    rows = Run(Path(summary["run_dir"])).metrics()
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert [r["beta"] for r in rows] == pytest.approx([1 - i / 9 for i in range(10)])
    assert rows[-1]["return"] == summary["eval"]["return_mean"]
    assert il_json("eval", summary["run_dir"])["eval"] == summary["eval"]


def test_expert_budget_and_demos_and_noise(cartpole_expert, tmp_runs):
    summary = il_json("dagger", "--expert", cartpole_expert, "--rounds", "3", "--steps-per-round", "400",
                      "--expert-budget", "600", "--episodes", "1", "--label-noise", "0.2",
                      "--beta-schedule", "exponential", "--train-steps", "50", "--eval-episodes", "5")
    d = summary["dagger"]
    assert d["demo_labels"] == 500 and d["expert_queries"] == 600
    assert d["dataset_size"] == 1100 and d["labels_total"] == 1100
    assert d["betas"] == [1, 0.5, 0.25]
