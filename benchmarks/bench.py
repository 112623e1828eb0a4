"""Throughput benchmarks: python benchmarks/bench.py [--env CartPole-v1] [--out results.json]

Prints a table and writes JSON. Every rate is measured after compilation, as the best of
`--repeats` timed calls; compile times are reported separately.
"""

import argparse
import json
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.algos.bc import make_bc
from il_cli.demos import collect_demos
from il_cli.envs import make_env, resolve_env_id
from il_cli.experts import get_expert
from il_cli.loop import device_description, setup_jax
from il_cli.ui import UI


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def raw_stepping(env_id, num_envs, num_steps, repeats):
    env, env_params, spec = make_env(env_id)
    fn = jax.jit(rollout.make_random_stepper(env, env_params, spec, num_envs, num_steps))
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    compiled = fn.lower(key).compile()
    compile_s = time.perf_counter() - t0
    return num_envs * num_steps / best_time(lambda: compiled(key), repeats), compile_s


def bc_throughput(env_id, batch_size, num_steps, repeats, num_members=1):
    """Samples per second of BC training, over all `num_members` members (one vmapped program)."""
    _, _, spec = make_env(env_id)
    actor = networks.make_actor(spec, (64, 64))
    init, _, train_chunk = make_bc(actor, spec.discrete, batch_size)
    key = jax.random.PRNGKey(0)
    obs = jax.random.normal(key, (num_members, 50_000, *spec.obs_shape))
    actions = jax.random.randint(key, (num_members, 50_000), 0, spec.action_dim)
    data = (obs, actions, jnp.full((num_members,), 50_000))
    keys = jax.random.split(key, num_members)
    state = jax.jit(jax.vmap(init, in_axes=(0, None, None)))(keys, networks.dummy_obs(spec), 1e-3)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(lambda s, d: train_chunk(s, d, num_steps))).lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    samples = num_members * num_steps * batch_size
    return samples / best_time(lambda: compiled(state, data), repeats), compile_s


def il(*args, env=None) -> dict:
    out = subprocess.run([sys.executable, "-m", "il_cli", *map(str, args), "--json"], check=True,
                         capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def time_to(summary: dict, target: float) -> dict:
    """Seconds since process start (imports and compilation included) until a logged
    evaluation return reached `target`, from the run's metrics.jsonl."""
    from il_cli.runs import Run

    for row in Run(summary["run_dir"]).metrics():
        if row.get("return", -np.inf) >= target:
            return {"reached": True, "elapsed_s": row["elapsed_s"], "step": row["step"],
                    **({"timesteps": row["timesteps"]} if "timesteps" in row else {})}
    return {"reached": False, "elapsed_s": None, "step": None}


def time_to_target(env_id, target, seeds):
    """PPO (8 seeds), BC and DAgger on `env_id`: wall time from process start to `target`."""
    out = {"target": target, "ppo": [], "bc": None, "dagger": None}
    for seed in range(seeds):
        s = il("expert", "--recipe", env_id.split("-")[0].lower(), "--env", env_id, "--seed", seed)
        out["ppo"].append({"seed": seed, **time_to(s, target), "compile_s": s["compile"]["backend_s"]})
    s = il("bc", "--env", env_id)
    out["bc"] = {**time_to(s, target), "compile_s": s["compile"]["backend_s"],
                 "labels": s["bc"]["demos"]}
    s = il("dagger", "--env", env_id)
    out["dagger"] = {**time_to(s, target), "compile_s": s["compile"]["backend_s"]}
    if out["dagger"]["reached"]:
        from il_cli.runs import Run

        row = Run(s["run_dir"]).metrics()[out["dagger"]["step"] - 1]
        out["dagger"]["expert_labels"] = row["expert_queries"]
    return out


def compile_cache(env_id):
    """Backend compile seconds of `il bc` with an empty compilation cache, then warm."""
    import os
    import shutil
    import tempfile

    from il_cli.paths import cache_dir

    with tempfile.TemporaryDirectory() as tmp:
        if (cache_dir() / "experts").is_dir():
            shutil.copytree(cache_dir() / "experts", f"{tmp}/experts")
        env = {**os.environ, "IL_CACHE_DIR": tmp}
        cold = il("bc", "--env", env_id, env=env)["compile"]
        warm = il("bc", "--env", env_id, env=env)["compile"]
    return {"cold": cold, "warm": warm, "ratio": warm["backend_s"] / cold["backend_s"],
            "ratio_with_tracing": (warm["backend_s"] + warm["trace_s"]) / (cold["backend_s"] + cold["trace_s"])}


def startup():
    def timed(args):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        return time.perf_counter() - t0

    return {"il_help_s": min(timed([sys.executable, "-m", "il_cli", "--help"]) for _ in range(3)),
            "import_il_cli_s": min(timed([sys.executable, "-c", "import il_cli.cli"]) for _ in range(3))}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=500, help="steps per env for stepping rates")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8, help="PPO seeds for time to target")
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--out", default="benchmarks/results.json")
    args = parser.parse_args()
    setup_jax()
    env_id = resolve_env_id(args.env)
    results = {"device": device_description(), "env": env_id, "raw_steps_per_s": {}}
    rows = []
    for n in (1, 64, 1024, 4096):
        rate, compile_s = raw_stepping(env_id, n, args.steps, args.repeats)
        results["raw_steps_per_s"][n] = rate
        rows.append((f"raw gymnax stepping, {n} envs (steps/s)", rate, f"compile {compile_s:.2f} s"))

    expert = get_expert(env_id, None, UI())
    rates = []
    for i in range(args.repeats):
        *_, stats = collect_demos(expert, 1024, 1024, jax.random.PRNGKey(i))
        rates.append(stats["transitions_per_s"])
    collect_rate = max(rates)
    ratio = collect_rate / results["raw_steps_per_s"][1024]
    results["collect"] = {"transitions_per_s": collect_rate, "ratio_to_raw_1024": ratio,
                          "compile_s": stats["compile_s"]}
    rows.append(("collect with expert, 1024 envs (transitions/s)", collect_rate,
                 f"{ratio:.0%} of raw stepping"))

    bc_rate, bc_compile = bc_throughput(env_id, 256, 2000, args.repeats)
    results["bc"] = {"samples_per_s": bc_rate, "compile_s": bc_compile, "batch_size": 256,
                     "hidden": [64, 64]}
    rows.append(("BC training, 64-64 MLP, batch 256 (samples/s)", bc_rate, f"compile {bc_compile:.2f} s"))

    tt = results["time_to_target"] = time_to_target(env_id, args.target, args.seeds)
    ppo = [r["elapsed_s"] for r in tt["ppo"] if r["reached"]]
    steps = [r["timesteps"] for r in tt["ppo"] if r["reached"]]
    rows.append((f"PPO wall s to {args.target:g}, median of {len(ppo)}/{args.seeds} seeds",
                 float(np.median(ppo)) if ppo else float("nan"),
                 f"max {max(ppo):.1f} s; median {np.median(steps):,.0f} env steps" if ppo else "not reached"))
    for name in ("bc", "dagger"):
        r = tt[name]
        note = f"compile {r['compile_s']:.2f} s"
        if name == "dagger" and r["reached"]:
            note += f"; {r['expert_labels']} expert labels"
        rows.append((f"{name} wall s to {args.target:g} (expert cached)",
                     r["elapsed_s"] if r["reached"] else float("nan"), note))
    cc = results["compile_cache"] = compile_cache(env_id)
    rows.append(("il bc compile s, cold cache", cc["cold"]["backend_s"], f"+ {cc['cold']['trace_s']:.2f} s tracing"))
    rows.append(("il bc compile s, warm cache", cc["warm"]["backend_s"],
                 f"{cc['ratio']:.0%} of cold ({cc['ratio_with_tracing']:.0%} with tracing)"))
    results["startup"] = startup()
    rows.append(("il --help (s)", results["startup"]["il_help_s"], ""))
    rows.append(("import il_cli.cli (s)", results["startup"]["import_il_cli_s"], ""))

    print(f"device: {results['device']}   env: {env_id}")
    for name, value, note in rows:
        number = f"{value:>14,.3f}" if value < 100 else f"{value:>14,.0f}"
        print(f"{name:<52} {number}  {note}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
