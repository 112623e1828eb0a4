"""`il benchmark`: rliable's statistics on hand-computed numbers, a tiny suite end to end,
a kill and --resume that skips finished cells, and bad names refused before anything runs."""

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import assert_user_error, il_here, il_json
from scipy import stats

from il_cli import benchmark as B
from il_cli.errors import UserError

# Rail's and MountainCar's experts are written down (il_cli.exact): no PPO in these tests.
TINY_SUITE = """
algos = ["bc", "dagger"]
envs = ["Rail", "MountainCar"]
seeds = 2

[bc]
episodes = 2
num_steps = 200
eval_episodes = 6

[dagger]
episodes = 1
num_rounds = 2
steps_per_round = 400
train_steps = 50
eval_episodes = 6

[dagger.MountainCar]
num_rounds = 4
"""


def test_iqm_and_its_ci_are_rliables_on_hand_made_scores():
    scores = np.array([[0.1, 0.9], [0.4, 0.5], [0.3, 1.0], [0.8, 0.2]])  # 4 runs × 2 tasks
    r = B.iqm_interval(scores)
    assert r["iqm"] == pytest.approx(np.mean(np.sort(scores.ravel())[2:6]))  # the middle half of 8
    assert r["iqm"] == pytest.approx(stats.trim_mean(scores, 0.25, axis=None))
    assert r["ci95"][0] < r["iqm"] < r["ci95"][1] and 0.1 <= r["ci95"][0] and r["ci95"][1] <= 1.0
    assert B.iqm_interval(np.full((5, 1), 0.7))["ci95"] == pytest.approx([0.7, 0.7])
    assert B.iqm_interval(scores) == r  # a fixed bootstrap seed: the same CI every time


def test_probability_of_improvement_by_hand():
    x, y = np.array([[0.9], [0.8], [0.7]]), np.array([[0.1], [0.75], [0.2]])
    # P(X > Y) over the 9 pairs: 0.9 and 0.8 beat all three, 0.7 beats two
    assert B.improvement(x, y)["p"] == pytest.approx(8 / 9)
    assert B.improvement(x, x)["p"] == 0.5
    assert B.improvement(y + 10, y)["p"] == 1.0


def test_cells_take_the_suite_settings_and_the_env_overrides(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    plan = B.make_plan(str(suite), None, None, None)
    cells = {(c["algo"], c["env"]): c["options"] for c in plan["cells"]}
    assert list(cells) == [("bc", "Rail-v0"), ("bc", "MountainCar-v0"), ("dagger", "Rail-v0"),
                           ("dagger", "MountainCar-v0")]
    assert cells[("dagger", "MountainCar-v0")]["num_rounds"] == 4 and cells[("dagger", "Rail-v0")]["num_rounds"] == 2
    assert cells[("bc", "Rail-v0")] == {"episodes": 2, "num_steps": 200, "eval_episodes": 6, "env": "Rail-v0",
                                        "seeds": 2}
    assert B.make_plan("classic", None, None, 3)["seeds"] == 3
    suite.write_text(TINY_SUITE.replace("num_rounds = 4", "rounds = 4"))
    with pytest.raises(UserError, match=r"il dagger has no setting 'rounds' \(did you mean num_rounds\?\)"):
        B.make_plan(str(suite), None, None, None)


@pytest.mark.parametrize("args, fragment", [
    (("--algos", "bc,rlhf", "--envs", "CartPole"), "no benchmarked algorithm 'rlhf'"),
    (("--envs", "CartPoel"), "did you mean"),
    (("--suite", "clasic"), "no suite 'clasic'"),
    (("--algos", "bc", "--envs", "CartPole", "--seeds", "0"), "--seeds must be at least 1"),
    (("--algos", "bc"), "no environments"),
])
def test_bad_names_are_one_line_before_anything_runs(args, fragment, tmp_runs):
    assert_user_error(il_here("benchmark", *args), fragment)
    assert not tmp_runs.exists() or not any(tmp_runs.iterdir())


def test_a_tiny_suite_runs_is_killed_and_resumes(tmp_path, tmp_runs):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, "-m", "il_cli", "benchmark", "--suite", str(suite), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(tmp_runs.glob("bench-bc-Rail-v0/summary.json")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and f"il benchmark --resume {out}" in err, err
    report = il_json("benchmark", "--resume", out)
    assert "finished before" in il_here("benchmark", "--resume", out).stdout  # every cell, now
    cells = report["cells"]
    assert list(cells) == ["bc/Rail-v0", "bc/MountainCar-v0", "dagger/Rail-v0", "dagger/MountainCar-v0"]
    for key, cell in cells.items():
        assert "error" not in cell, (key, cell)
        assert len(cell["members"]) == 2
        for m in cell["members"]:  # the normalisation, from the returns it is made of
            assert m["normalized"] == pytest.approx((m["return"] - m["random"]) / (m["expert"] - m["random"]))
        summary = json.loads((tmp_runs / f"bench-{key.replace('/', '-')}" / "summary.json").read_text())
        assert [m["seed"] for m in summary["members"]] == [0, 1]
        assert (out / "cells" / key.replace("/", "-")).resolve() == (tmp_runs / f"bench-{key.replace('/', '-')}").resolve()
    assert cells["bc/Rail-v0"]["expert_return"] == 200  # the exact expert: H on every episode
    agg = report["aggregate"]
    assert agg["envs"] == ["Rail-v0", "MountainCar-v0"] and 0 <= agg["dagger"]["improvement_over_bc"]["p"] <= 1
    scores = np.array([[m["normalized"] for m in cells[f"dagger/{e}"]["members"]] for e in agg["envs"]]).T
    assert agg["dagger"]["iqm"] == pytest.approx(stats.trim_mean(scores, 0.25, axis=None))
    rows = list(csv.DictReader(open(out / "benchmark.csv")))
    assert [(r["algo"], r["env"]) for r in rows] == [tuple(k.split("/")) for k in cells]
    table = (out / "benchmark.md").read_text()
    assert "| Rail-v0 | 200.0 |" in table and "P(improvement over bc)" in table
    assert (out / "benchmark.png").stat().st_size > 0
    assert il_json("eval", out / "cells" / "bc-Rail-v0", "--member", "1")["eval"] == \
        json.loads((tmp_runs / "bench-bc-Rail-v0" / "summary.json").read_text())["members"][1]["eval"]
