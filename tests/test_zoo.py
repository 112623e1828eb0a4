"""The expert zoo: exact experts at published strength, the reference check, `il expert`
becoming the cached expert, and a user's own environment."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import TINY, assert_user_error, il_here, il_json

from il_cli import exact, networks
from il_cli.envs import REFERENCE_RETURNS, make_env, reference

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@pytest.mark.parametrize("env_id", ["MountainCar-v0", "MountainCarContinuous-v0"])
def test_exact_experts_fit_the_actor_for_either_activation(env_id):
    env, _, spec = make_env(env_id)
    for activation, hidden in (("tanh", (64, 64)), ("relu", (16,))):
        actor = networks.make_actor(spec, hidden, activation)
        init = jax.eval_shape(actor.init, jax.random.PRNGKey(0), networks.dummy_obs(spec))
        params = exact.EXACT_EXPERTS[env_id][1](env, hidden, activation)
        assert jax.tree.map(lambda p: (p.shape, p.dtype), params) == jax.tree.map(lambda p: (p.shape, p.dtype), init)


@pytest.fixture
def empty_expert_cache(tmp_path, monkeypatch):
    """A cache without experts (the compiled programs still shared)."""
    import os

    cache = tmp_path / "cache"
    cache.mkdir()
    shared = Path(os.environ["IL_CACHE_DIR"]) / "jax"
    shared.mkdir(parents=True, exist_ok=True)
    (cache / "jax").symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("IL_CACHE_DIR", str(cache))
    return cache


def test_exact_experts_reach_the_published_returns_and_cache_themselves(tmp_runs, empty_expert_cache):
    cached = {}
    for recipe, env_id in (("mountaincar", "MountainCar-v0"), ("mountaincarcontinuous", "MountainCarContinuous-v0")):
        summary = il_json("expert", "--recipe", recipe, "--eval-episodes", "32")
        assert summary["eval"]["return_mean"] >= REFERENCE_RETURNS[env_id]  # −110.7 ≥ −118; 94.6 ≥ 92
        assert summary["expert"]["exact"] and summary["expert"]["below_reference"] is False
        cached[env_id] = summary["cached_as"]  # none was cached: this run is the expert now
        assert Path(cached[env_id]) == empty_expert_cache / "experts" / env_id
    bad = il_here("expert", "--env", "MountainCar", *TINY["expert"][1:])  # PPO: never finds the flag
    assert "BELOW IT" in bad.stdout and "cached as" not in bad.stdout  # the exact one stays cached
    dagger = il_json(*TINY["dagger"], "--env", "MountainCar", "--episodes", "1")
    assert dagger["expert"]["run"] == cached["MountainCar-v0"]
    assert dagger["expert"]["reference_return"] == -118 and not dagger["expert"]["below_reference"]
    assert dagger["normalized_return"] == pytest.approx(
        (dagger["eval"]["return_mean"] - dagger["random"]["return_mean"])
        / (dagger["expert"]["return_mean"] - dagger["random"]["return_mean"]))


def test_the_reference_margin():
    assert reference("Acrobot-v1", -95.0) == {"reference_return": -80.0, "below_reference": False}
    assert reference("Acrobot-v1", -97.0)["below_reference"] is True  # more than 20% of 80 under it
    assert reference("CartPole-v1", 399.0)["below_reference"] and reference("Catch-bsuite", 0.0) == {}


def test_bad_expert_flags(tmp_runs):
    assert_user_error(il_here("expert", "--env", "CartPole", "--exact"), "--exact: CartPole-v1 has no exact expert")
    assert_user_error(il_here("expert", "--env", "CartPole", "--cache", "--seeds", "2"), "--cache: the cached expert")


def test_a_users_own_environment(tmp_runs, monkeypatch, empty_expert_cache):
    """docs/examples/my_envs.py:HeavyCartPole, a gymnax CartPole with a heavier pole: trained,
    cached and cloned like a shipped environment."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    env_id = "my_envs:HeavyCartPole"
    assert make_env(env_id)[1].masspole == 0.5
    expert = il_json(*TINY["expert"], "--env", env_id)
    assert expert["env"] == env_id and "cached_as" in expert and "reference_return" not in expert["expert"]
    bc = il_json(*TINY["bc"], "--env", env_id)  # the cached expert, found by the id
    assert bc["expert"]["run"] == expert["cached_as"] and np.isfinite(bc["normalized_return"])
    assert il_json("eval", bc["run_dir"])["eval"] == bc["eval"]
    assert_user_error(il_here("bc", "--env", "my_envs:NotAnEnv"), "not a gymnax environment")
    assert_user_error(il_here("bc", "--env", "no_such_module:Env"), "cannot import Env from no_such_module")
    assert "my_envs" in sys.modules


def test_il_envs_names_the_shipped_experts_and_their_published_returns():
    out = il_here("envs").stdout
    row = next(line for line in out.splitlines() if "MountainCar-v0" in line)
    assert "mountaincar (exact)" in row and "-118" in row
    assert all(f"{name} " in out for name in ("cartpole", "acrobot", "pendulum", "asterix", "breakout", "freeway",
                                               "spaceinvaders", "mountaincarcontinuous (exact)"))
