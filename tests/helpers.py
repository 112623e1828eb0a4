"""What every test (and benchmarks/crash.py) shares: a private cache and runs directory for
the session, the `il` command line in a subprocess or in this process, and the checks of a
user error. Importing it sets up the session's directories."""

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION_DIR = Path(tempfile.mkdtemp(prefix="il-tests-"))
os.environ.setdefault("IL_CACHE_DIR", str(SESSION_DIR / "cache"))
os.environ["IL_RUNS_DIR"] = str(SESSION_DIR / "runs")
os.environ["IL_PLAIN_PROGRESS"] = "1"
os.environ["XLA_FLAGS"] = " ".join(  # as il_cli.loop.setup_jax does, for in-process tests
    [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false"]).strip()
# The tests compile far more than they run: XLA's CPU backend at -O0 with its older elemental
# emitters instead of the fusion emitters (set by conftest.py) compiles about twice as fast;
# the default run took 6:43 instead of 9:12 here (7:54 at -O1). Results differ from il's default
# flags in the last bits. The few tests that run more than they compile (PPO against a
# reward model) run at -O1 with il's emitters instead, in a subprocess (`il_json_optimized`):
# the control RLHF test config takes 27 s there, 42 s at il's default -O2 and 49 s at -O0.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
OPTIMIZED = {"XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_backend_optimization_level=1"}


def il(*args, check=True, timeout=600, env=None):
    """Run the `il` command line in a subprocess; returns the CompletedProcess. `env` adds
    to (or overrides) the environment variables."""
    proc = subprocess.run([sys.executable, "-m", "il_cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"il {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


_last_stdout = [""]  # what the last `invoke` printed on stdout


def last_stdout() -> str:
    """What the last `invoke` printed on stdout."""
    return _last_stdout[0]


def il_json(*args) -> dict:
    """The summary of `il ARGS --json`, run in this process: no interpreter start-up and no
    second import of JAX, and programs compiled by an earlier test are reused. (Use `il`
    for what needs a process of its own: signals, kills, locks, XLA_FLAGS, compile counts.)"""
    code, stderr = invoke([*args, "--json"])
    assert code == 0, f"il {' '.join(map(str, args))} exited {code}:\n{stderr[-3000:]}"
    return json.loads(_last_stdout[0])


def il_json_optimized(*args) -> dict:
    """The summary of `il ARGS --json`, run in a subprocess at XLA's -O1."""
    return json.loads(il(*args, "--json", env=OPTIMIZED).stdout)


def invoke(argv: list[str], input: str | None = None):
    """Run `il ARGV` in this process; (exit code, stderr). Fails on an escaped exception or a
    traceback in the output."""
    from typer.testing import CliRunner

    from il_cli.cli import app

    if not logging.root.handlers:  # (outside pytest) else a library's first logging call binds the root
        logging.basicConfig(stream=sys.__stderr__)  # handler to this call's captured stderr, closed after it
    result = CliRunner().invoke(app, [str(a) for a in argv], input=input)
    _last_stdout[0] = result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"il {' '.join(map(str, argv))} raised {result.exception!r}")
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr


def assert_one_error_line(code, stderr, *fragments):
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def final_params(run_dir):
    """The final policy's parameters in a run's last checkpoint."""
    from il_cli.runs import Run

    run = Run(run_dir)
    tree = run.restore_raw()
    run.close()
    for part in run.meta["policy_path"]:
        tree = tree[part]
    return tree


class Result:
    """What `il_here` ran: the exit code and what went to stdout and stderr."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def il_here(*args, env=None) -> Result:
    """`il ARGS` run in this process, without a Python start-up (for what is answered before
    training: user errors, help); fails on an exception that escapes or a traceback printed.
    `env` sets environment variables for the call."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    try:
        code, stderr = invoke(list(args))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(code, _last_stdout[0], stderr)



# One tiny config per command, shared by the tests, so that each program compiles once per
# session (the compilation cache in IL_CACHE_DIR serves the rest).
TINY = {
    "bc": ("bc", "--episodes", "2", "--num-steps", "200", "--eval-episodes", "6"),
    "dagger": ("dagger", "--rounds", "2", "--steps-per-round", "400", "--train-steps", "50", "--eval-episodes", "6"),
    "expert": ("expert", "--total-timesteps", "4096", "--eval-episodes", "6"),
    "prefs": ("prefs", "--num-prefs", "600", "--num-steps", "200", "--eval-episodes", "6"),
}
TINY_BC = {"episodes": 2, "num_steps": 200, "eval_episodes": 6}  # TINY["bc"], as run()'s keywords


def interrupt_after_first_checkpoint(args, run_dir, timeout=120, watch="checkpoints"):
    """SIGINT to `il ARGS --run-dir RUN_DIR` once RUN_DIR/`watch` holds a checkpoint."""
    proc = subprocess.Popen([sys.executable, "-m", "il_cli", *map(str, args), "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        ckpt = run_dir / watch
        if ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err
