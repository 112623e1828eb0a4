"""Where il keeps things: runs in ./runs, experts and compiled programs in the user cache."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """$IL_CACHE_DIR, else $XDG_CACHE_HOME/il, else ~/.cache/il."""
    if os.environ.get("IL_CACHE_DIR"):
        return Path(os.environ["IL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "il"


def runs_root() -> Path:
    return Path(os.environ.get("IL_RUNS_DIR", "runs"))
