"""The outer loop shared by every training command.

A jitted chunk of K updates runs on device; between chunks, in Python, come metrics,
the progress line, an Orbax checkpoint and a chance for Ctrl-C. The chunk length is a
divisor of the total, so one program is compiled, and the numbers do not depend on it.
"""

import math
import os
import time

import numpy as np

from il_cli import PROCESS_START
from il_cli.errors import UserError


class TrainingDiverged(UserError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


# Seconds this process spent compiling, from JAX's monitoring events (see setup_jax).
COMPILE_STATS = {"backend_s": 0.0, "trace_s": 0.0, "cache_hits": 0}
_COMPILE_EVENTS = {"/jax/core/compile/backend_compile_duration": "backend_s",
                   "/jax/core/compile/jaxpr_trace_duration": "trace_s",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration": "trace_s"}


_listening = False


def _on_duration(event: str, duration: float, **_):
    if event in _COMPILE_EVENTS:
        COMPILE_STATS[_COMPILE_EVENTS[event]] += duration


def _on_event(event: str, **_):
    if event == "/jax/compilation_cache/cache_hits":
        COMPILE_STATS["cache_hits"] += 1


def setup_jax(compile_cache: bool = True):
    """Turn on the persistent compilation cache (unless disabled) and count compile time."""
    import jax

    from il_cli.paths import cache_dir

    if compile_cache and os.environ.get("IL_COMPILE_CACHE", "1") != "0":
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    global _listening
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        jax.monitoring.register_event_listener(_on_event)
        _listening = True
    return jax


def device_description() -> str:
    import jax

    devices = jax.devices()
    kinds = {d.device_kind for d in devices}
    return f"{devices[0].platform} ×{len(devices)} ({', '.join(sorted(kinds))})"


def chunk_length(total: int, num_chunks: int) -> int:
    """A divisor of `total` giving a number of chunks closest (in ratio) to `num_chunks`."""
    divisors = {d for i in range(1, math.isqrt(total) + 1) if total % i == 0 for d in (i, total // i)}
    return min(divisors, key=lambda d: (abs(math.log(total / d / max(1, num_chunks))), d))


def run_chunks(state, chunk_fn, *, total: int, chunk: int, start: int, run, progress,
               summarize):
    """Run `chunk_fn(state) -> (state, metrics)` until `total` steps.

    Returns (final state, figures of the last chunk run, or {} if none ran).

    After each chunk: `summarize(step, metrics_on_host, state) -> dict` (figures for the log and the
    progress line), a non-finite check, `metrics.jsonl` (with `elapsed_s` since the process
    started), and a checkpoint at `step`.
    """
    import jax

    figures = {}
    for step in range(start + chunk, total + 1, chunk):
        state, metrics = chunk_fn(state)
        figures = summarize(step, jax.device_get(metrics), state)
        if not all(np.isfinite(v) for v in figures.values() if isinstance(v, float)):
            raise TrainingDiverged(
                f"training diverged at step {step} (non-finite {figures}); the last good "
                f"checkpoint in {run.path} is kept")
        run.log({"step": step, **figures, "elapsed_s": round(time.time() - PROCESS_START, 3)})
        run.save(step, state)
        progress.update(step, figures)
    return state, figures
