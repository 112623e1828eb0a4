"""Ctrl-C and SIGTERM stop a run between chunks, never inside a checkpoint write. No JAX here.

The handlers raise at once (KeyboardInterrupt for SIGINT, Terminated for SIGTERM), except
inside `uninterrupted()`, where the signal is held and raised when the block ends, and inside
a garbage-collector callback or a __del__, where Python would print the exception and drop it
(the Ctrl-C lost, the run going on): there the signal is sent again a moment later.
"""

import contextlib
import gc
import os
import signal
import threading


class Terminated(BaseException):
    """SIGTERM (a scheduler's time limit, `kill`): stop as Ctrl-C does, the checkpoint kept."""


_held = {"inside": False, "signal": None}


def _raise(signum):
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def _swallowed_in(frame) -> bool:
    """Whether an exception raised in `frame` would be printed and dropped ("Exception ignored
    in ..."): inside a garbage-collector callback (JAX registers one) or a __del__."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _handler(signum, frame):
    if _held["inside"]:
        _held["signal"] = signum
    elif _swallowed_in(frame):  # raised here, the Ctrl-C would be lost: deliver it again shortly
        threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
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
