"""TensorBoard event files mirroring `metrics.jsonl` (`--tensorboard`, the `tb` extra).

    RUN_DIR/tb/                      a run of one member
    RUN_DIR/tb/m000-seed0-lr=0.001/  one directory per member of a sweep (overlaid in TensorBoard)

Every numeric field of every metrics row is a scalar with the row's step and the same name;
the config is a text entry, and the final summary's figures are scalars under `summary/`
at the last step. The event files are a copy: after `--resume` drops the rows logged past
the last checkpoint, they are rewritten from `metrics.jsonl`, so both always agree.
"""

import importlib.util
import json
import shutil
from pathlib import Path

from il_cli.errors import UserError
from il_cli.sweep import show

SKIP = ("step", "member", "seed")


def require():
    """UserError unless tensorboardX is installed (checked before anything runs)."""
    if importlib.util.find_spec("tensorboardX") is None:
        raise UserError("--tensorboard needs tensorboardX: pip install -e '.[tb]'")


def member_name(member: dict) -> str:
    hyper = "".join(f"-{k}={show(v)}" for k, v in member["hyper"].items())
    return f"m{member['member']:03d}-seed{member['seed']}{hyper}"


def _scalars(tree, prefix=""):
    """(name, value) of every number in a nested dict, names joined by '/'."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _scalars(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield prefix, float(tree)


class TensorBoardLog:
    def __init__(self, path: Path, members: list[dict], config: dict):
        self.path, self.members, self.config = Path(path), members, config
        self._writers = {}

    def _writer(self, member: int):
        if member not in self._writers:
            from tensorboardX import SummaryWriter

            single = len(self.members) == 1
            logdir = self.path if single else self.path / member_name(self.members[member])
            writer = SummaryWriter(str(logdir), flush_secs=10)
            writer.add_text("config", "```\n" + json.dumps(self.config, indent=2) + "\n```", 0)
            self._writers[member] = writer
        return self._writers[member]

    def log(self, record: dict):
        writer = self._writer(record.get("member", 0))
        for name, value in record.items():
            if name not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(name, value, record["step"])

    def rewrite(self, rows: list[dict]):
        """Start over from `rows` (what `metrics.jsonl` holds after a resume)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        for row in rows:
            self.log(row)

    def summary(self, summary: dict, step: int):
        blocks = summary.get("members") or [summary]
        for k, block in enumerate(blocks):
            writer = self._writer(k)
            figures = {key: v for key, v in block.items() if key not in ("compile", "versions", "member", "seed", "cell")}
            for name, value in _scalars(figures):
                writer.add_scalar(f"summary/{name}", value, step)

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
