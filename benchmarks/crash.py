"""Crash and fuzz benchmark: SIGKILL at random moments, then --resume; hostile input.

    python benchmarks/crash.py                      # 5 kill points each for bc, dagger, expert; 1000+ examples
    python benchmarks/crash.py --points 20 --commands bc --examples 0
    python benchmarks/crash.py --known-bugs         # let the properties draw the inputs of known bugs too

Per command (tests/reliability.py's KILLABLE): one uninterrupted run, then --points runs
killed with SIGKILL at moments drawn from random.Random(f"{command}:{seed}:{point}") and
resumed to the end (odd points kill the resumed process once more); each is compared with the
uninterrupted run: final parameters bit for bit, the summary's evaluation, the logged training
figures, no step logged twice. Then the property checks of the same module, --examples in all.
Prints a table (and writes --out as JSON). Uses tests/reliability.py's checks, so the benchmark and
the tests check the same things.
"""

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import reliability as rel  # noqa: E402  (with helpers: IL_RUNS_DIR, IL_CACHE_DIR in a private session dir)
from helpers import il, il_json  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def crash_command(name, args, expert, points, seed, work: Path) -> dict:
    started = time.time()
    args = rel.with_expert(args, expert)
    timing = rel.run_timed(args, work / name / "straight")
    experiments = []
    for point in range(points):
        run_dir = work / name / f"killed-{point}"
        rng = random.Random(f"{name}:{seed}:{point}")
        record = {"point": point}
        try:
            record["kills"] = rel.kill_and_resume(args, run_dir, rng, timing, kills=1 + point % 2)
            record["differences"] = rel.differences(run_dir, work / name / "straight")
        except Exception as exc:  # a failed check is a result, not the end of the benchmark
            record["error"] = "".join(traceback.format_exception_only(exc)).strip()[-500:]
        record["tmp_dirs_left"] = sorted(p.name for p in (run_dir / "checkpoints").iterdir()
                                         if not p.name.isdigit()) if (run_dir / "checkpoints").is_dir() else []
        experiments.append(record)
        ok = "error" not in record and record["differences"] == []
        print(f"  {name} point {point}: {'bit-exact' if ok else 'DIFFERS'} "
              f"{[(k['where'], k['delay_s'], k['landed']) for k in record.get('kills', [])]}"
              f"{'' if ok else ' ' + str(record.get('error') or record['differences'])}", flush=True)
    return {"command": name, "experiments": experiments, "wall_s": round(time.time() - started, 1),
            "uninterrupted": timing}


def counted(check, count: list):
    def body(x):
        count[0] += 1
        check(x)
    return body


def property_checks(examples: int, source_run: Path) -> list[dict]:
    """The properties of tests/reliability.py, `examples` in all (shares as in the default test run)."""
    cases = [("demos file", rel.demo_files(), rel.check_demos_file, 0.2),
             ("flawed data file", rel.FLAWED_FILES, rel.check_flawed_file, 0.2),
             ("recipe", rel.recipes(), rel.check_recipe, 0.2),
             ("option values", rel.option_argvs(), rel.check_options, 0.2),
             ("zero sizes", rel.bad_sizes(), rel.check_bad_size, 0.1),
             ("torn metrics", st.tuples(rel.FLAT_ROWS, st.floats(0, 1)), lambda x: rel.check_torn_metrics(*x), 0.07),
             ("corrupt checkpoint", rel.corruptions(), lambda c: rel.check_corrupt_checkpoint(source_run, c), 0.03)]
    out = []
    for name, strategy, check, share in cases:
        n = max(1, round(examples * share))
        count = [0]
        test = settings(max_examples=n, **rel.PROPERTY)(given(strategy)(counted(check, count)))
        started = time.time()
        try:
            test()
            result = "ok"
        except Exception as exc:
            result = "FAIL " + str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        out.append({"property": name, "examples": count[0], "result": result,
                    "wall_s": round(time.time() - started, 1)})
        print(f"  {name}: {count[0]} examples, {result}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5, help="kill experiments per command")
    parser.add_argument("--commands", default="bc,dagger,expert",
                        help=f"comma-separated, from {', '.join(name for name, _ in rel.KILLABLE)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=1000, help="property examples in all (0: none)")
    parser.add_argument("--expert", help="a CartPole expert run (default: train one, ~20 s)")
    parser.add_argument("--known-bugs", action="store_true",
                        help="also draw the inputs of the known bugs (tests/reliability.py KNOWN_BUGS)")
    parser.add_argument("--out", help="write the results as JSON here")
    opts = parser.parse_args()
    killable = dict(rel.KILLABLE)
    commands = [c for c in opts.commands.split(",") if c]
    unknown = [c for c in commands if c not in killable]
    if unknown:
        parser.error(f"unknown command(s) {', '.join(unknown)}; choose from {', '.join(killable)}")
    if opts.known_bugs:
        rel.KNOWN_BUGS.clear()

    work = Path(tempfile.mkdtemp(prefix="il-crash-"))
    started = time.time()
    expert = opts.expert or il_json("expert", "--recipe", "cartpole", "--run-dir", work / "expert")["run_dir"]
    print(f"expert: {expert}; work: {work}", flush=True)
    results = [crash_command(c, killable[c], expert, opts.points, opts.seed, work) for c in commands]
    properties = []
    if opts.examples:
        source = work / "finished-bc"
        il("bc", "--expert", expert, "--episodes", "2", "--num-steps", "200", "--eval-episodes", "4",
           "--run-dir", source)
        properties = property_checks(opts.examples, source)

    print()
    print(f"{'command':<10} {'kill points':>11} {'landed':>7} {'resumes bit-exact':>18} {'wall s':>8}")
    for r in results:
        kills = [k for e in r["experiments"] for k in e.get("kills", [])]
        exact = sum("error" not in e and e["differences"] == [] for e in r["experiments"])
        fraction = f"{exact}/{len(r['experiments'])}"
        print(f"{r['command']:<10} {len(kills):>11} {sum(k['landed'] for k in kills):>7} "
              f"{fraction:>18} {r['wall_s']:>8.1f}")
    if properties:
        print()
        print(f"{'property':<20} {'examples':>9} {'wall s':>8}  result")
        for p in properties:
            print(f"{p['property']:<20} {p['examples']:>9} {p['wall_s']:>8.1f}  {p['result']}")
        print(f"{'all':<20} {sum(p['examples'] for p in properties):>9} "
              f"{sum(p['wall_s'] for p in properties):>8.1f}")
    print(f"\ntotal wall time {time.time() - started:.0f} s")
    if opts.out:
        Path(opts.out).write_text(json.dumps({"commands": results, "properties": properties}, indent=2) + "\n")
    failed = any("error" in e or e["differences"] for r in results for e in r["experiments"]) or \
        any(p["result"] != "ok" for p in properties)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
