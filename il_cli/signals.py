"""Ctrl-C and SIGTERM stop a run between chunks, never inside a checkpoint write. No JAX here.

The handlers raise at once (KeyboardInterrupt for SIGINT, Terminated for SIGTERM), except
inside `uninterrupted()`, where the signal is held and raised when the block ends, and inside
a garbage-collector or weakref callback or a __del__, where Python would print the exception and drop it
(the Ctrl-C lost, the run going on): there the signal is sent again a moment later.
"""

import contextlib
import gc
import os
import signal
import threading
import weakref


class Terminated(BaseException):
    """SIGTERM (a scheduler's time limit, `kill`): stop as Ctrl-C does, the checkpoint kept."""


_held = {"inside": False, "signal": None}


def _raise(signum):
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def _swallowed_in(frame) -> bool:
    """Whether an exception raised in `frame` would be printed and dropped ("Exception ignored
    in ..."): inside a garbage-collector callback (JAX registers one), a __del__, or a weakref
    callback (the weakref module's own, as WeakKeyDictionary's `remove`)."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code in callbacks or code.co_name == "__del__" or code.co_filename == weakref.__file__:
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
