"""Shared fixtures; the session's private cache and runs directory are set up by tests/helpers.py."""

import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock
from helpers import FAST_COMPILE, il_json

os.environ["XLA_FLAGS"] += f" {FAST_COMPILE}"  # (see tests/helpers.py)

# The longest files first: `--dist loadfile --no-loadscope-reorder` hands out whole files in this
# order (xdist's own order, the most tests first, put the two longest files last), so that a long
# file does not start last and keep one worker busy while the other waits.
LONGEST_FIRST = ("test_rlhf.py", "test_text_rlhf.py", "test_reliability.py", "test_sweep.py", "test_dagger.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def cartpole_expert() -> str:
    """A CartPole expert trained with the shipped recipe, once per test run: in the cache
    directory, so the workers of a run that share one (CI's) train it once."""
    path = Path(os.environ["IL_CACHE_DIR"]) / "tests" / "expert-cartpole"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if not (path / "summary.json").is_file():
            shutil.rmtree(path, ignore_errors=True)
            summary = il_json("expert", "--recipe", "cartpole", "--run-dir", path)
            assert summary["eval"]["return_mean"] >= 475
    return str(path)


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("IL_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"
