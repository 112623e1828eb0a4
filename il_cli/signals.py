"""Ctrl-C and SIGTERM stop a run between chunks, never inside a checkpoint write. No JAX here.

The handlers raise at once (KeyboardInterrupt for SIGINT, Terminated for SIGTERM), except
inside `uninterrupted()`, where the signal is held and raised when the block ends.
"""

import contextlib
import signal


class Terminated(BaseException):
    """SIGTERM (a scheduler's time limit, `kill`): stop as Ctrl-C does, the checkpoint kept."""


_held = {"inside": False, "signal": None}


def _raise(signum):
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def _handler(signum, frame):
    if _held["inside"]:
        _held["signal"] = signum
    else:
        _raise(signum)


@contextlib.contextmanager
def handled():
    """Install the handlers for the duration of a command."""
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def uninterrupted():
    """Hold Ctrl-C and SIGTERM until the block (a checkpoint save) is done."""
    _held["inside"] = True
    try:
        yield
    finally:
        _held["inside"] = False
        signum, _held["signal"] = _held["signal"], None
        if signum is not None:
            _raise(signum)
