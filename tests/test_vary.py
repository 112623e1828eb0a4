"""`il eval --vary`: a grid of environment parameters, one program per run, the same keys."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_user_error, il_here, il_json

from il_cli.envs import DERIVED, make_env
from il_cli.jobs.vary import grid_points


def test_cartpole_derived_fields_follow_the_varied_ones():
    _, params, _ = make_env("CartPole-v1")
    varied = DERIVED["CartPole-v1"](params.replace(masspole=0.4, length=1.0, masscart=2.0))
    assert np.isclose(varied.total_mass, 2.4) and np.isclose(varied.polemass_length, 0.4)
    assert [p for p in grid_points((("a", (1.0, 2.0)), ("b", (3.0, 4.0))))] == [
        {"a": 1.0, "b": 3.0}, {"a": 1.0, "b": 4.0}, {"a": 2.0, "b": 3.0}, {"a": 2.0, "b": 4.0}]


def test_vary_over_runs_and_members_equals_plain_eval_at_the_training_value(cartpole_expert, tmp_runs, tmp_path):
    bc = il_json("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "300", "--seeds", "2",
                 "--eval-episodes", "20")["run_dir"]
    summary = il_json("eval", bc, cartpole_expert, "--vary", "length=0.5,2.0", "--episodes", "20",
                      "--out", tmp_path / "out")
    bc_result, expert_result = summary["results"]
    assert [p["point"] for p in bc_result["grid"]] == [{"length": 0.5}, {"length": 2.0}]
    plain = il_json("eval", bc, "--episodes", "20")
    # at the training value, each member's mean return is plain `il eval`'s, on the same keys
    assert bc_result["grid"][0]["members"] == [m["eval"]["return_mean"] for m in plain["members"]]
    expert_plain = il_json("eval", cartpole_expert, "--episodes", "20", "--seed", "0")["eval"]["return_mean"]
    assert expert_result["grid"][0]["members"] == [expert_plain]
    assert Path(summary["plot"]).is_file() and json.loads(Path(summary["json"]).read_text())["vary"] == {
        "length": [0.5, 2.0]}
    grid2 = il_json("eval", cartpole_expert, "--vary", "masspole=0.1,0.4", "--vary", "length=0.5:1:3",
                    "--episodes", "8", "--out", tmp_path / "out2")
    assert len(grid2["results"][0]["grid"]) == 6 and Path(grid2["plot"]).is_file()


def test_bad_vary(cartpole_expert):
    assert_user_error(il_here("eval", cartpole_expert, "--vary", "lenght=1,2"),
                      "no numeric parameter 'lenght'", "did you mean length", "masspole=0.1")
    assert_user_error(il_here("eval", cartpole_expert, "--vary", "total_mass=1,2"), "derived")
    assert_user_error(il_here("eval", cartpole_expert, "--vary", "length=a,b"), "NAME=lo:hi:n")
    assert_user_error(il_here("eval", cartpole_expert, cartpole_expert), "--vary")


@pytest.mark.slow  # run_vary is covered above; this adds the thin call after training
def test_bc_vary_eval_at_the_end_of_training(cartpole_expert, tmp_runs):
    summary = il_json("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "300",
                      "--eval-episodes", "20", "--vary-eval", "length=0.5,0.7")
    grid = summary["vary_eval"]["grid"]
    assert [p["point"] for p in grid] == [{"length": 0.5}, {"length": 0.7}]
    assert grid[0]["mean"] == summary["eval"]["return_mean"] and Path(summary["vary_eval"]["plot"]).is_file()
    assert_user_error(il_here("dagger", "--vary-eval", "lenth=1"), "did you mean length")
