"""Run directories.

    runs/<YYYYmmdd-HHMMSS>-<command>-<env>[-<name>]/
        config.json     command, env, merged config, env spec, where the policy lives
        metrics.jsonl   one JSON object per logged chunk
        checkpoints/    Orbax checkpoints of the training state (step = updates done)
        summary.json    final figures, versions, device, wall time
        data/           datasets the run made or used
        cells/<key=value,...>/  with a sweep over a count or shape: one run per program;
                        the parent's metrics are theirs (members renumbered), its summary
                        aggregates them

A run is complete when summary.json exists; without it, `--resume` continues it.
"""

import json
import logging
import sys
import time
import warnings
from pathlib import Path

from il_cli import files
from il_cli.errors import UserError

CONFIG, METRICS, SUMMARY, LOCK, DATA = "config.json", "metrics.jsonl", "summary.json", ".lock", "data"

class Run:
    def __init__(self, path):
        self.path = Path(path)
        self._manager = None
        self._tb = False  # not looked up yet
        self._lock = None  # the open lock file while this process is the run's writer
        self.writer = True  # False on processes > 0 of a --distributed run: they write no files

    # --- creating and opening ----------------------------------------------------------

    @classmethod
    def create(cls, root, command: str, env_id: str, name: str | None, config: dict,
               spec: dict, members: list[dict], run_dir: str | None = None, programs=(),
               policy_path: list | None = None) -> "Run":
        """A new run directory; `members` (il_cli.sweep.members) are the runs it holds on a
        leading axis of every checkpointed array, or with `programs` (il_cli.sweep.programs)
        in the runs of its cells/; `policy_path`, where its checkpoint keeps the final policy
        (il_cli.registry)."""
        if run_dir:
            path = Path(run_dir)
            if (path / CONFIG).exists():
                raise UserError(f"{path} already holds a run; use --resume {path} to continue it "
                                f"or choose another --run-dir")
        else:
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{command}-{env_id}" + (f"-{name}" if name else "")
            path, i = Path(root) / stem, 1
            while path.exists():
                i += 1
                path = Path(root) / f"{stem}-{i}"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the run directory {path}: {exc.strerror}") from None
        run = cls(path)
        run.lock()
        if (path / CONFIG).exists():  # another process made it between the check and the lock
            run.close()
            raise UserError(f"{path} already holds a run; use --resume {path} to continue it")
        run._write(CONFIG, {"command": command, "env": env_id, "policy_path": policy_path,
                            "spec": spec, "config": config, "members": members,
                            **({"programs": list(programs)} if programs else {})})
        return run

    @classmethod
    def open(cls, path) -> "Run":
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"run directory {path} does not exist")
        if not (path / CONFIG).is_file():
            raise UserError(f"{path} is not a run directory (no {CONFIG})")
        run = cls(path)
        try:
            run.meta
        except json.JSONDecodeError:
            raise UserError(f"{path / CONFIG} is corrupt (not JSON)") from None
        return run

    def _write(self, name, obj):
        if not self.writer:
            return
        files.write_text(self.path / name, json.dumps(obj, indent=2) + "\n")

    @property
    def meta(self) -> dict:
        return json.loads((self.path / CONFIG).read_text())

    @property
    def data_dir(self) -> Path:
        d = self.path / DATA
        d.mkdir(exist_ok=True)
        return d

    # --- metrics and summary -----------------------------------------------------------

    @property
    def tensorboard(self):
        """The run's TensorBoard mirror (il_cli.tb) if it was started with --tensorboard."""
        if self._tb is False:
            from il_cli.tb import TensorBoardLog

            meta = self.meta
            self._tb = TensorBoardLog(self.path / "tb", self.members, meta["config"]) \
                if meta["config"].get("tensorboard") and "programs" not in meta else None  # programs: their own
        return self._tb

    def log(self, record: dict):
        if not self.writer:
            return
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            self.tensorboard.log(record)

    @property
    def programs(self) -> list[tuple[dict, "Run"]]:
        """(shape values, run) of each program of a sweep over counts or shapes that has
        started; [] for a run that is one program."""
        return [(p["hyper"], Run(self.path / p["dir"])) for p in self.meta.get("programs", ())
                if (self.path / p["dir"] / CONFIG).is_file()]

    def metrics(self, member: int | None = None) -> list[dict]:
        """The logged rows, or those of one member (a parent's: its programs' rows, their
        members numbered as the parent's)."""
        meta = self.meta if (self.path / CONFIG).is_file() else {}
        if "programs" in meta:
            size = len(meta["members"]) // len(meta["programs"])
            rows = [{**r, **hyper, "member": i * size + r.get("member", 0)}
                    for i, (hyper, run) in enumerate(self.programs) for r in run.metrics()]
            return rows if member is None else [r for r in rows if r["member"] == member]
        path = self.path / METRICS
        lines = [r for r in path.read_text().splitlines() if r] if path.exists() else []
        if lines and not lines[-1].endswith("}"):
            lines.pop()  # torn by a crash while being appended; the checkpoint predates it
        rows = [json.loads(r) for r in lines]
        return rows if member is None else [r for r in rows if r.get("member", 0) == member]

    @property
    def members(self) -> list[dict]:
        """The members the run holds (one for a run written before runs had members)."""
        meta = self.meta
        return meta.get("members") or [{"member": 0, "seed": meta["config"].get("seed", 0),
                                        "cell": 0, "hyper": {}}]

    def truncate_metrics(self, step: int):
        """Drop metrics logged after checkpoint `step` (work lost in an interruption)."""
        rows = [r for r in self.metrics() if r["step"] <= step]
        if not self.writer:
            return
        files.write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
        if self.tensorboard:
            self.tensorboard.rewrite(rows)

    def write_summary(self, summary: dict):
        self._write(SUMMARY, summary)
        if self.writer and self.tensorboard:
            self.tensorboard.summary(summary, max((r["step"] for r in self.metrics()), default=0))
            self.tensorboard.close()

    @property
    def summary(self) -> dict | None:
        path = self.path / SUMMARY
        return json.loads(path.read_text()) if path.is_file() else None

    def member_summary(self, member: int = 0) -> dict:
        """The figures of one member: the summary itself for a run of one member."""
        summary = self.summary
        return summary["members"][member] if "members" in summary else summary

    # --- checkpoints -------------------------------------------------------------------

    @property
    def checkpoints(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            self._manager = ocp.CheckpointManager(
                (self.path / "checkpoints").absolute(),
                options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
        return self._manager

    def save(self, step: int, state):
        import orbax.checkpoint as ocp

        self.checkpoints.save(step, args=ocp.args.StandardSave(state))

    def wait(self):
        if self._manager is not None:
            self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        if not (self.path / "checkpoints").is_dir():
            return None
        return self.checkpoints.latest_step()

    def restore(self, target, step: int | None = None):
        """The checkpoint at `step` (default latest) with the structure of `target`."""
        import jax
        import orbax.checkpoint as ocp

        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.path} has no checkpoint to restore")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        _quiet_abandoned_reads()
        return self.checkpoints.restore(step, args=ocp.args.StandardRestore(abstract))

    def continue_from_checkpoint(self, state):
        """(state, step): the latest checkpoint restored into `state`'s structure, with the
        metrics logged after it dropped; or (state, 0) for a run with no checkpoint yet."""
        step = self.latest_step()
        if step is None:
            return state, 0
        self.truncate_metrics(step)
        return self.restore(state, step), step

    def restore_raw(self, step: int | None = None):
        """The latest checkpoint as nested dicts of arrays (no target structure needed), on
        this process's first device whatever devices it was saved from (so every process of
        a --distributed run can read an expert saved by one)."""
        import jax
        import orbax.checkpoint as ocp

        self.require_one_program()
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.path} has no checkpoint; was the run interrupted before "
                            f"its first chunk finished?")
        path = (self.path / "checkpoints" / str(step) / "default").absolute()
        _quiet_abandoned_reads()
        with ocp.StandardCheckpointer() as checkpointer:
            tree = ocp.StandardCheckpointHandler().metadata(path).tree
            local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            return checkpointer.restore(path, jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local), tree))


    def require_one_program(self):
        """UserError for the parent of a sweep over a count or shape: it has no checkpoint of
        its own, its programs are runs in cells/."""
        programs = self.meta.get("programs")
        if programs:
            raise UserError(f"{self.path} is a sweep over {', '.join(programs[0]['hyper'])} with one program per "
                            f"value, each a run of its own in {self.path / 'cells'}/ (like "
                            f"{self.path / programs[0]['dir']}): give one of those")

    def lock(self):
        """Make this process the run directory's only writer, until `close` or its exit: an
        exclusive lock (flock) on RUN_DIR/.lock, which holds the writer's pid. The kernel drops
        the lock of a process that died, so a stale lock file is simply taken over."""
        import fcntl
        import os

        try:
            handle = open(self.path / LOCK, "a+")
        except OSError as exc:
            raise UserError(f"cannot write in the run directory {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise UserError(f"{self.path} is being written by another process (pid {pid}); wait for it "
                            f"to finish or stop it, then --resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def close(self):
        if self._tb:
            self._tb.close()
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
            self._manager = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def open_policy_run(path, env_id: str | None, commands: tuple = ("expert",)) -> Run:
    """A finished run of one of `commands` (an expert's by default) on `env_id` (None: any),
    whose policy is to be used; UserError otherwise."""
    run = Run.open(path)
    command = run.meta["command"]
    if command not in commands:
        raise UserError(f"{path} is an il {command} run, not a run of il {' or il '.join(commands)}")
    run.require_one_program()
    if env_id is not None and run.meta["env"] != env_id:
        raise UserError(f"{path} ran on {run.meta['env']}, not {env_id}")
    if run.summary is None:
        raise UserError(f"{path} did not finish; resume it with `il {command} --resume {path}`")
    return run


def list_runs(root) -> list[Run]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((Run(p) for p in root.iterdir() if (p / CONFIG).is_file()),
                  key=lambda r: r.path.name)


def parse_since(since: str) -> float:
    """A time (seconds since the epoch) from a date or date-time (2026-11-26, 2026-11-26T14:00)
    or a span back from now (30m, 6h, 2d)."""
    import datetime
    import re

    span = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", since.strip())
    if span:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[span.group(2)]
        return time.time() - float(span.group(1)) * seconds
    try:
        return datetime.datetime.fromisoformat(since.strip()).timestamp()
    except ValueError:
        raise UserError(f"--since takes a date like 2026-11-26, a date-time like 2026-11-26T14:00, "
                        f"or a span like 30m, 6h, 2d; got '{since}'") from None


def started(run: Run) -> float:
    """When the run was made: its config.json is written once, at the start."""
    return (run.path / CONFIG).stat().st_mtime


def filter_runs(runs: list[Run], command: str | None = None, env: str | None = None,
                since: str | None = None) -> list[Run]:
    """The runs of `command`, on `env` (an id or alias), started since `since`."""
    from il_cli.envs import resolve_env_id
    from il_cli.errors import suggest
    from il_cli.registry import COMMANDS

    if command is not None and command not in COMMANDS:
        raise UserError(f"--command must be one of {', '.join(COMMANDS)}, got '{command}'"
                        f"{suggest(command, COMMANDS)}")
    env_id = resolve_env_id(env) if env is not None else None
    after = parse_since(since) if since is not None else None
    return [run for run in runs
            if (command is None or run.meta["command"] == command)
            and (env_id is None or run.meta["env"] == env_id)
            and (after is None or started(run) >= after)]


def run_row(run: Run) -> dict:
    """One line of `il runs`."""
    meta, summary = run.meta, run.summary
    return {"run": str(run.path), "command": meta["command"], "env": meta["env"],
            "members": len(run.members), "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started(run))),
            "return": summary.get("eval", {}).get("return_mean") if summary else None,
            "wall_s": summary.get("wall_s") if summary else None,
            "status": "done" if summary else "unfinished"}


def sort_rows(rows: list[dict], by: str) -> list[dict]:
    """time: oldest first; return: best first; wall: fastest first (runs without the figure last)."""
    if by == "time":
        return sorted(rows, key=lambda r: (r["started"], r["run"]))
    key = {"return": lambda r: -r["return"], "wall": lambda r: r["wall_s"]}[by]
    field = {"return": "return", "wall": "wall_s"}[by]
    return sorted((r for r in rows if r[field] is not None), key=key) + [r for r in rows if r[field] is None]


def group_runs(runs: list[Run]) -> list[dict]:
    """Finished runs pooled by what they ran: (command, env, the config with the member's
    hyperparameters, apart from seeds). One entry per such cell, with the final returns of its
    members aggregated over distinct seeds (mean, std, IQM, 95% bootstrap CI;
    il_cli.sweep.aggregate), so the seed blocks of a job array come together. A seed that
    occurs again (the same run repeated) counts once, the first run's, and `repeats` says how
    many were left out."""
    from il_cli.sweep import aggregate, describe

    groups = {}
    for run in runs:
        summary = run.summary
        if summary is None:
            continue
        meta = run.meta
        config = {k: v for k, v in meta["config"].items() if k not in ("seed", "seeds", "sweep", "tensorboard")}
        for member in summary.get("members") or [{**run.members[0], **summary}]:
            key = json.dumps([meta["command"], meta["env"], {**config, **member["hyper"]}], sort_keys=True)
            group = groups.setdefault(key, {
                "command": meta["command"], "env": meta["env"],
                "cell": describe(member["hyper"]) or "–",
                "returns": {}, "runs": [], "repeats": 0})
            if group["cell"] == "–" and member["hyper"]:  # a single run pooled with a sweep's cell
                group["cell"] = describe(member["hyper"])
            if member["seed"] in group["returns"]:
                group["repeats"] += 1
                continue
            group["returns"][member["seed"]] = member["eval"]["return_mean"]
            if str(run.path) not in group["runs"]:
                group["runs"].append(str(run.path))
    return [{"command": g["command"], "env": g["env"], "cell": g["cell"], "runs": g["runs"],
             "seeds": sorted(g["returns"]), "repeats": g["repeats"],
             "return": aggregate(list(g["returns"].values()))} for g in groups.values()]


def _quiet_abandoned_reads():
    """Before reading a checkpoint: when an Orbax read fails (a corrupt checkpoint), its other
    tensorstore reads are abandoned. Their coroutines are collected unstarted ("coroutine ...
    was never awaited") or with their own errors unretrieved, their tasks and futures die with
    exceptions nobody awaited ("Task exception was never retrieved", logged by asyncio), some
    complete after Orbax's loop has closed ("RuntimeError: Event loop is closed"). Each would
    print a traceback or warning around our one error line (the failure itself is raised and
    reported); those, and only those, are dropped. il runs no asyncio of its own: Orbax's only."""
    sys.unraisablehook = _drop_abandoned_read
    warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)
    asyncio_log = logging.getLogger("asyncio")
    if _drop_unretrieved_exception not in asyncio_log.filters:
        asyncio_log.addFilter(_drop_unretrieved_exception)


def _drop_abandoned_read(unraisable):
    closed_loop = isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"
    code = getattr(unraisable.object, "cr_code", None)
    abandoned_read = code is not None and "/orbax/" in code.co_filename.replace("\\", "/")
    if not (closed_loop or abandoned_read):
        sys.__unraisablehook__(unraisable)


def _drop_unretrieved_exception(record) -> bool:
    return not record.getMessage().partition("\n")[0].endswith(" exception was never retrieved")
