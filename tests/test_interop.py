"""Minari datasets in and out (il_cli.interop): gymnasium's dynamics are gymnax's, a recording
made on gymnasium trains `il bc`, il's datasets go through Minari bit for bit, and a bad
dataset is one line. Nothing is downloaded: datasets are made here, in a temporary
MINARI_DATASETS_PATH."""

import json
import shutil
import sys

import gymnasium as gym
import jax
import minari
import numpy as np
import pytest
from helpers import assert_user_error, il_here, il_json

from il_cli.interop import GYMNASIUM_ENVS

pytestmark = [pytest.mark.filterwarnings("ignore:.*is set to None"),  # Minari's, for each metadata field left
              pytest.mark.filterwarnings("ignore:env_spec is None")]  # empty, and for a dataset of no environment


@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def scripted_cartpole(obs) -> int:
    """Push toward the side the pole falls to: balances gymnasium's CartPole for 500 steps."""
    return int(np.dot([0.1, 0.5, 1.0, 1.0], obs) > 0)


def record(dataset_id: str, env_id: str, policy, episodes: int) -> minari.MinariDataset:
    """`episodes` episodes of `policy(obs, episode)` on gymnasium's `env_id`, saved by Minari's
    DataCollector (the way a gymnasium user makes a dataset)."""
    env = minari.DataCollector(gym.make(env_id))
    env.action_space.seed(0)
    for i in range(episodes):
        obs, _ = env.reset(seed=i)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy(obs, i))
            done = terminated or truncated
    return env.create_dataset(dataset_id, algorithm_name="scripted", author="il tests")


def npz_arrays(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k != "header"}


@pytest.mark.parametrize("env_id", GYMNASIUM_ENVS)
def test_gymnasiums_dynamics_are_gymnaxs(env_id):
    """From gymnasium's reset state, the same actions give the same observations, rewards and
    terminations in gymnax (float32 against float64: 1e-3)."""
    import gymnax

    env = gym.make(env_id)
    ours, params = gymnax.make(env_id)
    step = jax.jit(ours.step_env)
    obs, _ = env.reset(seed=3)
    state = env.unwrapped.state
    state_type = type(ours.reset_env(jax.random.PRNGKey(0), params)[1])  # gymnasium's state, in its order
    names = [name for name in state_type.__dataclass_fields__ if name != "time"]  # (Pendulum's last_u: 0)
    gx = state_type(time=0, **dict(zip(names, [*np.asarray(state, np.float32), *[np.float32(0)] * len(names)])))
    np.testing.assert_allclose(np.asarray(ours.get_obs(gx, params)), obs, atol=1e-5)
    env.action_space.seed(1)
    for t in range(60):
        action = env.action_space.sample()
        obs, reward, terminated, _, _ = env.step(action)
        gx_obs, gx, gx_reward, done, _ = step(jax.random.PRNGKey(t), gx, jax.numpy.asarray(action), params)
        np.testing.assert_allclose(np.asarray(gx_obs), obs, atol=1e-3, err_msg=f"{env_id} step {t}")
        assert float(gx_reward) == pytest.approx(reward, abs=1e-3) and bool(done) == terminated, (env_id, t)
        if terminated:
            break


def test_a_gymnasium_recording_trains_il_bc(minari_home, tmp_runs):
    """Six scripted episodes that balance (truncated at 500) and two random ones that fall
    (terminated), recorded on gymnasium: il bc reads them as they are, with their provenance."""
    recorded = record("cartpole/scripted-v0", "CartPole-v1",
                      lambda obs, i: scripted_cartpole(obs) if i < 6 else np.random.default_rng(i).integers(2), 8)
    summary = il_json("bc", "--env", "CartPole", "--demos", "minari:cartpole/scripted-v0", "--num-steps", "300",
                      "--eval-episodes", "6")
    episodes = list(recorded.iterate_episodes())
    assert summary["bc"]["demos"] == recorded.total_steps and summary["bc"]["demo_episodes"] == 8
    assert summary["expert"]["paired"] is False  # a recording, not an il expert: its own mean return
    assert summary["expert"]["return_mean"] == pytest.approx(np.mean([ep.rewards.sum() for ep in episodes]))
    demos = npz_arrays(f"{summary['run_dir']}/data/demos.npz")  # the copy the run (and its resume) reads
    assert demos["terminated"].tolist() == [False] * 6 + [True] * 2
    np.testing.assert_array_equal(demos["obs"], np.concatenate([ep.observations[:-1] for ep in episodes]))
    np.testing.assert_array_equal(demos["final_obs"], [ep.observations[-1] for ep in episodes])
    assert demos["actions"].tolist() == np.concatenate([ep.actions for ep in episodes]).tolist()
    with np.load(f"{summary['run_dir']}/data/demos.npz") as f:
        header = json.loads(bytes(f["header"]).decode())
    assert header["provenance"]["dataset_id"] == "cartpole/scripted-v0" and header["provenance"]["author"] == ["il tests"]
    assert header["provenance"]["recorded_on"] == "CartPole-v1" and header["source"] == "minari:cartpole/scripted-v0"


def test_il_datasets_go_through_minari_bit_for_bit(cartpole_expert, minari_home, tmp_runs, tmp_path):
    """il collect → il data export → minari.load_dataset reads T+1 observations an episode; il
    bc --demos minari:ID (and il data import) read back the collected arrays, bit for bit.
    Continuous actions and terminations too: MountainCarContinuous's exact expert reaches the flag."""
    collected = il_json("collect", "--expert", cartpole_expert, "--episodes", "3", "--num-envs", "3")
    exported = il_json("data", "export", collected["run_dir"], "--minari", "cartpole/il-expert-v0")
    assert exported["episodes"] == 3 and exported["env"] == "CartPole-v1"
    loaded = minari.load_dataset("cartpole/il-expert-v0")
    assert loaded.env_spec.id == "CartPole-v1" and loaded.total_steps == collected["dataset"]["count"]
    ep = loaded[0]
    assert ep.observations.shape == (501, 4) and ep.truncations[-1] and not ep.terminations.any()
    bc = il_json("bc", "--demos", "minari:cartpole/il-expert-v0", "--num-steps", "20", "--eval-episodes", "2")
    native = npz_arrays(collected["dataset"]["path"])
    for name, array in npz_arrays(f"{bc['run_dir']}/data/demos.npz").items():
        assert array.dtype == native[name].dtype and array.tobytes() == native[name].tobytes(), name
    assert bc["expert"]["paired"] is not False  # the exported header names the expert: paired as usual

    expert = il_json("expert", "--env", "MountainCarContinuous", "--exact", "--eval-episodes", "2")
    collected = il_json("collect", "--env", "MountainCarContinuous", "--expert", expert["run_dir"], "--episodes", "2",
                        "--num-envs", "2", "--minari", "mountaincar/exact-v0")  # (collect and export in one)
    assert collected["dataset"]["minari"]["episodes"] == 2
    assert minari.load_dataset("mountaincar/exact-v0")[0].terminations[-1]  # the flag reached
    back = il_json("data", "import", "minari:mountaincar/exact-v0", "--out", tmp_path / "back.npz")
    native = npz_arrays(collected["dataset"]["path"])
    assert back["provenance"]["dataset_id"] == "mountaincar/exact-v0" and native["terminated"].all()
    for name, array in npz_arrays(tmp_path / "back.npz").items():
        assert array.dtype == native[name].dtype and array.tobytes() == native[name].tobytes(), name


def test_bad_minari_datasets_are_one_line(minari_home, tmp_path, tmp_runs, monkeypatch):
    bc = ("bc", "--env", "CartPole", "--num-steps", "10")
    assert_user_error(il_here(*bc, "--demos", "minari:cartpole/none-v0"), "no Minari dataset 'cartpole/none-v0'",
                      "never downloads")
    record("acrobot/random-v0", "Acrobot-v1", lambda obs, i: 0, 1)
    assert_user_error(il_here(*bc, "--demos", "minari:acrobot/random-v0"), "recorded on Acrobot-v1, not CartPole-v1",
                      "--env Acrobot-v1")
    record("frozenlake/random-v0", "FrozenLake-v1", lambda obs, i: 1, 2)
    assert_user_error(il_here(*bc, "--demos", "minari:frozenlake/random-v0"), "recorded on gymnasium's FrozenLake-v1")
    from minari.data_collector import EpisodeBuffer  # a dataset of no environment, with three actions
    minari.create_dataset_from_buffers(
        "cartpole/three-actions-v0", [EpisodeBuffer(observations=np.zeros((3, 4), np.float32), actions=np.array([0, 2]),
                                                    rewards=np.ones(2), terminations=np.array([False, True]),
                                                    truncations=np.zeros(2, bool), infos={})],
        observation_space=gym.spaces.Box(-1, 1, (4,)), action_space=gym.spaces.Discrete(3))
    assert_user_error(il_here(*bc, "--demos", "minari:cartpole/three-actions-v0"),
                      "its actions are 3 discrete choices, CartPole-v1's are 2 discrete choices")
    torn = tmp_path / "torn"
    shutil.copytree(minari_home / "acrobot" / "random-v0", torn)
    hdf5 = torn / "data" / "main_data.hdf5"
    hdf5.write_bytes(hdf5.read_bytes()[:2000])
    assert_user_error(il_here("bc", "--env", "Acrobot", "--demos", torn), f"{torn} is not a readable Minari dataset")
    assert_user_error(il_here("collect", "--minari", "acrobot/random-v0"), "acrobot/random-v0 already exists")
    assert_user_error(il_here("collect", "--prefs", "10", "--minari", "x/y-v0"), "preference pairs have no Minari form")
    assert not tmp_runs.exists() or not any(tmp_runs.iterdir())  # each refused before a run was made
    assert_user_error(il_here("data", "export", tmp_path / "none.npz", "--minari", "x/y-v0"), "does not exist")
    monkeypatch.setitem(sys.modules, "minari", None)  # an install without the extra
    assert_user_error(il_here(*bc, "--demos", "minari:acrobot/random-v0"), 'pip install -e ".[minari]"')
