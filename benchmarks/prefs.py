"""Learning from preferences: return against the teacher's β and against the number of
preferences, for `--param q` (Q, π ∝ exp(Q/α)) and `--param policy` (log π, CPL/DPO-style).

    python benchmarks/prefs.py [--env Pendulum] [--seeds 8] [--betas 0.03,0.1,0.3,1,3]
                               [--num-prefs 100,300,1000,5000]

The β table uses the Boltzmann (`noisy`) teacher at --beta-prefs pairs, one vmapped
`--sweep teacher_beta=... --seeds N` program per parameterisation; the count table uses the
oracle teacher, one `--seeds N` program per count (a count is a shape). Prints markdown
tables of the mean return over seeds with a 95% bootstrap CI of the mean, and writes JSON.
The final 100-episode evaluation is the default one; only the logged curve is coarser.
"""

import argparse
import json
import subprocess
import sys
import tempfile

import numpy as np

PARAMS = ("q", "policy")


def il(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "il_cli", *map(str, args), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def mean_ci(values, num_resamples: int = 2000, seed: int = 0) -> dict:
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (num_resamples, len(values)))].mean(axis=1)
    return {"mean": float(values.mean()), "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
            "n": int(len(values))}


def cell_returns(summary: dict) -> dict:
    """{cell: [member returns]} of a run with members."""
    out = {}
    for m in summary["members"]:
        out.setdefault(m["cell"], []).append(m["eval"]["return_mean"])
    return out


def fmt(x: dict) -> str:
    return f"{x['mean']:.1f} [{x['ci95'][0]:.1f}, {x['ci95'][1]:.1f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Pendulum")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--betas", default="0.03,0.1,0.3,1,3")
    parser.add_argument("--beta-prefs", type=int, default=1000)
    parser.add_argument("--num-prefs", default="100,300,1000,5000")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    betas = [float(b) for b in args.betas.split(",")]
    counts = [int(n) for n in args.num_prefs.split(",")]
    recipe = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    recipe.write("num_chunks = 2\n")  # two logged evaluations per run instead of eight
    recipe.close()
    common = ("--env", args.env, "--seeds", args.seeds, "--recipe", recipe.name)
    results = {"env": args.env, "seeds": args.seeds, "beta": {}, "num_prefs": {}}
    expert = None
    for param in PARAMS:
        s = il("prefs", *common, "--param", param, "--teacher", "noisy", "--num-prefs", args.beta_prefs,
               "--sweep", "teacher_beta=" + ",".join(map(str, betas)))
        expert = s["members"][0]["expert"]["return_mean"]
        returns = cell_returns(s)
        results["beta"][param] = {b: mean_ci(returns[i]) for i, b in enumerate(betas)}
        results["beta"][param]["wall_s"] = s["wall_s"]
        for n in counts:
            s = il("prefs", *common, "--param", param, "--num-prefs", n)
            results["num_prefs"].setdefault(param, {})[n] = {
                **mean_ci([m["eval"]["return_mean"] for m in s["members"]]),
                "accuracy": float(np.mean([m["prefs"]["preference_accuracy"] for m in s["members"]])),
                "wall_s": s["wall_s"]}
    results["expert_return"] = expert
    print(f"{args.env}, {args.seeds} seeds per cell; mean return [95% bootstrap CI of the mean]; "
          f"expert {expert:.1f}\n")
    print(f"noisy teacher, {args.beta_prefs} preferences\n")
    print("| teacher β | --param q | --param policy |\n|---|---|---|")
    for b in betas:
        print(f"| {b:g} | {fmt(results['beta']['q'][b])} | {fmt(results['beta']['policy'][b])} |")
    print("\noracle teacher\n")
    print("| preferences | --param q | --param policy |\n|---|---|---|")
    for n in counts:
        print(f"| {n} | {fmt(results['num_prefs']['q'][n])} | {fmt(results['num_prefs']['policy'][n])} |")
    out = args.out or f"benchmarks/prefs-{args.env.lower()}.json"
    with open(out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
