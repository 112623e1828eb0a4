"""What a cluster user relies on: array scripts, exit codes, a shared expert cache, plots."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_user_error, il, il_here, il_json

SCRIPTS = Path(__file__).resolve().parent.parent / "recipes" / "cluster"


def script(name, *args, **variables):
    env = {**os.environ, "IL_DRY_RUN": "1", "IL_RUNS_DIR": "runs", **variables}
    return subprocess.run(["bash", SCRIPTS / name, *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("task,env,seed", [(0, "CartPole", 0), (3, "CartPole", 24), (5, "Acrobot", 8),
                                           (11, "Pendulum", 24)])
def test_slurm_array_task_chooses_env_and_seed_block(task, env, seed):
    proc = script("slurm_array.sh", "--sweep", "lr=1e-3,3e-4", SLURM_ARRAY_TASK_ID=str(task),
                  SLURM_ARRAY_JOB_ID="77")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "il", "bc", "--env", env, "--seed", str(seed), "--seeds", "8", "--run-dir",
        f"runs/bc-{env}-job77-seeds{seed}-{seed + 7}", "--sweep", "lr=1e-3,3e-4"]


def test_slurm_array_resumes_a_requeued_task_and_refuses_a_task_past_the_grid(tmp_path):
    run_dir = tmp_path / "bc-Acrobot-job77-seeds0-7"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    proc = script("slurm_array.sh", SLURM_ARRAY_TASK_ID="4", SLURM_ARRAY_JOB_ID="77",
                  IL_RUNS_DIR=str(tmp_path))
    assert proc.stdout.split() == ["il", "bc", "--resume", str(run_dir)]
    proc = script("slurm_array.sh", SLURM_ARRAY_TASK_ID="12", ENVS="CartPole Acrobot Pendulum")
    assert proc.returncode == 2 and "--array=0-11" in proc.stderr
    assert script("slurm_array.sh").returncode != 0  # not an array task


def test_sweep_script_runs_every_env_and_stops_on_a_user_error(tmp_runs):
    proc = script("sweep.sh", "--sweep", "lr=1e-3,3e-4", ENVS="CartPole Pendulum", SEEDS="4",
                  COMMAND="dagger")
    assert [line.split()[:7] for line in proc.stdout.splitlines()] == [
        ["il", "dagger", "--env", e, "--seeds", "4", "--name"] for e in ("CartPole", "Pendulum")]
    env = {**os.environ, "ENVS": "CartPole Pendulum"}
    proc = subprocess.run(["bash", SCRIPTS / "sweep.sh", "--sweep", "hidden=64,a"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.count("error: ") == 1  # stopped at the first env


def test_sigterm_keeps_the_checkpoint_and_exits_143(cartpole_expert, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "il_cli", "bc", "--expert", cartpole_expert,
                             "--episodes", "2", "--num-steps", "16000", "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    ckpt = run_dir / "checkpoints"  # a finished checkpoint: Orbax renames its step directory into place whole
    while time.time() < deadline and not (ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"terminated: the last checkpoint is kept; continue with `il bc --resume {run_dir}`" in err
    assert "Traceback" not in err
    summary = json.loads(il("bc", "--resume", run_dir, "--json").stdout)
    assert summary["bc"]["steps"] == 16000


def test_a_process_waits_for_the_expert_another_is_training(cartpole_expert, tmp_path):
    """Processes that start at once on an empty cache train the expert once: while one holds
    the cache's lock, another waits, then uses the expert the first one cached."""
    from filelock import FileLock

    experts = tmp_path / "cache" / "experts"
    experts.mkdir(parents=True)
    env = {**os.environ, "IL_CACHE_DIR": str(tmp_path / "cache"), "IL_RUNS_DIR": str(tmp_path / "runs")}
    lock = FileLock(str(experts / ".CartPole-v1.lock"))
    lock.acquire()  # as the first process does while it trains
    proc = subprocess.Popen([sys.executable, "-m", "il_cli", "bc", "--episodes", "1", "--num-steps", "50",
                             "--eval-episodes", "2", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/config.json")):
        time.sleep(0.1)  # the run is made before its demonstrations need the expert
    time.sleep(2)
    assert proc.poll() is None  # still waiting
    shutil.copytree(cartpole_expert, experts / "CartPole-v1")  # the first process's expert lands
    lock.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "waiting for another process to train the CartPole-v1 expert" in err
    assert "no cached expert" not in err  # it did not train a second one
    assert json.loads(out)["expert"]["run"] == str(experts / "CartPole-v1")


def test_plot_draws_one_band_per_cell_and_runs_group_pools_seed_blocks(cartpole_expert, tmp_runs, tmp_path):
    args = ("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "200", "--eval-episodes",
            "4", "--sweep", "lr=1e-3,1e-2", "--seeds", "2")
    first, second = il_json(*args), il_json(*args, "--seed", "2")
    assert Path(first["curves"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "plot.png"
    proc = il_here("plot", first["run_dir"], second["run_dir"], "--metric", "loss", "--out", out)
    assert proc.stdout.strip() == str(out) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from il_cli.plots import curves
    from il_cli.runs import Run

    lines = curves(Run(first["run_dir"]), "return", "step")
    assert [line["seeds"] for line in lines] == [2, 2] and len(lines[0]["x"]) == 8
    assert all((line["low"] <= line["mean"]).all() and (line["mean"] <= line["high"]).all() for line in lines)
    assert_user_error(il_here("plot", first["run_dir"], "--metric", "retrun"), "did you mean return")

    shutil.copytree(first["run_dir"], tmp_runs / "the-first-run-again")  # seeds 0 and 1 once more
    groups = json.loads(il_here("runs", tmp_runs, "--group", "--json").stdout)["groups"]
    assert [(g["cell"], g["return"]["n"], g["repeats"]) for g in groups] == [("lr=0.001", 4, 2), ("lr=0.01", 4, 2)]
    assert groups[0]["seeds"] == [0, 1, 2, 3]
    pooled = [m["eval"]["return_mean"] for s in (first, second) for m in s["members"][:2]]
    assert groups[0]["return"]["mean"] == pytest.approx(sum(pooled) / 4)
    table = il_here("runs", tmp_runs, "--group").stdout
    assert "IQM" in table and "4 members with a seed already counted left out" in table


def test_plots_say_what_they_show():
    """Titles name the run, the x-axis says what a step counts, returns are read against the
    summary's references, a flat curve is not blown up, and Gao's curve is fitted only where
    it describes over-optimisation."""
    import matplotlib

    matplotlib.use("Agg")
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    from il_cli.plots import over_optimisation_fit, readable_limits, references, step_unit

    run_of = lambda command, **config: SimpleNamespace(meta={"command": command, "config": config})
    assert step_unit(run_of("dagger")) == "DAgger rounds" and step_unit(run_of("rlhf", method="dpo")) == "DPO steps"
    members = [{"expert": {"return_mean": 500.0}, "eval": {}}, {"expert": {"return_mean": 498.0}, "eval": {}}]
    assert references({"members": members}) == [("expert", 499.0)]
    assert references({"sft": {"eval": {"return_mean": 120.0}}, "eval": {}}) == [("SFT", 120.0)]
    fig, ax = plt.subplots()
    readable_limits(ax, [54.5, 55.6])  # a 1-point wiggle at 55 is shown as one
    assert ax.get_ylim()[1] - ax.get_ylim()[0] >= 5.5
    plt.close(fig)
    d = np.linspace(0.0, 3.0, 10)
    fit, why = over_optimisation_fit(d, d * (2.0 - 1.0 * np.log(np.maximum(d, 1e-9))))
    assert fit == pytest.approx((2.0, 1.0)) and why.startswith("fit")
    fit, why = over_optimisation_fit(d, -5 * d)  # gold falls from the start: no rise and fall
    assert fit is None and "does not rise and fall" in why
    assert over_optimisation_fit([0.0, 0.1, 0.2], [0.0, 1.0, 2.0])[0] is None  # too few points
