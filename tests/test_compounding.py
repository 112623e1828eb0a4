"""`il compounding`: the slope fit, the bound check, and the command end to end on Rail."""

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_user_error, il_here, il_json

from il_cli.jobs.compounding import bound_rows, power_fit, slope_with_ci


def test_power_fit_recovers_the_exponent_and_keeps_every_point():
    h = np.array([16, 32, 64, 128, 256])
    rng = np.random.default_rng(0)
    assert power_fit(h, 0.01 * h**2)[0] == pytest.approx(2.0)
    assert power_fit(h, 3.0 * h)[0] == pytest.approx(1.0)
    assert power_fit(h, 3.0 * h)[1] == pytest.approx(3.0 * 256)  # c: the fitted gap at the longest H
    assert abs(power_fit(h, 0.01 * h**2 * np.exp(rng.normal(0, 0.05, h.size)))[0] - 2.0) < 0.1
    # zero and negative gaps count as they are: a gap that starts late still grows like H
    from scipy.optimize import curve_fit

    for gaps in (np.maximum(0.0, h - 64.0), np.maximum(0.0, h - 64.0) - 1.0):  # a log-log fit drops the first ones
        (c, p), _ = curve_fit(lambda x, c, p: c * (x / 256) ** p, h, gaps, p0=(gaps[-1], 1.0))
        assert power_fit(h, gaps)[0] == pytest.approx(p, abs=0.002)
    assert power_fit(h, [0.0, -1.0, 0.0, 0.0, 0.0]) == (None, None)
    assert power_fit(h, [0.0, 0.13, 0.0, 0.0, 0.0]) == (None, None)  # one bump is no growth


def test_the_slope_comes_with_a_bootstrap_ci_over_seeds():
    h = np.array([16, 32, 64, 128, 256])
    rng = np.random.default_rng(1)
    seeds = 0.01 * h**2 * np.exp(rng.normal(0, 0.3, (16, h.size)))  # [seeds, H]
    fit = slope_with_ci(h, seeds)
    assert fit["ci95"][0] < 2.0 < fit["ci95"][1] and fit["ci95"][1] - fit["ci95"][0] < 0.6
    assert fit["ci95"][0] <= fit["slope"] <= fit["ci95"][1]
    assert slope_with_ci(h, seeds[:1])["ci95"] is None  # one seed: nothing to resample


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
    summary = il_json("compounding", "--env", "Rail", "--horizons", "8,32", "--demos", "2", "--seeds", "4",
                      "--eval-episodes", "32", "--train-steps", "300")
    table = summary["table"]
    assert [(r["algo"], r["horizon"]) for r in table] == [(a, h) for a in ("bc", "dagger") for h in (8, 32)]
    for r in table:
        assert r["expert_return"] == r["horizon"]  # Rail's exact expert never leaves the rail
        assert r["labels"] <= 2 * r["horizon"]  # DAgger gets at most BC's budget of expert labels
        assert r["gap"] <= r["bound"] + 1e-6 and r["bound_violations"] == 0
    assert summary["bound_holds"]
    assert Path(summary["plot"]).is_file() and Path(summary["csv"]).read_text().startswith("algo,")
    assert {s["algo"] for s in summary["slopes"]} == {"bc", "dagger"}
    for s in summary["slopes"]:  # every slope with its 95% CI over the 4 seeds
        assert s["slope"] is None or (s["ci95"] is not None and s["ci95"][0] <= s["ci95"][1])


def test_bad_compounding_options():
    assert_user_error(il_here("compounding", "--horizons", "50"), "at least two horizons")
    assert_user_error(il_here("compounding", "--demos", "0"), "--demos sizes must be positive")
    assert_user_error(il_here("compounding", "--horizons", "2,64"), "at least two horizons of at least")
