"""Shared fixtures: a private cache (experts, compiled programs) and runs directory per session."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="il-tests-"))
os.environ.setdefault("IL_CACHE_DIR", str(_SESSION_DIR / "cache"))
os.environ["IL_RUNS_DIR"] = str(_SESSION_DIR / "runs")
os.environ["IL_PLAIN_PROGRESS"] = "1"
os.environ["XLA_FLAGS"] = " ".join(  # as il_cli.loop.setup_jax does, for in-process tests
    [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]).strip()


def il(*args, check=True, timeout=600, env=None):
    """Run the `il` command line in a subprocess; returns the CompletedProcess. `env` adds
    to (or overrides) the environment variables."""
    proc = subprocess.run([sys.executable, "-m", "il_cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"il {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def il_json(*args) -> dict:
    proc = il(*args, "--json")
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def cartpole_expert() -> str:
    """The cached CartPole expert (trained on first use, as a user's first `il bc` would)."""
    summary = il_json("expert", "--recipe", "cartpole", "--run-dir", _SESSION_DIR / "expert-cartpole")
    assert summary["eval"]["return_mean"] >= 475
    return summary["run_dir"]


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("IL_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"
