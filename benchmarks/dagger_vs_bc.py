"""DAgger against behavioral cloning at an equal budget of expert labels, over seeds.

    python benchmarks/dagger_vs_bc.py [--env Pendulum] [--budgets 200,400,1000] [--seeds 5]

BC gets budget/H expert episodes (H = episode length), all of them trained on (no held-out
episodes); DAgger gets 5 rounds of budget/5 visited states, capped at the same number of
expert queries with --expert-budget. Each method is one `--seeds` program per budget.
Prints a markdown table of mean ± std over seeds of the 100-episode returns and writes JSON.
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
        b = il("bc", "--env", env_id, "--seeds", args.seeds, "--episodes", max(1, budget // horizon),
               "--holdout-frac", 0)
        d = il("dagger", "--env", env_id, "--seeds", args.seeds, "--rounds", args.rounds,
               "--steps-per-round", per_round, "--num-envs", args.num_envs, "--expert-budget", budget)
        members = {"bc": b["members"] if args.seeds > 1 else [b], "dagger": d["members"] if args.seeds > 1 else [d]}
        bc = [m["eval"]["return_mean"] for m in members["bc"]]
        dagger = [m["eval"]["return_mean"] for m in members["dagger"]]
        labels = {"bc": [m["bc"]["expert_queries"] for m in members["bc"]],
                  "dagger": [m["dagger"]["expert_queries"] for m in members["dagger"]]}
        expert = float(np.mean([m["expert"]["return_mean"] for m in members["dagger"]]))
        results.append({"budget": budget, "bc": bc, "dagger": dagger, "labels": labels, "expert": expert})
        rows.append(f"| {budget} | {np.mean(bc):.1f} ± {np.std(bc):.1f} | "
                    f"{np.mean(dagger):.1f} ± {np.std(dagger):.1f} | {expert:.1f} |")
        print(rows[-1], flush=True)
    print(f"\n{env_id}, {args.seeds} seeds, 100 evaluation episodes each\n")
    print("| expert queries | BC return | DAgger return | expert (paired) |\n|---|---|---|---|")
    print("\n".join(rows))
    with open(args.out, "w") as f:
        json.dump({"env": env_id, "seeds": args.seeds, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
