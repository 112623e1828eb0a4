import subprocess
import sys

import gymnax
import pytest

from il_cli.envs import ALL_ENV_IDS, CONTINUOUS_ENV_IDS, ENV_IDS, OWN_ENV_IDS, make_env, resolve_env_id
from il_cli.errors import UserError


def test_env_ids_match_gymnax_registry():
    assert list(ENV_IDS) == list(gymnax.registered_envs)
    assert not set(OWN_ENV_IDS) & set(gymnax.registered_envs) and ALL_ENV_IDS == ENV_IDS + OWN_ENV_IDS


@pytest.mark.parametrize("name,env_id", [
    ("CartPole", "CartPole-v1"), ("cartpole", "CartPole-v1"), ("CartPole-v1", "CartPole-v1"),
    ("Pendulum", "Pendulum-v1"), ("Breakout", "Breakout-MinAtar"), ("acrobot-v1", "Acrobot-v1"),
    ("MountainCarContinuous", "MountainCarContinuous-v0"), ("MountainCar", "MountainCar-v0"),
    ("Rail", "Rail-v0"), ("rail", "Rail-v0"), ("Rail-v0", "Rail-v0"),
])
def test_aliases(name, env_id):
    assert resolve_env_id(name) == env_id


def test_unknown_env_suggests_close_match():
    with pytest.raises(UserError, match="did you mean.*CartPole"):
        resolve_env_id("CartPol")


@pytest.mark.parametrize("env_id", [e for e in ALL_ENV_IDS if e != "MNISTBandit-bsuite"])
def test_every_env_builds_with_a_spec(env_id):
    _, _, spec = make_env(env_id)
    assert spec.action_dim >= 1 and spec.max_steps >= 1
    assert spec.discrete == (env_id not in CONTINUOUS_ENV_IDS)  # the static table is right
    if not spec.discrete:
        assert len(spec.action_low) == spec.action_dim


def test_continuous_and_discrete_specs():
    assert make_env("CartPole-v1")[2].discrete
    pendulum = make_env("Pendulum-v1")[2]
    assert not pendulum.discrete and pendulum.action_low == (-2.0,) and pendulum.action_high == (2.0,)


def test_gymnax_renderers_are_imported_on_first_use_and_once():
    """il_cli.envs.defer_gymnax_renderers: `import gymnax` without seaborn and scipy.stats (1.4 s
    of every command's start); the first use imports the real module, later uses find it."""
    code = """
import sys
from il_cli.envs import defer_gymnax_renderers
defer_gymnax_renderers()
import gymnax
assert "scipy.stats" not in sys.modules
stand_in = sys.modules["seaborn"]
first = stand_in.color_palette
real = sys.modules["seaborn"]
assert real is not stand_in and stand_in.color_palette is first and sys.modules["seaborn"] is real
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
assert plt.subplots and sys.modules["matplotlib.pyplot"].__class__.__name__ == "module"
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
