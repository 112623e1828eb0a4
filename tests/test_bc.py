"""`il bc`, `il collect`, `il eval`, `il runs` end to end, as a user runs them."""

import json
from pathlib import Path

import numpy as np

from conftest import il, il_json


def test_bc_cartpole_reaches_expert_and_eval_reproduces(cartpole_expert, tmp_runs):
    summary = il_json("bc", "--env", "CartPole", "--seed", "0", "--expert", cartpole_expert)
    assert summary["eval"]["episodes"] == 100
    assert summary["eval"]["return_mean"] >= 475
    bc = summary["bc"]
    assert bc["action_accuracy"] > 0.9 and bc["tv_expert_states"] < 0.1
    assert bc["demos"] == 20 * 500
    run = Path(summary["run_dir"])
    for name in ("config.json", "metrics.jsonl", "summary.json", "data/demos.npz", "checkpoints"):
        assert (run / name).exists(), name
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4000 and rows[-1]["loss"] < rows[0]["loss"]

    again = il_json("eval", run)  # same seed, same number
    assert again["eval"] == summary["eval"]
    other = il_json("eval", run, "--seed", "5", "--episodes", "10")
    assert other["eval"]["episodes"] == 10

    listing = il("runs", tmp_runs).stdout
    assert run.name[:20] in listing and "bc" in listing


def test_collect_writes_dataset_and_bc_trains_on_it(cartpole_expert, tmp_runs):
    summary = il_json("collect", "--env", "CartPole-v1", "--episodes", "5", "--num-envs", "4",
                      "--expert", cartpole_expert)
    path = summary["dataset"]["path"]
    with np.load(path, allow_pickle=False) as f:
        header = json.loads(bytes(f["header"]).decode())
        assert f["obs"].shape == (header["count"], 4) and f["actions"].dtype == np.int32
    assert header["schema_version"] == 1 and header["env_id"] == "CartPole-v1"
    assert header["episodes"] == 5 and header["source"] == cartpole_expert
    assert header["return_mean"] >= 475 and header["count"] == 5 * 500
    assert summary["collect"]["transitions_per_s"] > 0

    bc = il_json("bc", "--demos", path, "--num-steps", "500", "--eval-episodes", "8")
    assert bc["bc"]["demos"] == header["count"] and bc["eval"]["episodes"] == 8


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


def test_bc_pendulum_continuous_within_20_percent_of_expert(tmp_runs):
    summary = il_json("bc", "--env", "Pendulum", "--seed", "0")
    expert, learner = summary["expert"]["return_mean"], summary["eval"]["return_mean"]
    assert learner >= expert - 0.2 * abs(expert), (learner, expert)
    assert "action_mse" in summary["bc"] and 0 <= summary["bc"]["tv_expert_states"] <= 1


def test_eval_renders_a_gif(cartpole_expert, tmp_path):
    out = tmp_path / "episode.gif"
    summary = il_json("eval", cartpole_expert, "--episodes", "4", "--gif", out, "--gif-frames", "3")
    assert summary["gif"] == str(out)
    assert out.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
