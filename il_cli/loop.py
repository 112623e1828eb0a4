"""The outer loop shared by every training command.

A jitted chunk of K updates runs on device; between chunks, in Python, come metrics,
the progress line, an Orbax checkpoint and a chance for Ctrl-C. The chunk length is a
divisor of the total, so one program is compiled, and the numbers do not depend on it.
"""

import collections
import math
import os
import time

import numpy as np

from il_cli import PROCESS_START
from il_cli.errors import UserError
from il_cli.signals import uninterrupted


class TrainingDiverged(UserError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


# Seconds this process spent compiling, from JAX's monitoring events (see setup_jax).
COMPILE_STATS = {"backend_s": 0.0, "trace_s": 0.0, "cache_hits": 0}
PROGRAMS = collections.Counter()  # programs XLA compiled in this process, by function name
_COMPILE_EVENTS = {"/jax/core/compile/backend_compile_duration": "backend_s",
                   "/jax/core/compile/jaxpr_trace_duration": "trace_s",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration": "trace_s"}


_listening = False


def _on_duration(event: str, duration: float, fun_name: str = "?", **_):
    if event in _COMPILE_EVENTS:
        COMPILE_STATS[_COMPILE_EVENTS[event]] += duration
    if event == "/jax/core/compile/backend_compile_duration":  # one per program XLA compiles
        PROGRAMS[fun_name] += 1


def _on_event(event: str, **_):
    if event == "/jax/compilation_cache/cache_hits":
        COMPILE_STATS["cache_hits"] += 1


CPU_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false",)


def setup_jax(compile_cache: bool = True):
    """Turn on the persistent compilation cache (unless disabled) and count compile time.

    XLA's CPU backend gets no multi-threaded Eigen (CPU_XLA_FLAGS), set before the backend
    starts: vmapped members already fill the cores, and BC's samples/s did not change. (It was
    first set against jaxlib 0.10's random deadlocks, which it made rarer but did not stop; the
    cause was batched LAPACK QR in the initialisers, see il_cli.networks.orthogonal.) The
    `intra_op_parallelism_threads=1` once set beside it is no XLA flag: a word without "--"
    ends XLA's parsing of XLA_FLAGS, so it did nothing but hide the flags after it."""
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in CPU_XLA_FLAGS:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags
    import jax

    from il_cli.envs import defer_gymnax_renderers
    from il_cli.paths import cache_dir

    defer_gymnax_renderers()

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


def init_distributed(coordinator: str | None, num_processes: int | None, process_id: int | None):
    """Join a multi-process run with `jax.distributed.initialize` (SLURM's variables fill in
    what is not given), with the gloo collectives on CPU; then `jax.devices()` lists every
    process's devices and the member axis is sharded over all of them."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"--distributed: cannot join the other processes: {str(exc).splitlines()[0]}") from None


def is_writer() -> bool:
    """Whether this process writes the run directory: the only one, or process 0 of several."""
    import jax

    return jax.process_index() == 0


def host(tree):
    """`jax.device_get` of `tree` that also works for arrays sharded over other processes'
    devices (gathered from all of them: every process must call it at the same point)."""
    import jax
    from jax.experimental import multihost_utils

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree.map(get, tree)


def shared_run(make):
    """The run of a --distributed command: `make()` on process 0 (which creates or locks it),
    its path sent to every other process, which opens it as a non-writer."""
    from jax.experimental import multihost_utils

    from il_cli.runs import Run

    run = make() if is_writer() else None
    path = np.zeros(4096, np.uint8)
    if run is not None:
        encoded = str(run.path.resolve()).encode()
        path[:len(encoded)] = np.frombuffer(encoded, np.uint8)
    path = bytes(np.asarray(multihost_utils.broadcast_one_to_all(path))).rstrip(b"\0").decode()
    if run is None:
        run = Run.open(path)
        run.writer = False
    return run


def device_description() -> str:
    import jax

    devices = jax.devices()
    kinds = {d.device_kind for d in devices}
    return f"{devices[0].platform} ×{len(devices)} ({', '.join(sorted(kinds))})"


def member_sharding():
    """The sharding of arrays whose leading axis is the member axis: a 1-D mesh of every
    device, members split evenly among them (open_or_start checks that they divide); None on
    one device."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    if len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ("members",)), PartitionSpec("members"))


def shard_members(tree):
    """`tree` (every leaf with a leading member axis) on the device(s), placed by
    `member_sharding`: datasets stay on device from one chunk to the next."""
    import jax

    sharding = member_sharding()
    return jax.device_put(tree) if sharding is None else jax.device_put(_from_host(tree), sharding)


def replicate(tree):
    """`tree` (shared by every member, like the expert's parameters) copied to every device."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    sharding = member_sharding()
    return tree if sharding is None else jax.device_put(_from_host(tree), NamedSharding(sharding.mesh, PartitionSpec()))


def _from_host(tree):
    """With several processes, arrays are placed on other processes' devices from host values
    (every process holds the same ones); JAX's CPU backend has no device-to-device transfer
    across processes."""
    import jax

    return tree if jax.process_count() == 1 else host(tree)


def jit_members(fn):
    """jit for a program over members: every output (leading member axis) stays split over
    the devices like its inputs, so a chunk's state is the next chunk's input as it is."""
    import jax

    sharding = member_sharding()
    return jax.jit(fn) if sharding is None else jax.jit(fn, out_shardings=sharding)


class Timed:
    """A jitted `program` compiled at its first call (`compile_s` kept apart), each call run
    to completion: `timed(*args)` -> (outputs, seconds the call took)."""

    def __init__(self, program):
        self.program, self.compiled, self.compile_s = program, None, 0.0

    def __call__(self, *args):
        import jax

        if self.compiled is None:
            t0 = time.perf_counter()
            self.compiled = self.program.lower(*args).compile()
            self.compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = jax.block_until_ready(self.compiled(*args))
        return out, time.perf_counter() - t0


def chunk_length(total: int, num_chunks: int) -> int:
    """A divisor of `total` giving a number of chunks closest (in ratio) to `num_chunks`."""
    divisors = {d for i in range(1, math.isqrt(total) + 1) if total % i == 0 for d in (i, total // i)}
    return min(divisors, key=lambda d: (abs(math.log(total / d / max(1, num_chunks))), d))


def run_chunks(state, chunk_fn, *, total: int, chunk: int, start: int, run, progress,
               summarize, members: list[dict]):
    """Run `chunk_fn(state) -> (state, metrics)` until `total` steps; `state` holds every
    member (see il_cli.sweep) on a leading axis.

    Returns (final state, each member's figures of the last chunk run, or [] if none ran).

    After each chunk: `summarize(step, metrics_on_host, state) -> [dict per member]` (figures
    for the log), a non-finite check, one `metrics.jsonl` row per member (with its member
    index, seed and swept hyperparameters, and `elapsed_s` since the process started), a
    checkpoint at `step`, and the progress line (figures averaged over members).
    """
    figures = []
    for step in range(start + chunk, total + 1, chunk):
        state, metrics = chunk_fn(state)
        figures = summarize(step, host(metrics), state)
        for member, member_figures in zip(members, figures):
            if not all(np.isfinite(v) for v in member_figures.values() if isinstance(v, float)):
                which = f"member {member['member']} {member['hyper']} " if len(members) > 1 else ""
                last = run.latest_step()
                kept = (f"the last good checkpoint (step {last}) in {run.path} is kept" if last is not None
                        else f"no checkpoint had been written in {run.path}")
                bad = {k: v for k, v in member_figures.items() if isinstance(v, float) and not np.isfinite(v)}
                raise TrainingDiverged(f"training {which}diverged at step {step} (non-finite {bad}); {kept}; "
                                       f"try a smaller learning rate")
        elapsed = round(time.time() - PROCESS_START, 3)
        for member, member_figures in zip(members, figures):
            run.log({"step": step, "member": member["member"], "seed": member["seed"],
                     **member["hyper"], **member_figures, "elapsed_s": elapsed})
        with uninterrupted():  # Ctrl-C or SIGTERM waits for the checkpoint to be started whole
            run.save(step, state)
        progress.update(step, figures[0] if len(figures) == 1 else {  # the members' mean of each figure they all have
            k: float(np.mean([f[k] for f in figures])) for k in figures[0]
            if all(isinstance(f.get(k), (int, float)) for f in figures)})
    return state, figures
