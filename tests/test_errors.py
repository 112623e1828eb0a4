"""Every user mistake: one line on stderr, exit code 2, no traceback, nothing lost."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import assert_user_error, il, il_here, il_json


def test_unknown_env():
    assert_user_error(il_here("bc", "--env", "CartPol"), "unknown environment", "CartPole")


def test_negative_episodes():
    assert_user_error(il_here("bc", "--episodes", "-3"), "--episodes must be positive")
    assert_user_error(il_here("collect", "--episodes", "0"), "--episodes must be positive")


def test_missing_run_dir(tmp_path):
    assert_user_error(il_here("eval", tmp_path / "nope"), "does not exist")
    assert_user_error(il_here("bc", "--resume", tmp_path / "nope"), "does not exist")


def test_corrupt_run_dir(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert_user_error(il_here("eval", tmp_path), "corrupt")


def test_recipe_with_unknown_key(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('env = "CartPole"\n[bc]\nnum_stepz = 3\n')
    assert_user_error(il_here("bc", "--recipe", recipe), "num_stepz", "num_steps")
    recipe.write_text('envv = "CartPole"\n')
    assert_user_error(il_here("bc", "--recipe", recipe), "envv")
    assert_user_error(il_here("bc", "--recipe", "cartpol"), "cartpole")


def test_dataset_from_another_env(tmp_path):
    from il_cli.data import Dataset, save_dataset

    path = tmp_path / "pendulum.npz"
    save_dataset(path, Dataset({"env_id": "Pendulum-v1"}, np.zeros((4, 3), np.float32), np.zeros((4, 1), np.float32),
                               np.array([4]), np.zeros(1)))
    assert_user_error(il_here("bc", "--env", "CartPole", "--demos", path),
                      "Pendulum-v1", "CartPole-v1")
    (tmp_path / "junk.npz").write_text("junk")
    assert_user_error(il_here("bc", "--demos", tmp_path / "junk.npz"), "not an il dataset")


def test_bad_hidden_sizes():
    assert_user_error(il_here("bc", "--hidden", "64,x"), "--hidden")


JAX_FREE = """
import sys
from il_cli.cli import app
try:
    app({args!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("jax", "gymnax", "flax", "optax", "orbax") if m in sys.modules)
print("exit", code, "heavy", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize("args,code", [
    (["bc", "--help"], 0), (["--help"], 0), (["bc", "--env", "CartPol"], 2),
    (["dagger", "--label-noise", "1.5"], 2), (["bc", "--eval-policy", "greedy"], 2),
    (["dagger", "--beta-schedule", "linera"], 2)])
def test_help_and_user_errors_never_import_jax(args, code):
    """`il --help` and options that are wrong are answered before any heavy import."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", JAX_FREE.format(args=args)], capture_output=True,
                          text=True)
    assert proc.stderr.splitlines()[-1] == f"exit {code} heavy []", proc.stderr
    assert time.perf_counter() - start < 3.0  # generous for CI; the benchmark measures the real figure


def test_refused_options_leave_no_run_and_train_nothing(tmp_path):
    """Checks that need only the options come before a run directory or an expert exists."""
    env = {"IL_RUNS_DIR": str(tmp_path / "runs"), "IL_CACHE_DIR": str(tmp_path / "cache")}
    assert_user_error(il_here("dagger", "--env", "CartPole", "--label-noise", "1.5", env=env),
                      "--label-noise", "[0, 1]")
    assert_user_error(il_here("bc", "--eval-policy", "greedy", env=env), "mode")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
    # continuous actions: label noise is a Gaussian scale, any non-negative value is valid
    from il_cli.config import DAggerConfig

    assert DAggerConfig(env="Pendulum-v1", label_noise=1.5).label_noise == 1.5


def test_a_run_of_the_wrong_env_or_command_is_refused_before_a_run_is_made(cartpole_expert, tmp_runs):
    proc = il_here("bc", "--env", "Pendulum", "--expert", cartpole_expert)
    assert_user_error(proc, "ran on CartPole-v1, not Pendulum-v1")
    assert_user_error(il_here("dagger", "--expert", tmp_runs), "does not exist")
    assert not tmp_runs.exists() or not any(tmp_runs.iterdir())
    il_json("collect", "--expert", cartpole_expert, "--episodes", "1", "--run-dir", tmp_runs / "demos")
    assert_user_error(il_here("bc", "--expert", tmp_runs / "demos"), "is an il collect run, not a run of il expert")
    assert_user_error(il_here("rlhf", "--sft", tmp_runs / "demos"), "not a run of il bc")
    assert_user_error(il_here("rlhf", "--task", "text", "--resume", tmp_runs / "demos"),
                      "is an il collect run; resume it with `il collect --resume")
    assert_user_error(il_here("bc", "--demos", tmp_runs / "demos"), "is not a file (a directory; its dataset is")
    assert sorted(p.name for p in tmp_runs.iterdir()) == ["demos"]


# A zero or negative size is refused the same way on every path into a config (flag, recipe,
# sweep value, resumed config.json), before a run directory or an expert exists. (A zero-width
# layer used to train and then fail to checkpoint: an Orbax traceback and a half-made run.)
ZERO_SIZES = [
    (("bc", "--hidden", "64,0"), "", "--hidden sizes must be positive, got '64,0'"),
    (("bc", "--sweep", "hidden=0,64"), "", "--sweep hidden=0: --hidden sizes must be positive, got '0'"),
    (("dagger", "--sweep", "hidden=64x-8,64"), "", "--sweep hidden=64x-8: --hidden sizes must be positive"),
    (("expert", "--sweep", "num_envs=8,0"), "", "--sweep num_envs=0: --num-envs must be positive"),
    (("bc",), "[bc]\nhidden = [0]\n", "--hidden sizes must be positive, got '0'"),
    (("prefs",), "hidden = [64, -1]\n", "--hidden sizes must be positive, got '64,-1'"),
    (("rlhf",), "[rlhf]\nrm_hidden = [0]\n", "--rm-hidden sizes must be positive, got '0'"),
    (("bc",), 'sweep = ["hidden=0"]\n', "--sweep hidden=0: --hidden sizes must be positive"),
]


@pytest.mark.parametrize("args,recipe,message", ZERO_SIZES,
                         ids=["flag", "sweep", "sweep-negative", "sweep-count", "recipe", "recipe-top-level",
                              "recipe-rm-hidden", "recipe-sweep"])
def test_a_zero_or_negative_size_is_one_line_on_every_path(tmp_path, args, recipe, message):
    env = {"IL_RUNS_DIR": str(tmp_path / "runs"), "IL_CACHE_DIR": str(tmp_path / "cache")}
    if recipe:
        (tmp_path / "r.toml").write_text(recipe)
        args = (*args, "--recipe", tmp_path / "r.toml")
    assert_user_error(il_here(*args, env=env), message)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()  # no run, no expert


def test_a_resumed_config_with_a_zero_size_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"command": "bc", "env": "CartPole-v1",
                                                 "config": {"hidden": [64, 0]}}))
    assert_user_error(il_here("bc", "--resume", run), "--hidden sizes must be positive, got '64,0'")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


@pytest.mark.parametrize("args,message,wrong", [
    (("compounding", "--horizons", "50,x"), "--horizons must be comma-separated integers like 50,100,200", "64,64"),
    (("compounding", "--demos", "1;2"), "--demos must be comma-separated integers like 1,2,5,10", "64,64"),
    (("bc", "--vary-eval", "length=a,b"), "--vary-eval must be NAME=v1,v2,...", "--vary "),
    (("bc", "--env", "-"), "unknown environment '-'", "did you mean"),
    (("bc", "--sweep", "=1,2"), "--sweep : not an option", "did you mean"),
], ids=["horizons-example", "demos-example", "vary-eval-name", "no-far-suggestion", "no-far-sweep-suggestion"])
def test_a_message_names_this_option_and_only_close_matches(args, message, wrong):
    proc = il(*args, check=False)
    assert_user_error(proc, message)
    assert wrong not in proc.stderr


def test_a_recipe_key_is_named_by_its_option(tmp_path):
    """Every config field has an option: a recipe's bad value is reported by the option that
    sets it, so the user can find it in --help."""
    (tmp_path / "r.toml").write_text("[rlhf]\nnum_epochs = 0\nactivation = 'rleu'\n")
    proc = il("rlhf", "--recipe", tmp_path / "r.toml", check=False)
    assert_user_error(proc, "--activation must be one of tanh, relu, got 'rleu' (did you mean relu?)")
    (tmp_path / "r.toml").write_text("[rlhf]\nnum_epochs = 0\n")
    assert_user_error(il_here("rlhf", "--recipe", tmp_path / "r.toml"), "--num-epochs must be positive")