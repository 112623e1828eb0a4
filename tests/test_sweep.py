"""Seeds and sweeps: members of one vmapped program, their aggregates, devices."""

import json

import jax
import numpy as np
import pytest
from helpers import TINY, assert_user_error, il, il_here, il_json, interrupt_after_first_checkpoint

from il_cli.config import BCConfig, DAggerConfig
from il_cli.errors import UserError
from il_cli.sweep import aggregate, bootstrap_ci, iqm, members, parse_sweep, programs, spec


def test_members_are_grid_cells_times_seeds():
    grid = parse_sweep(["lr=1e-3,3e-4", "label_noise=0,0.1"], DAggerConfig)
    assert grid == (("lr", (1e-3, 3e-4)), ("label_noise", (0.0, 0.1)))
    ms = members(5, 3, grid)
    assert len(ms) == 12 and [m["member"] for m in ms] == list(range(12))
    assert [m["seed"] for m in ms[:3]] == [5, 6, 7] and ms[3]["hyper"] == {"lr": 1e-3, "label_noise": 0.1}
    assert members(5, 3, ()) == [{"member": k, "seed": 5 + k, "cell": 0, "hyper": {}} for k in range(3)]


def test_shape_keys_vary_slowest_and_name_their_programs():
    grid = parse_sweep(["lr=1e-3,3e-4", "hidden=8,16x16", "num_steps=100"], BCConfig)
    assert grid == (("hidden", ((8,), (16, 16))), ("num_steps", (100,)), ("lr", (1e-3, 3e-4)))
    assert [p["dir"] for p in programs(grid)] == ["cells/hidden=8,num_steps=100", "cells/hidden=16x16,num_steps=100"]
    assert programs(grid[2:]) == []  # floats only: one program, the run itself
    ms = members(0, 2, grid)  # each program's members are a contiguous block
    assert [m["hyper"]["hidden"] for m in ms] == [(8,)] * 4 + [(16, 16)] * 4
    assert parse_sweep([spec(*item) for item in grid], BCConfig) == grid  # config.json round trip


@pytest.mark.parametrize("spec_,message", [
    ("hidden=32,6y4", "64x64"), ("num_steps=1.5", "whole number"), ("lrr=1e-3", "did you mean lr"),
    ("eval_policy=mode,sample", "a choice"), ("lr=fast", "must be numbers"), ("lr", "key=v1,v2")])
def test_bad_sweeps(spec_, message):
    with pytest.raises(UserError, match=message):
        parse_sweep([spec_], BCConfig)


def test_bad_sweep_on_the_command_line():
    assert_user_error(il_here("bc", "--sweep", "eval_policy=mode,sample"), "il bc sweeps lr")
    assert_user_error(il_here("compounding", "--sweep", "hidden=8,16"), "il compounding sweeps lr")
    assert_user_error(il_here("bc", "--sweep", "hidden=8,16", "--vary-eval", "gravity=9,10"),
                      "each program's run")
    assert_user_error(il_here("bc", "--sweep", "batch_size=0,8"), "--batch-size must be positive")
    assert_user_error(il_here("dagger", "--sweep", "label_noise=0,2"), "[0, 1]")
    assert_user_error(il_here("bc", "--sweep", "lr=1e-3", "--sweep", "lr=2e-3"), "twice")
    assert_user_error(il_here("bc", "--seeds", "0"), "--seeds must be positive")


def test_iqm_and_bootstrap_ci_by_hand():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert bootstrap_ci([2.0] * 5) == [2.0, 2.0]
    lo, hi = bootstrap_ci(np.arange(20.0))
    assert lo < iqm(np.arange(20.0)) < hi and 0 <= lo and hi <= 19
    agg = aggregate([1.0, 2.0, 3.0, 4.0])
    assert agg["mean"] == 2.5 and agg["iqm"] == 2.5 and agg["n"] == 4


@pytest.mark.parametrize("command", ["bc", "dagger", "expert", "prefs"])
def test_member_k_is_the_run_with_seed_s_plus_k(command, cartpole_expert, tmp_runs):
    """The same keys, the same loss curve and the same parameters to float tolerance. (Not bit
    for bit: a vmapped program orders some float sums differently, and with one CartPole
    expert a DAgger member's evaluation differed from its single run's by one flipped action,
    at il's own compiler flags as at the tests'.)"""
    from il_cli.evaluation import load_policy
    from il_cli.runs import Run

    args = TINY[command] + (() if command == "expert" else ("--expert", cartpole_expert))
    sweep, one = il_json(*args, "--seed", "3", "--seeds", "2"), il_json(*args, "--seed", "4")
    assert sweep["members"][1]["seed"] == 4
    a, b, other = [jax.tree.leaves(load_policy(Run(r["run_dir"]), **k)[2])
                   for r, k in ((sweep, {"member": 1}), (one, {}), (sweep, {"member": 0}))]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert not all(np.allclose(x, y) for x, y in zip(a, other))  # member 0, seed 3: another run
    curve = Run(sweep["run_dir"]).metrics(member=1)
    single = Run(one["run_dir"]).metrics()
    assert [r["step"] for r in curve] == [r["step"] for r in single]
    losses = [key for key in single[0] if "loss" in key]
    assert losses
    for r, s in zip(curve, single):
        for key in losses:  # (counted figures such as ε, a fraction of states, step by a state's flip)
            assert r[key] == pytest.approx(s[key], rel=1e-4, abs=1e-6), (r["step"], key)


@pytest.mark.slow  # the shape sweep's test covers a float grid's members, cells, eval and --member
def test_sweep_run_directory_and_eval(cartpole_expert, tmp_runs):
    summary = il_json(*TINY["bc"], "--expert", cartpole_expert, "--seeds", "2", "--sweep", "lr=1e-3,1e-2")
    assert [m["hyper"]["lr"] for m in summary["members"]] == [1e-3, 1e-3, 1e-2, 1e-2]
    assert [c["hyper"] for c in summary["cells"]] == [{"lr": 1e-3}, {"lr": 1e-2}]
    cell = summary["cells"][1]
    returns = [m["eval"]["return_mean"] for m in summary["members"][2:]]
    assert cell["return"]["mean"] == pytest.approx(np.mean(returns)) and cell["return"]["n"] == 2
    assert cell["return"]["ci95"][0] <= cell["return"]["iqm"] <= cell["return"]["ci95"][1]
    rows = [json.loads(r) for r in open(f"{summary['run_dir']}/metrics.jsonl")]
    assert {(r["member"], r["seed"], r["lr"]) for r in rows} == {
        (0, 0, 1e-3), (1, 1, 1e-3), (2, 0, 1e-2), (3, 1, 1e-2)}
    config = json.load(open(f"{summary['run_dir']}/config.json"))
    assert config["config"]["sweep"] == [["lr", [1e-3, 1e-2]]] and len(config["members"]) == 4
    again = il_json("eval", summary["run_dir"])
    assert [m["eval"] for m in again["members"]] == [m["eval"] for m in summary["members"]]
    assert il_json("eval", summary["run_dir"], "--member", "2")["eval"] == summary["members"][2]["eval"]
    assert_user_error(il_here("eval", summary["run_dir"], "--member", "4"), "members 0 to 3")


def test_a_float_sweep_compiles_the_programs_of_one_run(cartpole_expert, tmp_runs):
    no_cache = {"IL_COMPILE_CACHE": "0"}
    args = TINY["dagger"] + ("--expert", cartpole_expert, "--json")
    grid = json.loads(il(*args, "--seeds", "2", "--sweep", "lr=1e-3,3e-3", "--sweep", "label_noise=0,0.2",
                         "--sweep", "beta_decay=0.5,0.9", "--beta-schedule", "exponential", env=no_cache).stdout)
    assert len(grid["members"]) == 16
    for program in ("jit(init)", "jit(<lambda>)", "jit(episodes)", "jit(paired)"):  # init, rounds, evals
        assert grid["compile"]["programs"][program] == 1  # as in a run of one member


@pytest.mark.slow  # the member mesh over several devices: test_distributed's two processes in the default run
def test_four_devices_give_the_members_of_one_device(cartpole_expert, tmp_runs):
    args = TINY["dagger"] + ("--expert", cartpole_expert, "--seeds", "4", "--json")
    runs = {}
    for devices in (1, 4):
        flags = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        runs[devices] = json.loads(il(*args, env=flags).stdout)
        assert runs[devices]["device"].startswith(f"cpu ×{devices}")
    for a, b in zip(runs[1]["members"], runs[4]["members"], strict=True):
        assert a["eval"] == b["eval"]
        assert a["dagger"]["train_loss"] == pytest.approx(b["dagger"]["train_loss"], rel=1e-5)
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    assert_user_error(il(*TINY["bc"], "--seeds", "3", env=flags, check=False), "divide evenly over 4 devices")


def test_a_shape_sweep_runs_a_program_per_value_in_one_run(cartpole_expert, tmp_runs, tmp_path):
    """--sweep hidden=8,16x16: two programs, one after another, each a run in RUN/cells/, the
    float sweep and seeds vmapped inside each. Ctrl-C in the second, then --resume: member 7
    (in the resumed program) equals the single run with its seed and cell; il eval, il plot
    and il runs --group read the parent."""
    from il_cli.runs import Run

    run_dir = tmp_runs / "grid"
    args = (*TINY["bc"], "--num-steps", "1600", "--expert", cartpole_expert, "--seeds", "2",
            "--sweep", "lr=1e-3,3e-3", "--sweep", "hidden=8,16x16")
    code, err = interrupt_after_first_checkpoint(args, run_dir, watch="cells/hidden=16x16/checkpoints")
    assert code == 130 and f"il bc --resume {run_dir}" in err, err
    assert (run_dir / "cells" / "hidden=8" / "summary.json").is_file() and Run(run_dir).summary is None
    grid = il_json("bc", "--resume", run_dir)
    one = il_json(*TINY["bc"], "--num-steps", "1600", "--expert", cartpole_expert, "--seed", "1",
                  "--lr", "3e-3", "--hidden", "16,16")
    assert one["eval"] == grid["members"][7]["eval"]
    assert [(m["member"], m["seed"], m["hyper"]) for m in grid["members"]] == [
        (k, k % 2, {"hidden": [8] if k < 4 else [16, 16], "lr": 1e-3 if k % 4 < 2 else 3e-3}) for k in range(8)]
    assert [c["hyper"] for c in grid["cells"]] == [{"hidden": h, "lr": lr} for h in ([8], [16, 16])
                                                   for lr in (1e-3, 3e-3)]
    assert [p["run_dir"] for p in grid["programs"]] == [str(run_dir / "cells" / d) for d in ("hidden=8", "hidden=16x16")]
    steps = [r["step"] for r in Run(run_dir).metrics(member=7)]
    assert steps == sorted(set(steps)) and len(Run(run_dir).metrics()) == 8 * len(steps)
    again = il_json("eval", run_dir)
    assert [m["eval"] for m in again["members"]] == [m["eval"] for m in grid["members"]]
    assert il_json("eval", run_dir, "--member", "6")["eval"] == grid["members"][6]["eval"]
    rows = json.loads(il_here("runs", "--group", "--json").stdout)["groups"]
    cells = {r["cell"]: r for r in rows if str(run_dir) in r["runs"]}
    assert set(cells) == {"hidden=8, lr=0.001", "hidden=8, lr=0.003", "hidden=16x16, lr=0.001",
                          "hidden=16x16, lr=0.003"}
    assert len(cells["hidden=16x16, lr=0.003"]["runs"]) == 2  # the single run with that config is pooled in
    assert il_here("plot", run_dir, "--out", tmp_path / "p.png").returncode == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert_user_error(il_here("eval", run_dir, "--member", "8"), "members 0 to 7")
    with pytest.raises(UserError, match="one program per value, each a run of its own"):
        Run(run_dir).restore_raw()  # what --expert, --sft and --vary read
