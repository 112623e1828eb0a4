"""Crash-safe writes: after a crash (even SIGKILL or a power cut) a file holds either its old
content or its new one, never part of each. No JAX here."""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic(path, mode: str = "w"):
    """A file object for `path`'s new content: written to a temporary file beside it, flushed
    and fsynced, then renamed over `path` (atomic on POSIX) and the directory fsynced. If the
    block raises, `path` is untouched and the temporary file removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text: str):
    with atomic(path) as f:
        f.write(text)


def fsync_dir(path):
    """Make a rename or a new file in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
