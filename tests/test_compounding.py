"""`il compounding`: the slope fit, the bound check, and the command end to end on Rail."""

from pathlib import Path

import numpy as np
import pytest

from conftest import il, il_json
from il_cli.jobs.compounding import bound_rows, loglog_slope
from test_errors import assert_user_error


def test_loglog_slope_recovers_the_exponent():
    h = np.array([16, 32, 64, 128, 256])
    rng = np.random.default_rng(0)
    assert loglog_slope(h, 0.01 * h**2) == pytest.approx(2.0)
    assert loglog_slope(h, 3.0 * h) == pytest.approx(1.0)
    noisy = 0.01 * h**2 * np.exp(rng.normal(0, 0.05, h.size))
    assert abs(loglog_slope(h, noisy) - 2.0) < 0.1
    assert loglog_slope(h, [0.0, 0.0, 1.0, 2.0, 4.0]) == pytest.approx(1.0)  # gaps ≤ 0 are left out
    assert loglog_slope(h, [0.0, 0.0, 0.0, 0.0, 4.0]) is None


def test_bound_check_counts_the_seeds_over_h2_eps():
    seed = lambda gap, eps: {"gap": gap, "tv_expert_states": eps, "tv_learner_states": 2 * eps, "return": 10 - gap,
                             "expert_return": 10.0, "labels": 40}
    row = bound_rows(10, [seed(1.0, 0.02), seed(3.0, 0.02), seed(0.0, 0.0)])
    assert row["bound_violations"] == 1  # 3 > 10² · 0.02 = 2
    assert row["gap"] == pytest.approx(4 / 3) and row["bound"] == pytest.approx(100 * 0.04 / 3)
    assert row["gap_over_h2_eps"] == pytest.approx((4 / 3) / (100 * 0.04 / 3))
    assert row["eps_own_states"] == pytest.approx(0.08 / 3)
    assert bound_rows(10, [seed(0.0, 0.0)])["gap_over_h_eps"] is None


def test_compounding_on_rail_end_to_end(tmp_runs):
    summary = il_json("compounding", "--env", "Rail", "--horizons", "8,16,32", "--demos", "2", "--seeds", "4",
                      "--eval-episodes", "32", "--train-steps", "300")
    table = summary["table"]
    assert [(r["algo"], r["horizon"]) for r in table] == [(a, h) for a in ("bc", "dagger") for h in (8, 16, 32)]
    for r in table:
        assert r["expert_return"] == r["horizon"]  # Rail's exact expert never leaves the rail
        assert r["labels"] <= 2 * r["horizon"]  # DAgger gets at most BC's budget of expert labels
        assert r["gap"] <= r["bound"] + 1e-6 and r["bound_violations"] == 0
    assert summary["bound_holds"]
    assert Path(summary["plot"]).is_file() and Path(summary["csv"]).read_text().startswith("algo,")
    assert {s["algo"] for s in summary["slopes"]} == {"bc", "dagger"}


def test_bad_compounding_options():
    assert_user_error(il("compounding", "--horizons", "50", check=False), "at least two horizons")
    assert_user_error(il("compounding", "--demos", "0", check=False), "--demos sizes must be positive")
    assert_user_error(il("compounding", "--horizons", "2,64", check=False), "at least two horizons of at least")
