"""Shared fixtures; the session's private cache and runs directory are set up by tests/helpers.py."""

import pytest
from helpers import SESSION_DIR, il_json


@pytest.fixture(scope="session")
def cartpole_expert() -> str:
    """The cached CartPole expert (trained on first use, as a user's first `il bc` would)."""
    summary = il_json("expert", "--recipe", "cartpole", "--run-dir", SESSION_DIR / "expert-cartpole")
    assert summary["eval"]["return_mean"] >= 475
    return summary["run_dir"]


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("IL_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"
