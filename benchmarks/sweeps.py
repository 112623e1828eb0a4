"""Seeds as one vmapped program against one process per seed, and training throughput of
many members against one.

    python benchmarks/sweeps.py [--env CartPole] [--seeds 8] [--members 32]

Wall times are whole processes (imports, compilation, demonstrations, evaluation and
checkpoints included), the expert cached beforehand. Prints a table; writes JSON.
"""

import argparse
import json
import subprocess
import sys
import time

from bench import bc_throughput

from il_cli.envs import resolve_env_id
from il_cli.experts import get_expert
from il_cli.loop import device_description, setup_jax
from il_cli.ui import UI


def wall(*args) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "il_cli", *map(str, args), "--json"], check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="CartPole")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/sweeps.json")
    args = parser.parse_args()
    setup_jax()
    env_id = resolve_env_id(args.env)
    get_expert(env_id, None, UI())
    results = {"device": device_description(), "env": env_id, "seeds": args.seeds}
    rows = []
    for command in ("bc", "dagger"):
        wall(command, "--env", env_id)  # warm the compilation cache for both, as a user's second run
        wall(command, "--env", env_id, "--seeds", args.seeds)
        separate = [wall(command, "--env", env_id, "--seed", s) for s in range(args.seeds)]
        together = wall(command, "--env", env_id, "--seeds", args.seeds)
        results[command] = {"separate_s": separate, "together_s": together,
                            "ratio": together / sum(separate)}
        rows.append((f"il {command} --seeds {args.seeds} vs {args.seeds} processes (wall s)",
                     f"{together:.1f} vs {sum(separate):.1f}", f"{together / sum(separate):.0%}"))
    one, _ = bc_throughput(env_id, 256, 2000, args.repeats)
    many, _ = bc_throughput(env_id, 256, 2000, args.repeats, num_members=args.members)
    results["bc_samples_per_s"] = {"1": one, str(args.members): many, "ratio": many / one}
    rows.append((f"BC samples/s, {args.members} members vs 1 (aggregate)", f"{many:,.0f} vs {one:,.0f}",
                 f"{many / one:.0%}"))
    print(f"device: {results['device']}   env: {env_id}")
    for name, value, ratio in rows:
        print(f"{name:<52} {value:>26}  {ratio}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
