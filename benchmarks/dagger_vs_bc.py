"""DAgger against behavioral cloning at an equal budget of expert labels, over seeds.

    python benchmarks/dagger_vs_bc.py [--env Pendulum] [--budgets 200,400,1000] [--seeds 5]

BC gets budget/H expert episodes (H = episode length), all of them trained on (no held-out
episodes); DAgger gets 5 rounds of budget/5 visited states, capped at the same number of
expert queries with --expert-budget. Prints a
markdown table of mean ± std returns (100 evaluation episodes each) and writes JSON.
"""

import argparse
import json
import subprocess
import sys

import numpy as np


def il(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "il_cli", *map(str, args), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Pendulum")
    parser.add_argument("--budgets", default="200,400,1000")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/dagger_vs_bc.json")
    args = parser.parse_args()
    from il_cli.envs import make_env, resolve_env_id

    env_id = resolve_env_id(args.env)
    horizon = make_env(env_id)[2].max_steps
    rows, results = [], []
    for budget in map(int, args.budgets.split(",")):
        per_round = max(args.num_envs, budget // args.rounds // args.num_envs * args.num_envs)
        bc, dagger, labels = [], [], {"bc": [], "dagger": []}
        for seed in range(args.seeds):
            b = il("bc", "--env", env_id, "--seed", seed, "--episodes", max(1, budget // horizon),
                   "--holdout-frac", 0)
            d = il("dagger", "--env", env_id, "--seed", seed, "--rounds", args.rounds,
                   "--steps-per-round", per_round, "--num-envs", args.num_envs,
                   "--expert-budget", budget)
            bc.append(b["eval"]["return_mean"])
            dagger.append(d["eval"]["return_mean"])
            labels["bc"].append(b["bc"]["expert_queries"])
            labels["dagger"].append(d["dagger"]["expert_queries"])
        results.append({"budget": budget, "bc": bc, "dagger": dagger, "labels": labels,
                        "expert": d["expert"]["return_mean"]})
        rows.append(f"| {budget} | {np.mean(bc):.1f} ± {np.std(bc):.1f} | "
                    f"{np.mean(dagger):.1f} ± {np.std(dagger):.1f} | {d['expert']['return_mean']:.1f} |")
        print(rows[-1], flush=True)
    print(f"\n{env_id}, {args.seeds} seeds, 100 evaluation episodes each\n")
    print("| expert labels | BC return | DAgger return | expert |\n|---|---|---|---|")
    print("\n".join(rows))
    with open(args.out, "w") as f:
        json.dump({"env": env_id, "seeds": args.seeds, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
