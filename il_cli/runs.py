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
import time
from pathlib import Path

from il_cli import files
from il_cli.checkpoints import Checkpointed
from il_cli.errors import UserError

CONFIG, METRICS, SUMMARY, LOCK, DATA = "config.json", "metrics.jsonl", "summary.json", ".lock", "data"


class Run(Checkpointed):
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
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{command}-{env_id.replace(':', '.')}" + (f"-{name}" if name else "")
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
