"""Demonstrations recorded on the real gymnasium, cloned on gymnax: does `il bc --demos minari:ID`
reach the recorded policy's return? (#28's bar: within 5%.)

CartPole-v1: a scripted linear controller; Pendulum-v1: il's cached PPO expert, run step by step
in gymnasium. Each is recorded with Minari's DataCollector into a temporary MINARI_DATASETS_PATH
and cloned by `il bc` with the environment's shipped recipe; the recorded policy and the clones
are then run on gymnasium from the same initial states (and the clones on gymnax, by il).

    python benchmarks/minari_gymnasium.py [--episodes 20] [--seeds 4]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np


def scripted_cartpole(obs) -> int:
    return int(np.dot([0.1, 0.5, 1.0, 1.0], obs) > 0)


def greedy(spec, actor, params):
    """The greedy action of an il policy, for one gymnasium observation."""
    import jax

    from il_cli import networks

    act = jax.jit(lambda obs: networks.clip_action(spec, networks.mode(spec.discrete, actor.apply(params, obs))))
    return lambda obs: np.asarray(act(obs.astype(np.float32)))


def il_expert_policy(env_id: str):
    """il's cached expert for `env_id` (trained by its recipe if there is none)."""
    from il_cli.evaluation import load_expert
    from il_cli.experts import get_expert
    from il_cli.ui import UI

    return greedy(*load_expert(str(get_expert(env_id, None, UI(True)).path)))


def gymnasium_return(env_id: str, policy, seeds) -> float:
    """The mean return of `policy` on gymnasium's `env_id`, one episode from each reset seed."""
    import gymnasium as gym

    env, returns = gym.make(env_id), []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def record(dataset_id: str, env_id: str, policy, episodes: int):
    """Record `episodes` episodes of `policy` on gymnasium with Minari's DataCollector."""
    import gymnasium as gym
    import minari

    env = minari.DataCollector(gym.make(env_id))
    for i in range(episodes):
        obs, _ = env.reset(seed=10_000 + i)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            done = terminated or truncated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.create_dataset(dataset_id, algorithm_name="scripted" if "cartpole" in dataset_id else "il PPO expert",
                           author="il benchmarks", description=f"{episodes} episodes on gymnasium's {env_id}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--test-episodes", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", tempfile.mkdtemp(prefix="minari-"))
    from il_cli.evaluation import load_policy
    from il_cli.runs import Run

    test_seeds = range(20_000, 20_000 + args.test_episodes)  # the same initial states for both policies
    rows = []
    for env_id, recipe, make_policy in (("CartPole-v1", "cartpole", lambda: scripted_cartpole),
                                        ("Pendulum-v1", "pendulum", lambda: il_expert_policy("Pendulum-v1"))):
        dataset_id = f"{recipe}/gymnasium-{args.episodes}-v0"
        policy = make_policy()
        t0 = time.perf_counter()
        record(dataset_id, env_id, policy, args.episodes)
        record_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "il_cli", "bc", "--recipe", recipe, "--env", env_id, "--demos",
                               f"minari:{dataset_id}", "--seeds", str(args.seeds), "--eval-episodes", "100", "--json"],
                              capture_output=True, text=True, check=True)
        bc_s = time.perf_counter() - t0
        summary = json.loads(proc.stdout)
        recorded = gymnasium_return(env_id, policy, test_seeds)
        cloned = [gymnasium_return(env_id, greedy(*load_policy(Run(summary["run_dir"]), member=k)), test_seeds)
                  for k in range(args.seeds)]
        on_gymnax = np.mean([m["eval"]["return_mean"] for m in summary["members"]])
        rows.append((env_id, recorded, float(np.mean(cloned)), min(cloned), on_gymnax, record_s, bc_s))
    print(f"{args.episodes} episodes recorded on gymnasium with Minari, cloned by il bc ({args.seeds} seeds); returns "
          f"on gymnasium from the same {args.test_episodes} reset seeds")
    print(f"{'environment':<14}{'recorded policy':>16}{'il bc, mean':>13}{'worst seed':>12}{'ratio':>8}"
          f"{'il bc on gymnax':>17}{'record s':>10}{'bc s':>8}")
    for env_id, recorded, cloned, worst, on_gymnax, record_s, bc_s in rows:
        ratio = cloned / recorded if recorded > 0 else recorded / cloned  # (negative returns: the ratio of costs)
        print(f"{env_id:<14}{recorded:>16.1f}{cloned:>13.1f}{worst:>12.1f}{ratio:>8.3f}{on_gymnax:>17.1f}"
              f"{record_s:>10.1f}{bc_s:>8.1f}")


if __name__ == "__main__":
    main()
