"""The checks of il's reliability, shared by tests/test_reliability.py and benchmarks/crash.py
(which runs them at many more points): SIGKILL a run at a random moment and resume it
(KILLABLE, kill_and_resume, differences), and the property strategies with their checks
(hostile datasets, recipes, option values, corrupt checkpoints, torn metrics logs, flawed
data files, zero or negative sizes).

Known bugs of the library are kept out of the property strategies while KNOWN_BUGS names
them; each has an explicit regression test marked xfail(strict=True) in test_reliability:
when the bug is fixed that test passes, pytest reports it as failing, and its entry here and
its marker go.
"""

import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import typing
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_error_line, final_params, il, invoke
from hypothesis import HealthCheck
from hypothesis import strategies as st

# --- SIGKILL at random moments, then --resume ---------------------------------------------

# (name, args): every command whose runs can be killed and resumed. A command joins by being
# listed; "--expert" is added for every command but `expert`.


KILLABLE = [
    ("bc", ("bc", "--env", "CartPole", "--episodes", "5", "--num-steps", "4000", "--seeds", "2")),
    ("dagger", ("dagger", "--rounds", "8", "--steps-per-round", "2000", "--train-steps", "500",
                "--eval-episodes", "10")),
    ("expert", ("expert", "--env", "CartPole", "--total-timesteps", "131072", "--eval-episodes", "10")),
    ("prefs", ("prefs", "--env", "CartPole", "--num-steps", "4000", "--seeds", "2", "--eval-episodes", "10")),
    ("gail", ("gail", "--env", "CartPole", "--episodes", "2", "--total-timesteps", "65536", "--seeds", "2",
              "--eval-episodes", "10")),
    ("rlhf-dpo", ("rlhf", "--method", "dpo", "--demo-episodes", "2", "--sft-steps", "300", "--num-prompts", "32",
                  "--segment-length", "50", "--dpo-steps", "400", "--iterations", "2", "--eval-episodes", "10")),
    ("rlhf-text", ("rlhf", "--task", "text", "--pretrain-steps", "300", "--sft-steps", "100", "--rm-steps", "100",
                   "--num-prompts", "64", "--updates", "12", "--d-model", "32", "--rm-d-model", "32")),
]


SLOW_COMMANDS = {"dagger", "expert", "prefs", "rlhf-dpo", "rlhf-text", "gail"}  # killed only in the slow run (bc, in the
# default run, covers the chunk loop, checkpoints and resume that every command shares)


SLOW_SEEDS = (1, 2, 3)  # more kill points per command in the slow run (two kills each)


TIMING_KEYS = ("elapsed_s", "wall_s")  # metrics that measure time, not training


def with_expert(args, expert):
    return tuple(args) if args[0] == "expert" or "text" in args else (*args, "--expert", str(expert))


def launch(args, log: Path):
    """`python -m il_cli ARGS` in the background, its stderr in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "il_cli", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=err)


def checkpoint_steps(run_dir) -> list[int]:
    """The finished checkpoints of a run (Orbax renames a step directory into place whole)."""
    ckpt = Path(run_dir) / "checkpoints"
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


def wait_for(predicate, proc, timeout=300) -> bool:
    """Poll until `predicate()`; False if `proc` exited first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.02)
    raise TimeoutError("nothing happened in time")


def sleep_unless_exited(proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        time.sleep(min(0.01, max(0.0, deadline - time.time())))


def run_timed(args, run_dir) -> dict:
    """Run uninterrupted; what kill_and_resume needs to place its kills: the seconds from launch
    to the first checkpoint, every step the run checkpointed (one per logged chunk) and the
    median seconds between two of them."""
    from il_cli.runs import Run

    start = time.time()
    proc = launch((*args, "--run-dir", run_dir), Path(f"{run_dir}.log"))
    wait_for(lambda: checkpoint_steps(run_dir), proc)
    first = time.time() - start
    code = proc.wait(timeout=600)
    assert code == 0, Path(f"{run_dir}.log").read_text()[-3000:]
    rows = Run(run_dir).metrics()
    times = sorted({r["elapsed_s"] for r in rows})
    return {"first_checkpoint_s": first, "total_s": time.time() - start, "steps": sorted({r["step"] for r in rows}),
            "chunk_s": float(np.median(np.diff(times))) if len(times) > 1 else 1.0}


def kill_and_resume(args, run_dir, rng: random.Random, timing: dict, kills: int = 1) -> list[dict]:
    """SIGKILL a run `kills` times at moments drawn from `rng`, then resume it to the end.

    The first kill comes a drawn fraction of a chunk's time after a drawn checkpoint of the
    run's (timing["steps"]) exists: while a chunk trains and the previous checkpoint is being
    written, or, after the last one, while the run evaluates and writes its summary. Each later
    kill hits the resumed process, either while it starts (imports, restores, rewrites its
    metrics: a drawn fraction of the time the uninterrupted run took to its first checkpoint)
    or a drawn fraction of a chunk after its next checkpoint. Returns one record per kill:
    whether it landed (the process was still running), where, and the checkpoints then."""
    run_dir = Path(run_dir)
    command = args[0]
    records = []
    proc = launch((*args, "--run-dir", run_dir), Path(f"{run_dir}.log"))
    for k in range(kills):
        if k == 0:
            target = rng.choice(timing["steps"])
            where = f"after checkpoint {target}"
            wait_for(lambda: max(checkpoint_steps(run_dir), default=-1) >= target, proc)
            delay = rng.random() * timing["chunk_s"]
        else:
            before = max(checkpoint_steps(run_dir), default=-1)
            proc = launch((command, "--resume", run_dir), Path(f"{run_dir}.log{k}"))
            if rng.random() < 0.25:
                where, delay = "while resuming", rng.random() * timing["first_checkpoint_s"]
            else:
                where = f"after the checkpoint after {before}"
                wait_for(lambda: max(checkpoint_steps(run_dir), default=-1) > before, proc)
                delay = rng.random() * timing["chunk_s"]
        sleep_unless_exited(proc, delay)
        landed = proc.poll() is None
        if landed:
            os.kill(proc.pid, signal.SIGKILL)
        code = proc.wait(timeout=600)
        records.append({"landed": landed, "where": where, "delay_s": round(delay, 3), "exit": code,
                        "pid": proc.pid, "checkpoints": checkpoint_steps(run_dir),
                        "partial": partial_checkpoints(run_dir)})
        assert landed or code == 0, f"exit {code} before the kill: {records}"
        if landed:
            assert code == -signal.SIGKILL
            assert_intact(run_dir)
    final = il(command, "--resume", run_dir)
    assert "Traceback" not in final.stderr
    return records


def partial_checkpoints(run_dir) -> list[int]:
    """Step directories without their metadata: an old checkpoint whose deletion (Orbax keeps
    the newest two) a kill interrupted."""
    return [s for s in checkpoint_steps(run_dir)
            if not (Path(run_dir) / "checkpoints" / str(s) / "_CHECKPOINT_METADATA").is_file()]


def assert_intact(run_dir):
    """What a crash may leave: whole JSON files, a whole latest checkpoint (an older one may be
    half deleted), metrics torn at most in their last line."""
    from il_cli.runs import Run

    run_dir = Path(run_dir)
    json.loads((run_dir / "config.json").read_text())
    if (run_dir / "summary.json").exists():
        json.loads((run_dir / "summary.json").read_text())
    steps = checkpoint_steps(run_dir)
    if steps:
        assert steps[-1] not in partial_checkpoints(run_dir), f"checkpoint {steps[-1]} is not whole"
    Run(run_dir).metrics()  # parses (no checkpoint manager is opened: the test only looks)


def training_rows(run_dir) -> list[dict]:
    from il_cli.runs import Run

    return [{k: v for k, v in row.items() if k not in TIMING_KEYS and not k.endswith("_per_s")}
            for row in Run(run_dir).metrics()]


def differences(resumed, straight) -> list[str]:
    """How a resumed run differs from an uninterrupted one ([] when it does not): final
    parameters bit for bit, the summary's evaluation, the logged training figures, and no
    step logged twice."""
    import jax

    from il_cli.runs import Run

    out = []
    a, b = final_params(resumed), final_params(straight)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    if jax.tree.structure(a) != jax.tree.structure(b):
        out.append("parameter trees differ in structure")
    else:
        for i, (x, y) in enumerate(zip(leaves_a, leaves_b)):
            if np.asarray(x).tobytes() != np.asarray(y).tobytes() or np.shape(x) != np.shape(y):
                out.append(f"parameter leaf {i} differs")
    sa, sb = Run(resumed).summary, Run(straight).summary
    if sa is None:
        out.append("the resumed run has no summary")
    elif sa["eval"] != sb["eval"]:
        out.append(f"eval differs: {sa['eval']} vs {sb['eval']}")
    rows = training_rows(resumed)
    keys = [(r["step"], r.get("member", 0)) for r in rows]
    if len(keys) != len(set(keys)):
        out.append("a step is logged twice in metrics.jsonl")
    if json.dumps(rows, sort_keys=True) != json.dumps(training_rows(straight), sort_keys=True):
        out.append("the logged training figures differ")
    return out


def killable_params():
    params = []
    for name, args in KILLABLE:
        marks = [pytest.mark.slow] if name in SLOW_COMMANDS else []
        params.append(pytest.param(name, args, 0, 1, marks=marks, id=f"{name}-seed0"))
        params += [pytest.param(name, args, seed, 2, marks=[pytest.mark.slow], id=f"{name}-seed{seed}-twice")
                   for seed in SLOW_SEEDS]
    return params


KNOWN_BUGS: set[str] = set()


PROPERTY = dict(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


PICKLE_MARKER = Path(tempfile.gettempdir()) / f"il-test-unpickled-{os.getpid()}"


class PickleBomb:
    """Unpickling it creates PICKLE_MARKER: proof that a file was loaded with pickle."""

    def __reduce__(self):
        return (open, (str(PICKLE_MARKER), "w"))


# Datasets: raw bytes, pickles, npz archives with wrong keys, dtypes, headers, truncated.


DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool", "complex64", "<U3", "S2", "object")


DATASET_KEYS = ("obs", "actions", "episode_returns", "episode_lengths", "header")


@st.composite
def json_headers(draw) -> bytes:
    kind = draw(st.sampled_from(["object", "object", "object", "other-json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    text = st.text(max_size=8)
    if "line-break-in-message" in KNOWN_BUGS:
        text = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=8)
    scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
    if kind == "other-json":
        return json.dumps(draw(scalar | st.lists(scalar, max_size=3))).encode()
    header = draw(st.fixed_dictionaries({}, optional={
        "schema_version": st.sampled_from([1, 2, 3]) | scalar,
        "kind": st.sampled_from(["preferences", "demonstrations"]) | scalar,
        "count": scalar, "episodes": scalar, "return_mean": scalar,
        "obs_shape": st.lists(st.integers(-2, 5), max_size=3),
    }))
    if draw(st.integers(0, 3)):
        header["env_id"] = draw(st.sampled_from(["CartPole-v1", "Pendulum-v1", "Rail-v0"]) | scalar)
    header.update(draw(st.dictionaries(st.text(max_size=5), scalar, max_size=2)))
    return json.dumps(header).encode()


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    if dtype == "object":
        a = np.empty(shape, dtype=object)
        a.fill(PickleBomb())  # np.savez pickles it; a loader using pickle would run it
        return a
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = draw(st.binary(min_size=size, max_size=size))
    return np.frombuffer(raw, dtype=dtype).reshape(shape) if size else np.zeros(shape, dtype)


@st.composite
def demo_files(draw) -> tuple[str, bytes]:
    """(kind, the file's bytes)."""
    kinds = ["bytes", "pickle", "npz", "npz-plausible", "npz-plausible", "npz-truncated", "npy"]
    kind = draw(st.sampled_from(kinds))
    smallest = 1 if "empty-dataset" in KNOWN_BUGS else 0
    if kind == "bytes":
        return kind, draw(st.binary(min_size=smallest, max_size=512))
    if kind == "pickle":
        return kind, pickle.dumps(draw(st.sampled_from([PickleBomb(), {"obs": PickleBomb()}, [1, 2]])))
    buffer = io.BytesIO()
    if kind == "npy":
        np.save(buffer, draw(arrays()))
        return kind, buffer.getvalue()
    if kind == "npz-plausible":  # every array a dataset has, of random dtypes and shapes
        names = list(DATASET_KEYS[:draw(st.sampled_from([2, 4, 5, 5]))]) + ["header"]
    else:
        names = draw(st.lists(st.sampled_from(DATASET_KEYS) | st.text("abxyz_", min_size=1, max_size=5),
                              unique=True, max_size=6))
    content = {}
    for name in names:
        if name == "header" and (kind == "npz-plausible" or draw(st.booleans())):
            content[name] = np.frombuffer(draw(json_headers()), dtype=np.uint8)
        elif (name == "header" and "header-0d-int" in KNOWN_BUGS) or (name == "actions" and "actions-0d" in KNOWN_BUGS):
            content[name] = draw(arrays().filter(lambda a: a.ndim > 0))
        else:
            content[name] = draw(arrays())
    np.savez(buffer, **content)
    data = buffer.getvalue()
    if kind == "npz-truncated":
        data = data[:draw(st.integers(smallest, max(smallest, len(data) - 1)))]
    return kind, data


def check_demos_file(sample):
    """`il bc --demos FILE` refuses anything that is not a dataset in one line, exit 2, and
    never unpickles. (A file that is a valid dataset passes the dataset check; the --expert
    that does not exist then stops the command before JAX.)"""
    kind, data = sample
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demos.npz"
        path.write_bytes(data)
        PICKLE_MARKER.unlink(missing_ok=True)
        code, err = invoke(["bc", "--demos", path, "--expert", Path(tmp) / "no-expert"])
        assert not PICKLE_MARKER.exists(), "a dataset was loaded with pickle"
        assert_one_error_line(code, err)
        assert "allow_pickle" not in err and "unsafe" not in err, err  # never advice to unpickle
        if kind == "pickle":
            assert_one_error_line(code, err, "not an il dataset", "pickle")
        if kind in ("bytes", "npy") and not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            assert_one_error_line(code, err, "not an il dataset", "not an .npz archive")


# Recipes: TOML from known and unknown keys with values of every TOML type.


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() and c.isascii() or c in "-_" for c in key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value > 0 else "-inf") if abs(value) == float("inf") else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return value.isoformat()  # a date or a time


def recipe_keys():
    """(bc's keys, every command's keys, the sections)."""
    from il_cli.config import CONFIGS
    from il_cli.options import fields_of

    return (sorted(fields_of(CONFIGS["bc"])), sorted(set().union(*(fields_of(c) for c in CONFIGS.values()))),
            sorted(CONFIGS))


SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x7f"), max_size=12)


TOML_SCALARS = (st.integers(-2**63, 2**63 - 1) | st.floats() | SAFE_TEXT | st.booleans() | st.dates()
                | st.sampled_from(["CartPole", "Pendulum-v1", "tanh", "mode", "sample", "lr=1e-3,3e-4", "64,64",
                                   "cartpole", "q", "dpo", "oracle"]))


TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=3),
                           max_leaves=6)


@st.composite
def recipes(draw) -> str:
    bc_keys, keys, commands = recipe_keys()
    key = st.one_of(st.sampled_from(bc_keys), st.sampled_from(bc_keys), st.sampled_from(bc_keys),
                    st.sampled_from(keys), st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,10}", fullmatch=True))

    def table():
        names = draw(st.lists(key, unique=True, max_size=4))
        return "".join(f"{_toml_key(n)} = {_toml_value(draw(TOML_VALUES))}\n" for n in names)

    text = table()
    for section in draw(st.lists(st.sampled_from(commands) | st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                                 unique=True, max_size=3)):
        text += f"[{section}]\n" + table()
    if draw(st.integers(0, 9)) == 0:  # now and then not TOML at all
        text += draw(st.sampled_from(["= 3\n", "[bc\n", "x = \n", "a = 1\na = 2\n", "\x00"]))
    return text


def check_recipe(text: str):
    """`il bc --recipe FILE --episodes 0`: whatever the recipe holds, one line, exit 2 (the
    invalid flag makes sure nothing trains)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.toml"
        path.write_text(text, encoding="utf-8")
        code, err = invoke(["bc", "--recipe", path, "--episodes", "0"])
        assert_one_error_line(code, err)


# Option values: every numeric option of the training commands, with hostile values, beside
# one option that is always refused before JAX (so nothing ever trains).


TRAINING_COMMANDS = ("bc", "collect", "compounding", "dagger", "eval", "expert", "prefs", "rlhf", "gail", "airl")


GUARDS = {"collect": ["--teacher", "bogus"], "eval": ["/nonexistent/il-run"]}  # default: --eval-policy bogus


def numeric_options() -> dict[str, list[str]]:
    """{command: its int and float options}, read from the commands' signatures."""
    import inspect

    from il_cli.cli import app

    out = {}
    for info in app.registered_commands:
        fn = info.callback
        name = info.name or fn.__name__.rstrip("_")
        if name not in TRAINING_COMMANDS:
            continue
        options = []
        for param, info in inspect.signature(fn).parameters.items():
            hint = info.annotation
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            base, *extras = typing.get_args(hint)
            if typing.get_origin(base) in (typing.Union, types.UnionType):
                base = next(a for a in typing.get_args(base) if a is not type(None))
            decls = [d for e in extras for d in option_decls(e) if d.startswith("--")]
            if base in (int, float) and type(extras[0]).__name__ == "OptionInfo":
                options.append(decls[0] if decls else "--" + param.replace("_", "-"))
        out[name] = options
    return out


def option_decls(info) -> list:
    """An Annotated typer.Option's names: Typer takes a first argument that looks like a flag
    ("--rounds") as a name, not as the default."""
    first = getattr(info, "default", None)
    return ([first] if isinstance(first, str) and first.startswith("-") else []) + list(
        getattr(info, "param_decls", None) or ())


HOSTILE_NUMBERS = (st.integers(-10**30, 10**30).map(str) | st.floats().map(repr)
                   | st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-0", "0", "1e-400", "", "abc", "0x10",
                                      "1_000", "3.5", "1e3", " 7", "٣", "--", "-", "9" * 40]))


NUMERIC_OPTIONS = numeric_options()  # read once, outside the strategies


@st.composite
def option_argvs(draw) -> list[str]:
    options = NUMERIC_OPTIONS
    command = draw(st.sampled_from(sorted(options)))
    chosen = draw(st.lists(st.sampled_from(options[command]), unique=True, min_size=1, max_size=5))
    argv = [command]
    for option in chosen:
        argv += [option, draw(HOSTILE_NUMBERS)]
    guard = GUARDS.get(command, ["--eval-policy", "bogus"])
    at = draw(st.integers(0, len(chosen))) * 2 + 1
    argv[at:at] = guard
    if draw(st.integers(0, 19)) == 0:
        argv.append("--help")
    return argv


def check_options(argv: list[str]):
    """Hostile option values: exit 2 (0 only for --help), never a traceback."""
    code, err = invoke(argv)
    assert code == (0 if "--help" in argv else 2), (argv, err)  # every value follows its option


# Corrupt checkpoints: one file of a finished run's checkpoints replaced by random bytes.


@st.composite
def corruptions(draw) -> dict:
    return {"file": draw(st.integers(0, 10**6)),
            "how": draw(st.sampled_from(["random", "truncate", "empty"])),
            "bytes": draw(st.binary(max_size=256)), "cut": draw(st.floats(0, 1))}


def check_corrupt_checkpoint(source, corruption: dict):
    """`il eval` of a copy of the finished run `source` with one checkpoint file spoiled: exit
    0 (the file is not needed) or 2 with one line, never a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(source, run)
        files = sorted(p for p in (run / "checkpoints").rglob("*") if p.is_file())
        target = files[corruption["file"] % len(files)]
        if corruption["how"] == "random":
            target.write_bytes(corruption["bytes"])
        elif corruption["how"] == "truncate":
            data = target.read_bytes()
            target.write_bytes(data[:int(len(data) * corruption["cut"])])
        else:
            target.write_bytes(b"")
        code, err = invoke(["eval", run])
        assert code in (0, 2), err
        if code == 2:
            assert_one_error_line(code, err)


# Torn metrics: rows logged, the last one cut anywhere.


FLAT_ROWS = st.lists(st.fixed_dictionaries({"step": st.integers(0, 10**9), "member": st.integers(0, 3)},
                                           optional={"loss": st.floats(), "return": st.floats(),
                                                     "lr": st.floats(allow_nan=False)}),
                     min_size=1, max_size=6)


def check_torn_metrics(rows: list[dict], cut: float):
    from il_cli.runs import Run

    lines = [json.dumps(r) + "\n" for r in rows]
    keep = int(len(lines[-1]) * cut)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "metrics.jsonl").write_text("".join(lines[:-1]) + lines[-1][:keep])
        got = Run(tmp).metrics()
    expected = rows if keep >= len(lines[-1]) - 1 else rows[:-1]  # whole but for its newline: kept
    assert json.dumps(got) == json.dumps(expected)


# Files that are il's own but for one flaw (found by a user: they trained and reported wrong
# figures): a valid demonstrations, preferences or rankings file, then at most one mutation.
# A mutated file is refused in one line naming the flawed array; the valid one passes every
# check and reaches the guard, a --run-dir under a file (the last step before a run is made).


DATA_ENVS = {"CartPole-v1": ((4,), True, 2), "Pendulum-v1": ((3,), False, 1)}


GUARD = "cannot create the run directory"


@st.composite
def valid_demos(draw, env_id: str) -> dict:
    obs_shape, discrete, dim = DATA_ENVS[env_id]
    lengths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    n = sum(lengths)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    header = {"schema_version": 2, "env_id": env_id, "obs_shape": list(obs_shape),
              "action": {"discrete": discrete, "dim": dim}, "source": "/nonexistent/il-expert",
              "expert_return": 100.0, "count": n, "episodes": len(lengths), "return_mean": 90.0}
    if not discrete:
        header["expert_action_std"] = [0.5] * dim
    return {"obs": rng.normal(size=(n, *obs_shape)).astype(np.float32),
            "actions": (rng.integers(0, dim, n).astype(np.int32) if discrete
                        else rng.uniform(-2, 2, (n, dim)).astype(np.float32)),
            "episode_returns": rng.normal(size=len(lengths)).astype(np.float32),
            "episode_lengths": np.array(lengths, np.int32), "header": header}


@st.composite
def valid_prefs(draw, env_id: str) -> dict:
    obs_shape, discrete, dim = DATA_ENVS[env_id]
    lengths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    n = sum(lengths)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    action = lambda: (rng.integers(0, dim, n).astype(np.int32) if discrete
                      else rng.uniform(-2, 2, (n, dim)).astype(np.float32))
    asked = rng.random(n) < 0.8
    asked[rng.integers(n)] = True
    return {"obs": rng.normal(size=(n, *obs_shape)).astype(np.float32), "action_a": action(), "action_b": action(),
            "label": rng.choice(np.array([0, 0.5, 1], np.float32), n), "asked": asked,
            "episode_lengths": np.array(lengths, np.int32),
            "header": {"schema_version": 2, "kind": "preferences", "env_id": env_id, "pairs": n,
                       "count": int(asked.sum())}}


def _rows_of(draw, n: int) -> np.ndarray:
    return np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True)))


NON_FINITE = st.sampled_from([np.nan, np.inf, -np.inf])


def _mutate_lengths(draw, arrays: dict, n: int):
    lengths = arrays["episode_lengths"].astype(np.int64)
    how = draw(st.sampled_from(["sum", "non-positive", "float", "2-d"]))
    if how == "sum":
        lengths[draw(st.integers(0, len(lengths) - 1))] += draw(st.integers(-10**6, 10**6).filter(bool))
    elif how == "non-positive":
        lengths[draw(st.integers(0, len(lengths) - 1))] = draw(st.integers(-2**62, 0))
    arrays["episode_lengths"] = (lengths.astype(np.float64) if how == "float" else lengths[None] if how == "2-d"
                                 else lengths)
    return "episode_lengths"


@st.composite
def flawed_demos(draw) -> tuple[str, str, dict, str | None]:
    """("demos", env id, the arrays, the name the refusal must say, or None for a valid file)."""
    env_id = draw(st.sampled_from(sorted(DATA_ENVS)))
    arrays = draw(valid_demos(env_id))
    n, discrete = len(arrays["obs"]), DATA_ENVS[env_id][1]
    flaws = ["none", "lengths", "obs", "actions", "header"] + (["float-actions", "range"] if discrete else [])
    flaw = draw(st.sampled_from(flaws))
    if flaw == "none":
        return "demos", env_id, arrays, None
    if flaw == "lengths":
        return "demos", env_id, arrays, _mutate_lengths(draw, arrays, n)
    if flaw in ("obs", "actions"):
        a = arrays[flaw].astype(np.float32)
        a.reshape(n, -1)[_rows_of(draw, n), 0] = draw(NON_FINITE)
        arrays[flaw] = a
        return "demos", env_id, arrays, f"{flaw} has NaN or infinite values in row"
    if flaw == "float-actions":
        arrays["actions"] = arrays["actions"] + draw(st.sampled_from([np.float32(0), np.float64(0), np.float32(0.5)]))
        return "demos", env_id, arrays, "actions are float"
    if flaw == "range":
        a = arrays["actions"].copy()
        a[_rows_of(draw, n)] = draw(st.integers(-2**31, -1) | st.integers(2, 2**31 - 1))
        arrays["actions"] = a
        return "demos", env_id, arrays, "actions must be in 0..1"
    key = draw(st.sampled_from(["count", "episodes", "return_mean", "expert_return"]))
    wrong = st.sampled_from([None, "many", True, [1]])  # not a number; a count must also be the arrays'
    if key in ("count", "episodes"):
        wrong |= st.integers(-5, 10**6).filter(lambda v: v != arrays["header"][key])
    arrays["header"][key] = draw(wrong)
    return "demos", env_id, arrays, "header"


@st.composite
def flawed_prefs(draw) -> tuple[str, str, dict, str | None]:
    env_id = draw(st.sampled_from(sorted(DATA_ENVS)))
    arrays = draw(valid_prefs(env_id))
    n, discrete = len(arrays["obs"]), DATA_ENVS[env_id][1]
    flaw = draw(st.sampled_from(["none", "lengths", "obs", "action_a", "label", "asked"]
                                + (["range", "float-actions"] if discrete else [])))
    if flaw == "none":
        return "prefs", env_id, arrays, None
    if flaw == "lengths":
        return "prefs", env_id, arrays, _mutate_lengths(draw, arrays, n)
    if flaw in ("obs", "action_a") and (flaw == "obs" or not discrete):
        a = arrays[flaw].copy()
        a.reshape(n, -1)[_rows_of(draw, n), 0] = draw(NON_FINITE)
        arrays[flaw] = a
        return "prefs", env_id, arrays, f"{flaw} has NaN or infinite values in row"
    if flaw == "label":
        label = arrays["label"].copy()
        label[_rows_of(draw, n)] = draw(NON_FINITE | st.floats(1.0001, 1e30) | st.floats(-1e30, -1e-6))
        arrays["label"] = label
        return "prefs", env_id, arrays, "label"
    if flaw == "asked":
        arrays["asked"] = np.zeros(n, bool)
        return "prefs", env_id, arrays, "asked"
    name = draw(st.sampled_from(["action_a", "action_b"]))
    if flaw == "range" or flaw == "action_a":
        a = arrays[name].copy()
        a[_rows_of(draw, n)] = draw(st.integers(-2**31, -1) | st.integers(2, 2**31 - 1))
        arrays[name] = a
        return "prefs", env_id, arrays, f"{name} must be in 0..1"
    arrays[name] = arrays[name].astype(np.float32)
    return "prefs", env_id, arrays, name


@st.composite
def flawed_rankings(draw) -> tuple[str, str, dict, str | None]:
    from il_cli.text import human

    p, k = draw(st.integers(2, 6)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    r = human.new_rankings(rng.integers(0, 20, (p, 3)), rng.integers(0, 20, (p, k, 4)))
    for i in range(p):
        r["status"][i] = draw(st.sampled_from([human.RANKED, human.RANKED, human.SKIPPED, human.UNSEEN]))
        if r["status"][i] == human.RANKED:
            r["order"][i] = rng.permutation(k)
    r["status"][:2], r["order"][:2] = human.RANKED, [rng.permutation(k), rng.permutation(k)]  # at least 2
    flaw = draw(st.sampled_from(["none", "order", "status", "dtype", "shape", "unranked"]))
    i = draw(st.integers(0, p - 1))
    expected = {"none": None, "order": "the order of prompt", "status": "status of prompt", "dtype": "expected",
                "shape": "prompts with", "unranked": "ranking(s); rank at least 2"}[flaw]
    if flaw == "order":
        r["status"][i] = draw(st.sampled_from([human.RANKED, human.SKIPPED, human.UNSEEN]))
        r["order"][i] = draw(st.lists(st.integers(-1, k), min_size=k, max_size=k).filter(
            lambda o: sorted(o) != list(range(k)) if r["status"][i] == human.RANKED else o != [-1] * k))
    elif flaw == "status":
        r["status"][i] = draw(st.integers(3, 127) | st.integers(-128, -1))
    elif flaw == "dtype":
        name = draw(st.sampled_from(sorted(human.ARRAYS)))
        r[name] = r[name].astype(np.float32)
    elif flaw == "unranked":
        r["status"][:] = human.SKIPPED
        r["order"][:] = -1
        r["status"][i], r["order"][i] = human.RANKED, rng.permutation(k)
    return "rankings", "text", {**r, "num_prompts": p + (flaw == "shape"), "k": k}, expected


def check_flawed_file(sample):
    """A flawed file is refused in one line naming the flaw, before a run is made; the valid
    file passes every check (and meets the guard)."""
    kind, env_id, arrays, expected = sample
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.npz"
        write_flawed(kind, arrays, path)
        (Path(tmp) / "file").write_text("")
        guard = ["--run-dir", Path(tmp) / "file" / "run"]
        argv = {"demos": ["bc", "--env", env_id, "--demos", path],
                "prefs": ["prefs", "--env", env_id, "--prefs-file", path],
                "rankings": ["rlhf", "--task", "text", "--rankings", path, "--num-prompts", arrays.get("num_prompts"),
                             "--k", arrays.get("k")]}[kind]
        code, err = invoke([*argv, *guard])
        assert_one_error_line(code, err, expected or GUARD)
        if expected:
            assert GUARD not in err, err


FLAWED_FILES = flawed_demos() | flawed_prefs() | flawed_rankings()


# Sizes and counts: zero or negative, on every path into a config (a flag, a recipe key, a
# --sweep value, a resumed config.json). Refused in one line naming the option or key, before
# the run is made (the guard, a --run-dir under a file, is never reached).


SIZE_COMMANDS = ("bc", "dagger", "prefs", "expert", "rlhf", "compounding", "rlhf-text", "gail", "airl")


MAY_BE_ZERO = {"seed", "episodes", "prefs"}  # dagger's seed episodes, collect's --prefs: 0 is none


NAMED_OTHERWISE = {"num_rounds": "--rounds", "demo_episodes": "--demos"}  # the option's name differs


def size_fields(command: str) -> list[str]:
    from il_cli.config import CONFIGS, TextRLHFConfig
    from il_cli.options import fields_of

    cls = TextRLHFConfig if command == "rlhf-text" else CONFIGS[command]
    return sorted(name for name, f in fields_of(cls).items()
                  if f.type in (int, int | None, tuple[int, ...]) and name not in MAY_BE_ZERO)


@st.composite
def bad_sizes(draw) -> dict:
    from il_cli.config import CONFIGS, TextRLHFConfig
    from il_cli.options import fields_of
    from il_cli.sweep import shape_keys

    command = draw(st.sampled_from(SIZE_COMMANDS))
    cls = TextRLHFConfig if command == "rlhf-text" else CONFIGS[command]
    name = draw(st.sampled_from(size_fields(command)))
    bad = draw(st.integers(-2**31 + 1, 0) | st.sampled_from([0, -1]))
    value = bad
    if fields_of(cls)[name].type == tuple[int, ...]:
        value = tuple(draw(st.permutations([bad, *draw(st.lists(st.integers(1, 64), max_size=2))])))
    paths = ["recipe", "resume", "flag"] + (["sweep"] if name in shape_keys(cls) else [])
    return {"command": command, "name": name, "value": value, "path": draw(st.sampled_from(paths))}


def check_bad_size(case: dict):
    command, name, value, path = case["command"], case["name"], case["value"], case["path"]
    argv = ["rlhf", "--task", "text"] if command == "rlhf-text" else [command]
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "file").write_text("")
        if path == "flag":
            argv += [f"{NAMED_OTHERWISE.get(name, '--' + name.replace('_', '-'))}={shown}"]
        elif path == "sweep":
            argv += ["--sweep", f"{name}={shown.replace(',', 'x')}"]
        elif path == "recipe":
            section = command.removesuffix("-text")
            toml = json.dumps(list(value)) if isinstance(value, tuple) else str(value)
            (tmp / "r.toml").write_text(f"[{section}]\n{name} = {toml}\n")
            argv += ["--recipe", tmp / "r.toml"]
        else:
            run = tmp / "run"
            run.mkdir()
            config = {name: list(value) if isinstance(value, tuple) else value}
            if command == "rlhf-text":
                config["task"] = "text"
            (run / "config.json").write_text(json.dumps({"command": argv[0], "env": "CartPole-v1", "config": config}))
            argv = ["rlhf", "--resume", run] if command == "rlhf-text" else [argv[0], "--resume", run]
        code, err = invoke([*argv, "--run-dir", tmp / "file" / "run"] if path != "resume" else argv)
        assert_one_error_line(code, err)
        names = (f"--{name.replace('_', '-')}", name, NAMED_OTHERWISE.get(name, name))
        assert any(n in err for n in names), (case, err)
        assert GUARD not in err, (case, err)


def _demos_error(tmp_path, write):
    path = tmp_path / "demos.npz"
    write(path)
    return invoke(["bc", "--demos", path, "--expert", tmp_path / "no-expert"])


def _npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


def _header_bytes(header: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(header).encode(), np.uint8)


def write_flawed(kind: str, arrays: dict, path: Path):
    if kind == "rankings":
        np.savez(path, **{name: arrays[name] for name in ("prompts", "answers", "order", "status")})
    else:
        np.savez(path, **{**arrays, "header": _header_bytes(arrays["header"])})


def _cartpole_demos() -> dict:
    lengths = [6, 5, 4]
    rng = np.random.default_rng(0)
    return {"obs": rng.normal(size=(15, 4)).astype(np.float32), "actions": rng.integers(0, 2, 15).astype(np.int32),
            "episode_returns": np.array([6, 5, 4], np.float32), "episode_lengths": np.array(lengths, np.int32),
            "header": {"schema_version": 2, "env_id": "CartPole-v1", "obs_shape": [4],
                       "action": {"discrete": True, "dim": 2}, "source": "/nonexistent/il-expert",
                       "expert_return": 500.0, "count": 15, "episodes": 3, "return_mean": 5.0}}


def _nan_rows(a, rows, value=np.nan):
    a = a.copy()
    a[rows] = value
    return a


FLAWED_CARTPOLE_DEMOS = {
    "lengths-do-not-sum": ({"episode_lengths": np.array([3, 4], np.int32)},
                           "episode_lengths sum to 7, but the arrays have 15 rows"),
    "a-zero-length": ({"episode_lengths": np.array([15, 0, 0], np.int32)},
                      "episode_lengths must be positive, got 0, 0 for episodes 1, 2"),
    "nan-obs": (lambda d: {"obs": _nan_rows(d["obs"], [3, 9])}, "obs has NaN or infinite values in rows 3, 9"),
    "inf-obs": (lambda d: {"obs": _nan_rows(d["obs"], [0, 1, 2, 5, 7], np.inf)},
                "obs has NaN or infinite values in rows 0, 1, 2 (and 2 more)"),
    "fractional-actions": (lambda d: {"actions": d["actions"].astype(np.float32) + np.float32(0.5)},
                           "actions are float32, but CartPole-v1's actions are discrete, stored as integer indices; "
                           "rows 0, 1, 2 (and 12 more) are not whole numbers"),
    "whole-float-actions": (lambda d: {"actions": d["actions"].astype(np.float32)},
                            "actions are float32, but CartPole-v1's actions are discrete, stored as integer indices; "
                            "convert them with actions.astype(np.int32)"),
    "nan-actions": (lambda d: {"actions": _nan_rows(d["actions"].astype(np.float32), [4])},
                    "actions has NaN or infinite values in row 4"),
    "out-of-range": (lambda d: {"actions": _nan_rows(_nan_rows(d["actions"], [4], 2), [8], -1)},
                     "actions must be in 0..1 for CartPole-v1, got 2, -1 in rows 4, 8"),
    "header-count": (lambda d: {"header": {**d["header"], "count": 20}},
                     "its header counts 20 transitions, but obs and actions have 15 rows"),
}
