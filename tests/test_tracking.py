"""TensorBoard event files beside metrics.jsonl; `il runs` filters, sorts and compares."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, assert_user_error, il_here, il_json

from il_cli.runs import Run


def read_events(logdir: Path) -> dict:
    """{tag: {step: value}} of the scalars, and {tag: text} of the texts, in the event files
    directly in `logdir`: TFRecords (length, crc, Event proto, crc) read with tensorboardX's protos."""
    from tensorboardX.proto import event_pb2

    scalars, texts = {}, {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("tensor") and value.tensor.string_val:
                    texts[value.tag] = value.tensor.string_val[0].decode()
                else:
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars, texts


def assert_mirrors(rows: list[dict], logdir: Path):
    scalars, texts = read_events(logdir)
    assert rows, "no metrics"
    for row in rows:
        for name, value in row.items():
            if name in ("step", "member", "seed") or not isinstance(value, (int, float)):
                continue
            assert scalars[name][row["step"]] == pytest.approx(np.float32(value), rel=1e-6), name
    logged = {name for row in rows for name in row} - {"step", "member", "seed"}
    assert {t for t in scalars if not t.startswith("summary/")} == logged
    assert any('"lr"' in t for t in texts.values())  # the config, as text
    return scalars


def test_event_files_mirror_metrics_for_a_run_and_a_sweep(cartpole_expert, tmp_runs):
    one = il_json(*TINY["bc"], "--expert", cartpole_expert, "--tensorboard")
    run = Run(one["run_dir"])
    scalars = assert_mirrors(run.metrics(), run.path / "tb")
    last = run.metrics()[-1]["step"]
    assert scalars["summary/eval/return_mean"][last] == pytest.approx(one["eval"]["return_mean"])

    sweep = il_json(*TINY["bc"], "--expert", cartpole_expert, "--tensorboard", "--seeds", "2",
                    "--sweep", "lr=1e-3,1e-2")
    run = Run(sweep["run_dir"])
    dirs = sorted(p.name for p in (run.path / "tb").iterdir())
    assert dirs == ["m000-seed0-lr=0.001", "m001-seed1-lr=0.001", "m002-seed0-lr=0.01", "m003-seed1-lr=0.01"]
    for k, name in enumerate(dirs):
        scalars = assert_mirrors(run.metrics(member=k), run.path / "tb" / name)
        member = sweep["members"][k]
        assert scalars["summary/eval/return_mean"][200] == pytest.approx(member["eval"]["return_mean"])


def test_resume_rewrites_the_event_files_from_the_kept_rows(tmp_path):
    run = Run.create(tmp_path, "bc", "CartPole-v1", None, {"tensorboard": True, "lr": 1e-3}, {},
                     [{"member": 0, "seed": 0, "cell": 0, "hyper": {}}])
    for step in (10, 20, 30):
        run.log({"step": step, "member": 0, "seed": 0, "loss": 1.0 / step, "return": float(step)})
    run.close()
    run = Run(run.path)  # the process that resumes from the checkpoint at step 20
    run.truncate_metrics(20)
    run.log({"step": 30, "member": 0, "seed": 0, "loss": 0.5, "return": 99.0})
    run.close()
    scalars = assert_mirrors(run.metrics(), run.path / "tb")
    assert scalars["return"] == {10: 10.0, 20: 20.0, 30: 99.0}


def test_tensorboard_without_the_extra_is_one_clear_line(monkeypatch):
    import importlib.util

    from il_cli.config import BCConfig
    from il_cli.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboardX" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install -e '\.\[tb\]'"):
        BCConfig(tensorboard=True)
    BCConfig()  # not asked for: not needed


def test_runs_filters_sorts_and_compares(cartpole_expert, tmp_runs):
    a = il_json(*TINY["bc"], "--expert", cartpole_expert, "--num-steps", "40", "--lr", "1e-4")
    b = il_json(*TINY["bc"], "--expert", cartpole_expert)
    il_json("collect", "--episodes", "1", "--expert", cartpole_expert)
    rows = json.loads(il_here("runs", "--command", "bc", "--sort", "return", "--json").stdout)["runs"]
    assert [r["run"] for r in rows] == sorted([a["run_dir"], b["run_dir"]],
                                              key=lambda p: -Run(p).summary["eval"]["return_mean"])
    assert rows[0]["return"] >= rows[1]["return"] and {r["command"] for r in rows} == {"bc"}
    assert len(json.loads(il_here("runs", "--since", "1h", "--json").stdout)["runs"]) == 3
    assert json.loads(il_here("runs", "--since", "2999-01-01", "--json").stdout)["runs"] == []
    assert json.loads(il_here("runs", "--env", "acrobot", "--json").stdout)["runs"] == []
    compared = json.loads(il_here("runs", "--compare", a["run_dir"], b["run_dir"], "--json").stdout)
    assert compared["differences"] == ["lr", "num_steps"]
    assert compared["fields"]["lr"] == [1e-4, 1e-3]
    assert "2 of" in il_here("runs", "--compare", a["run_dir"], b["run_dir"]).stdout
    assert_user_error(il_here("runs", "--sort", "best"), "--sort must be time, return or wall")
    assert_user_error(il_here("runs", "--since", "yesterday"), "--since takes")
