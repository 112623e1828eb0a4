"""`--distributed`: two jax.distributed processes on localhost run one sweep into one run
directory, and its members match a one-process run."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import il

from il_cli.runs import Run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def evals(summary):
    return [m["eval"] for m in summary["members"]]


@pytest.mark.parametrize("args, policy, same", [
    (["bc", "--episodes", "3", "--num-steps", "600", "--seeds", "2", "--sweep", "lr=1e-3,3e-3", "--eval-episodes",
      "10"], ["params"], evals),
    pytest.param(["dagger", "--rounds", "3", "--steps-per-round", "200", "--train-steps", "100", "--seeds", "2",
                  "--eval-episodes", "10", "--sweep", "label_noise=0,0.2", "--sweep", "hidden=16,32"],
                 ["learner", "params"], evals, marks=pytest.mark.slow),  # bc's covers the mechanism by default
    # Pendulum's continuous returns differ in the last digits with the parameters (rtol 1e-5)
    pytest.param(["expert", "--env", "Pendulum", "--total-timesteps", "8192", "--seeds", "2", "--sweep",
                  "lr=3e-4,1e-3", "--eval-episodes", "4"], ["params", "actor"],
                 lambda s: [pytest.approx(m["eval"]["return_mean"], rel=1e-5) for m in s["members"]],
                 marks=pytest.mark.slow),
    pytest.param(["prefs", "--env", "CartPole", "--num-steps", "1000", "--seeds", "2", "--sweep", "lr=1e-3,3e-3",
                  "--eval-episodes", "4"], ["params"], evals, marks=pytest.mark.slow),
    # PPO on sampled responses amplifies the last-digit differences of 2 vs 4 members per device
    # (as two GPUs would): RLHF's members match up to their SFT stage, which is compared
    pytest.param(["rlhf", "--demo-episodes", "2", "--num-prompts", "64", "--rm-steps", "300", "--total-timesteps",
                  "16384", "--eval-episodes", "10", "--seeds", "2", "--sweep", "kl_coef=0.02,0.1"], ["sft"],
                 lambda s: [m["sft"]["eval"] for m in s["members"]], marks=pytest.mark.slow),
    pytest.param(["compounding", "--env", "CartPole", "--horizons", "16,32", "--train-steps", "200", "--rounds", "2", "--seeds", "4",
                  "--eval-episodes", "16"], None, lambda s: s["table"], marks=pytest.mark.slow),
    # text: member k's transformer differs from one process's in the last digits from pretraining
    # on (as member k of a wider vmap does, see test_text_rlhf): one directory, logged once
    pytest.param(["rlhf", "--task", "text", "--pretrain-steps", "50", "--sft-steps", "20", "--rm-steps", "20",
                  "--num-prompts", "32", "--updates", "2", "--dpo-steps", "2", "--d-model", "32", "--rm-d-model",
                  "32", "--seeds", "2"], None, lambda s: [m["seed"] for m in s["members"]], marks=pytest.mark.slow),
    pytest.param(["gail", "--episodes", "2", "--total-timesteps", "8192", "--num-chunks", "2", "--seeds", "2",
                  "--sweep", "disc_lr=1e-3,3e-3", "--eval-episodes", "4"], ["params", "actor"], evals,
                 marks=pytest.mark.slow),
], ids=["bc", "dagger", "expert", "prefs", "rlhf", "compounding", "rlhf-text", "gail"])
def test_two_processes_run_one_sweep_like_one_process(cartpole_expert, tmp_path, args, policy, same):
    if args[0] != "expert" and "text" not in args:
        args = [*args, "--expert", cartpole_expert]
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "il_cli", *args, "--run-dir", str(tmp_path / "two"), "--json",
                               "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                               "--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=os.environ.copy()) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "{" not in outs[1][0]  # process 1 computes; process 0 prints (gloo says hello on both)
    two = json.loads(outs[0][0].splitlines()[-1])
    assert two["device"].startswith("cpu ×2")
    one = json.loads(il(*args, "--run-dir", tmp_path / "one", "--json").stdout)
    assert same(two) == same(one)
    runs = [Run(tmp_path / "one"), Run(tmp_path / "two")]
    pairs = zip(*([c for _, c in run.programs] for run in runs)) if runs[0].programs else [runs] if policy else []
    for one_run, two_run in pairs:  # a sweep over a shape: a run per program
        a, b = one_run.restore_raw(), two_run.restore_raw()
        for part in policy:
            a, b = a[part], b[part]
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    rows = Run(tmp_path / "two").metrics()
    assert len(rows) == len(Run(tmp_path / "one").metrics())  # logged once, by process 0
