"""Behaviour kept, bit for bit: every training command's summary.json at tiny settings and a
fixed seed, recorded before a change and compared after it.

    python benchmarks/same_summaries.py record before.json     # on the code before the change
    python benchmarks/same_summaries.py compare before.json    # after it: every figure equal, or listed

Wall times, compile times and throughputs (anything measured in seconds) and the run
directories' paths are left out; every other number must be identical. Runs in a private
cache and runs directory (a few minutes on a 2-core CPU, most of it compiling).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TIMING = ("wall_s", "compile", "device", "versions", "compile_s", "prepare_s", "generate_s", "samples_per_s",
          "steps_per_s", "answers_per_s", "transitions_per_s", "elapsed_s")
EXPERT = ("expert", "--env", "CartPole", "--total-timesteps", "8192", "--num-envs", "16", "--eval-episodes", "8",
          "--seed", "3")
TEXT = ("--task", "text", "--pretrain-steps", "100", "--sft-steps", "50", "--rm-steps", "50", "--num-prompts", "32",
        "--updates", "2", "--dpo-steps", "2", "--d-model", "32", "--rm-d-model", "32")
COMMANDS = {  # name: the command line after `il` (EXPERT_RUN stands for the expert's run directory)
    "expert": EXPERT,
    "collect": ("collect", "--expert", "EXPERT_RUN", "--episodes", "3"),
    "collect-prefs": ("collect", "--expert", "EXPERT_RUN", "--prefs", "200", "--teacher", "noisy"),
    "bc": ("bc", "--expert", "EXPERT_RUN", "--episodes", "3", "--num-steps", "200", "--eval-episodes", "8",
           "--seeds", "2", "--sweep", "lr=1e-3,3e-3"),
    "dagger": ("dagger", "--expert", "EXPERT_RUN", "--rounds", "3", "--steps-per-round", "200", "--num-envs", "4",
               "--train-steps", "50", "--eval-episodes", "8", "--label-noise", "0.1"),
    "prefs": ("prefs", "--expert", "EXPERT_RUN", "--num-prefs", "300", "--num-steps", "200", "--eval-episodes", "8"),
    "rlhf": ("rlhf", "--expert", "EXPERT_RUN", "--demo-episodes", "2", "--sft-steps", "100", "--num-prompts", "32",
             "--rm-steps", "50", "--total-timesteps", "4096", "--eval-episodes", "8"),
    "rlhf-dpo": ("rlhf", "--expert", "EXPERT_RUN", "--demo-episodes", "2", "--sft-steps", "100", "--num-prompts",
                 "32", "--method", "dpo", "--dpo-steps", "20", "--eval-episodes", "8"),
    "rlhf-text": ("rlhf", *TEXT, "--seeds", "2"),
    "compounding": ("compounding", "--env", "Rail", "--horizons", "8,16", "--demos", "2", "--seeds", "2",
                    "--eval-episodes", "8", "--train-steps", "50"),
}


def strip(tree, root: str):
    """The summary without timings, its run paths made relative to the runs directory."""
    if isinstance(tree, dict):
        return {k: strip(v, root) for k, v in tree.items() if k not in TIMING}
    if isinstance(tree, list):
        return [strip(v, root) for v in tree]
    if isinstance(tree, str) and root in tree:
        return tree.replace(root, "RUNS")
    return tree


def record() -> dict:
    work = Path(tempfile.mkdtemp(prefix="il-same-"))
    env = {**os.environ, "IL_CACHE_DIR": str(work / "cache"), "IL_RUNS_DIR": str(work / "runs")}
    out, expert = {}, None
    for name, args in COMMANDS.items():
        args = [str(expert) if a == "EXPERT_RUN" else a for a in args]
        proc = subprocess.run([sys.executable, "-m", "il_cli", *args, "--run-dir", str(work / "runs" / name),
                               "--json"], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"il {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        summary = json.loads(proc.stdout)
        expert = expert or summary["run_dir"]
        out[name] = strip(summary, str(work / "runs"))
        print(f"{name}: recorded", flush=True)
    return out


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                yield f"{path}/{k}: {'only after' if k in b else 'only before'}"
            else:
                yield from differences(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: {a!r} -> {b!r}"


def main():
    what, path = sys.argv[1], Path(sys.argv[2])
    if what == "record":
        path.write_text(json.dumps(record(), indent=1))
        return
    before, after = json.loads(path.read_text()), record()
    found = [line for name in before for line in differences(before[name], after.get(name), name)]
    print("\n".join(found) or "every summary identical, bit for bit (timings and paths aside)")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
