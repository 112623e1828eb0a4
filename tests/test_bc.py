"""`il bc`, `il collect`, `il eval`, `il runs` end to end, as a user runs them."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import il_here, il_json


def test_bc_cartpole_reaches_expert_and_eval_reproduces(cartpole_expert, tmp_runs):
    summary = il_json("bc", "--env", "CartPole", "--seed", "0", "--expert", cartpole_expert)
    assert summary["eval"]["episodes"] == 100
    assert summary["eval"]["return_mean"] >= 475
    bc = summary["bc"]
    assert bc["action_accuracy"] > 0.9
    # ε of the greedy policy that is evaluated is its disagreement rate with the expert
    assert bc["tv_expert_states"] == pytest.approx(1 - bc["action_accuracy"], abs=1e-6)
    assert bc["holdout"] == {"episodes": 2, "transitions": 2 * 500}  # 10% of 20 whole episodes
    assert bc["demos"] == bc["expert_queries"] == 20 * 500
    expert = summary["expert"]  # paired: the expert on the learner's keys and episode count
    assert expert["paired"] and expert["episodes"] == 100
    assert summary["return_gap"] == expert["return_mean"] - summary["eval"]["return_mean"]
    run = Path(summary["run_dir"])
    for name in ("config.json", "metrics.jsonl", "summary.json", "data/demos.npz", "checkpoints"):
        assert (run / name).exists(), name
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4000 and rows[-1]["loss"] < rows[0]["loss"]

    again = il_json("eval", run)  # the run's own seed, episode count and policy: same number
    assert again["eval"] == summary["eval"]
    other = il_here("eval", run, "--seed", "5", "--episodes", "10")
    assert "episodes 10 (the run used 100)" in other.stdout and "seed 5 (the run used 0)" in other.stdout
    # the paired expert figure is the expert's own evaluation on the run's keys
    assert il_json("eval", expert["run"], "--seed", "0", "--episodes", "100")["eval"]["return_mean"] == \
        expert["return_mean"]

    listing = il_here("runs", tmp_runs).stdout
    assert run.name[:20] in listing and "bc" in listing


def test_collect_writes_dataset_and_bc_trains_on_it(cartpole_expert, tmp_runs):
    summary = il_json("collect", "--env", "CartPole-v1", "--episodes", "5", "--num-envs", "4",
                      "--expert", cartpole_expert)
    path = summary["dataset"]["path"]
    with np.load(path, allow_pickle=False) as f:
        header = json.loads(bytes(f["header"]).decode())
        assert f["obs"].shape == (header["count"], 4) and f["actions"].dtype == np.int32
        assert f["episode_lengths"].tolist() == [500] * 5
        assert f["terminated"].tolist() == [False] * 5 and f["final_obs"].shape == (5, 4)  # the time limit, each
        assert f["rewards"].sum() == f["episode_returns"].sum() == header["count"]
    assert header["schema_version"] == 3 and header["env_id"] == "CartPole-v1"
    assert header["episodes"] == 5 and header["source"] == cartpole_expert
    assert header["return_mean"] >= 475 and header["count"] == 5 * 500
    assert summary["collect"]["transitions_per_s"] > 0

    bc = il_json("bc", "--demos", path, "--num-steps", "500", "--eval-episodes", "8")
    assert bc["bc"]["demos"] == header["count"] and bc["bc"]["holdout"]["episodes"] == 1
    assert il_json("eval", bc["run_dir"])["eval"] == bc["eval"]  # 8 episodes, as the run did


@pytest.mark.slow  # test_sweep's member-k test covers it: same seed, same run; other seed, other run
def test_same_seed_same_result_other_seed_differs(cartpole_expert, tmp_runs):
    args = ("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "200",
            "--eval-episodes", "4")
    a, b = il_json(*args, "--seed", "3"), il_json(*args, "--seed", "3")
    c = il_json(*args, "--seed", "4")
    assert a["bc"]["train_loss"] == b["bc"]["train_loss"]
    assert a["bc"]["train_loss"] != c["bc"]["train_loss"]


def test_eval_expert_run(cartpole_expert):
    summary = il_json("eval", cartpole_expert, "--episodes", "20")
    assert summary["evaluated"] == "expert" and summary["eval"]["return_mean"] >= 475


@pytest.mark.slow  # continuous actions also in the default run: test_dagger's Pendulum buffer, test_losses' TV
def test_bc_pendulum_continuous_within_20_percent_of_expert(tmp_runs):
    summary = il_json("bc", "--env", "Pendulum", "--seed", "0")
    expert, learner = summary["expert"]["return_mean"], summary["eval"]["return_mean"]
    assert learner >= expert - 0.2 * abs(expert), (learner, expert)
    bc = summary["bc"]
    # greedy actions smoothed by the expert's noise: close to the expert on its states
    assert bc["action_mse"] < 0.01 and bc["tv_expert_states"] < 0.1 and bc["tv_learner_states"] < 0.2
    # the sampled policy is far narrower than the expert's Gaussian, which its TV shows
    assert bc["tv_expert_states_stochastic"] > 0.3


def test_eval_renders_a_gif(cartpole_expert, tmp_path):
    out = tmp_path / "episode.gif"
    summary = il_json("eval", cartpole_expert, "--episodes", "4", "--gif", out, "--gif-frames", "3")
    assert summary["gif"] == str(out)
    assert out.read_bytes()[:6] in (b"GIF87a", b"GIF89a")


def test_held_out_set_is_whole_episodes():
    from il_cli.holdout import split_rows

    lengths = np.array([3, 5, 2, 4, 6])
    episode_of_row = np.repeat(np.arange(5), lengths)
    train, held, n = split_rows(lengths, 0.4, jax.random.PRNGKey(0))
    assert n == 2 and len(train) + len(held) == 20 and not set(train) & set(held)
    held_episodes = set(episode_of_row[held])
    assert len(held_episodes) == 2 and not held_episodes & set(episode_of_row[train])
    assert len(held) == sum(lengths[e] for e in held_episodes)  # every row of each held episode
    assert split_rows(lengths, 0.01, jax.random.PRNGKey(0))[2] == 1  # at least one episode
    assert split_rows(np.array([7]), 0.5, jax.random.PRNGKey(0))[1] is None  # one episode: none
    assert split_rows(lengths, 0.0, jax.random.PRNGKey(0))[1] is None


def test_bc_with_nothing_to_hold_out_says_so(cartpole_expert, tmp_runs):
    summary = il_json("bc", "--expert", cartpole_expert, "--episodes", "1", "--num-steps", "100",
                      "--eval-episodes", "4")
    assert summary["bc"]["holdout"] == "none — measured on training data"


def test_sampled_policy_is_evaluated_and_its_tv_reported(cartpole_expert, tmp_runs):
    summary = il_json("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "300",
                      "--eval-episodes", "8", "--eval-policy", "sample")
    bc = summary["bc"]
    assert summary["eval"]["policy"] == "sample"
    assert bc["tv_expert_states"] == bc["tv_expert_states_stochastic"]  # 1 − π̂(a*|s)
    assert bc["tv_expert_states"] > 1 - bc["action_accuracy"]  # a softmax puts mass off a*
    assert il_json("eval", summary["run_dir"])["eval"] == summary["eval"]
    greedy = il_json("eval", summary["run_dir"], "--eval-policy", "mode")["eval"]
    assert greedy["policy"] == "mode"
