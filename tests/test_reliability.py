"""Reliability: what a crash, a second process, a diverging loss, the operating system or a
hostile file can do to a run, and what `il` does about it.

- SIGKILL at a random moment (no handler runs, as in an out-of-memory kill or a power cut),
  then `--resume`: the result is bit for bit that of an uninterrupted run. Generic over the
  commands listed in reliability.KILLABLE.
- One writer per run directory; a dead writer's lock is taken over; a torn last metrics line
  is ignored; a non-finite loss and OS errors end in one line with exit 2.
- Property-based (hypothesis, derandomized): datasets, recipes, option values and corrupt
  checkpoints, run in-process against `il_cli.cli.app`; never a traceback.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from helpers import assert_one_error_line, assert_user_error, il, il_here, invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability import (
    FLAT_ROWS,
    FLAWED_CARTPOLE_DEMOS,
    FLAWED_FILES,
    PROPERTY,
    _cartpole_demos,
    _demos_error,
    _npy_bytes,
    bad_sizes,
    check_bad_size,
    check_corrupt_checkpoint,
    check_demos_file,
    check_flawed_file,
    check_options,
    check_recipe,
    check_torn_metrics,
    checkpoint_steps,
    corruptions,
    demo_files,
    differences,
    kill_and_resume,
    killable_params,
    launch,
    option_argvs,
    recipes,
    run_timed,
    wait_for,
    with_expert,
    write_flawed,
)

# --- SIGKILL at random moments, then --resume ---------------------------------------------

# (name, args): every command whose runs can be killed and resumed. A command joins by being
# listed; "--expert" is added for every command but `expert`.


@pytest.mark.parametrize("name,args,seed,kills", killable_params())
def test_sigkill_then_resume_matches_an_uninterrupted_run(name, args, seed, kills, tmp_path, cartpole_expert):
    args = with_expert(args, cartpole_expert)
    timing = run_timed(args, tmp_path / "straight")
    records = kill_and_resume(args, tmp_path / "killed", random.Random(f"{name}:{seed}"), timing, kills)
    assert records[0]["landed"], records  # the first kill hit a running process
    assert differences(tmp_path / "killed", tmp_path / "straight") == [], records


# --- one writer per run directory ----------------------------------------------------------


def test_a_second_writer_is_refused_and_the_first_finishes(tmp_path, cartpole_expert):
    run_dir = tmp_path / "run"
    args = ("bc", "--expert", cartpole_expert, "--episodes", "5", "--num-steps", "8000", "--eval-episodes", "10",
            "--run-dir", run_dir)
    first = launch(args, tmp_path / "first.log")
    assert wait_for(lambda: (run_dir / "config.json").exists(), first)
    resumed = il("bc", "--resume", run_dir, check=False)
    assert_user_error(resumed, f"{run_dir} is being written by another process (pid {first.pid})")
    same_dir = il(*args, check=False)
    assert_user_error(same_dir, str(run_dir))
    assert first.poll() is None  # refused while the first one was still running
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    from il_cli.runs import Run

    assert Run(run_dir).summary["bc"]["steps"] == 8000
    assert "already finished" in il("bc", "--resume", run_dir).stdout


def test_resume_takes_over_a_dead_writers_lock_and_ignores_a_torn_metrics_line(tmp_path, cartpole_expert):
    from il_cli.runs import Run

    run_dir = tmp_path / "run"
    proc = launch(("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "4000",
                   "--eval-episodes", "4", "--run-dir", run_dir), tmp_path / "killed.log")
    wait_for(lambda: checkpoint_steps(run_dir), proc)
    proc.kill()
    proc.wait()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (run_dir / ".lock").write_text(f"{dead}\n")
    logged = Run(run_dir).metrics()
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 999999, "member": 0, "loss": 0.12')  # a crash in the middle of a line
    assert Run(run_dir).metrics() == logged

    resumed = il("bc", "--resume", run_dir)
    assert "Traceback" not in resumed.stderr
    run = Run(run_dir)
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == 4000 and 999999 not in steps
    assert run.summary["bc"]["steps"] == 4000
    assert (run_dir / ".lock").read_text().strip() != dead


# --- divergence and OS errors --------------------------------------------------------------


def test_divergence_ends_in_one_line_naming_the_step_and_leaves_the_run_whole(tmp_path):
    run_dir = tmp_path / "run"
    proc = il("expert", "--env", "CartPole", "--lr", "1e30", "--total-timesteps", "65536", "--eval-episodes", "4",
              "--run-dir", run_dir, check=False)
    assert_user_error(proc, "diverged at step", "non-finite", "try a smaller learning rate", str(run_dir))
    line = proc.stderr.strip()
    last = checkpoint_steps(run_dir)
    assert (f"last good checkpoint (step {last[-1]})" in line) if last else ("no checkpoint had been written" in line)
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["command"] == "expert" and meta["config"]["lr"] == 1e30
    assert not (run_dir / "summary.json").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # no half-written file


def test_a_read_only_location_is_one_line(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: a mode 0o555 directory is writable anyway")
        proc = il("expert", "--env", "CartPole", "--total-timesteps", "2048", "--run-dir", parent / "run", check=False)
        assert_user_error(proc, str(parent / "run"))
    finally:
        parent.chmod(0o755)


def test_a_run_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    proc = il("expert", "--env", "CartPole", "--total-timesteps", "2048", "--run-dir", tmp_path / "file" / "run",
              check=False)
    assert_user_error(proc, "cannot create the run directory", str(tmp_path / "file" / "run"))


@pytest.mark.skipif(not os.access("/dev/full", os.W_OK), reason="no /dev/full")
def test_a_full_disk_while_training_is_one_line_and_keeps_the_config(tmp_path, cartpole_expert):
    """metrics.jsonl is /dev/full, where every write fails with ENOSPC, as on a full disk."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").symlink_to("/dev/full")
    proc = il("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "400", "--eval-episodes", "4",
              "--run-dir", run_dir, check=False)
    assert_user_error(proc, "No space left on device")
    assert json.loads((run_dir / "config.json").read_text())["command"] == "bc"
    assert not (run_dir / "summary.json").exists()


def test_ctrl_c_before_the_first_checkpoint_says_no_training_is_kept(tmp_path, cartpole_expert):
    """Ctrl-C while the run starts (before its first chunk ends) has no checkpoint to keep: the
    line says so, and that --resume starts the run again from step 0."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "il_cli", "bc", "--expert", cartpole_expert, "--episodes", "1",
                             "--num-steps", "400000", "--eval-episodes", "2", "--run-dir", run_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (run_dir / "config.json").exists(), proc, timeout=120)
    proc.send_signal(signal.SIGINT)  # its first chunk is 50000 steps: far from done
    _, err = proc.communicate(timeout=300)
    # 130, or now and then a death by SIGINT after the line is printed (seen a few times in 30 tries,
    # cause not found; a shell's $? is 130 either way)
    assert proc.returncode in (130, -signal.SIGINT) and "Traceback" not in err, err
    assert checkpoint_steps(run_dir) == []
    assert err.strip() == (f"interrupted before the first checkpoint, so no training is kept; "
                           f"`il bc --resume {run_dir}` starts the run again from step 0"), err
    assert "checkpoint is kept" not in err


GC_CTRL_C = """
import gc, signal, sys, time
from il_cli import signals

fired = []

def callback(phase, info):
    if phase == "start" and not fired:
        fired.append(phase)
        signal.raise_signal(signal.SIGINT)  # handled at the next instruction: in this callback
        fired.append("after")

try:
    with signals.handled():
        gc.callbacks.append(callback)
        gc.collect()
        assert fired == ["start", "after"]  # the callback ran on: the signal did not stop it
        time.sleep(5)  # delivered again a moment later, out here
    print("lost")
except KeyboardInterrupt:
    print("delivered")
"""


WEAKREF_CTRL_C = """
import signal, time, weakref
from il_cli import signals

class Obj:
    pass

try:
    with signals.handled():
        obj = Obj()
        weakref.finalize(obj, signal.raise_signal, signal.SIGINT)
        del obj  # the finalizer runs as a weakref callback, in weakref.py: the signal is handled there
        time.sleep(5)  # delivered again a moment later, out here
    print("lost")
except KeyboardInterrupt:
    print("delivered")
"""


@pytest.mark.parametrize("script", [GC_CTRL_C, WEAKREF_CTRL_C], ids=["gc-callback", "weakref-callback"])
def test_a_ctrl_c_in_a_garbage_collector_callback_is_not_lost(script):
    """Python prints and drops an exception raised in a gc callback (JAX registers one, and a
    run's start collects a lot) or a weakref callback (WeakKeyDictionary's `remove`, when a key
    dies): a Ctrl-C landing there was lost and the run went on. (In a fresh interpreter:
    signals are the process's.)"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "delivered", proc.stdout + proc.stderr


# --- property-based: hostile input, in-process -----------------------------------------------

# Bugs of the library these properties found that are still open: the strategies keep away
# from their inputs (see the module docstring) and each has an xfail test at the end. Fixed
# ones are gone from here, and their inputs are drawn again.


@settings(max_examples=120, **PROPERTY)
@given(demo_files())
def test_any_demos_file_is_refused_in_one_line_and_never_unpickled(sample):
    check_demos_file(sample)


@settings(max_examples=120, **PROPERTY)
@given(recipes())
def test_any_recipe_with_an_invalid_flag_is_one_line(text):
    check_recipe(text)


@settings(max_examples=120, **PROPERTY)
@given(option_argvs())
def test_hostile_option_values_exit_2_without_a_traceback(argv):
    check_options(argv)


@settings(max_examples=60, **PROPERTY)
@given(FLAWED_FILES)
def test_a_flawed_data_file_is_refused_naming_the_flaw_and_a_valid_one_passes(sample):
    check_flawed_file(sample)


@settings(max_examples=40, **PROPERTY)
@given(bad_sizes())
def test_a_zero_or_negative_size_on_any_path_is_refused_naming_it(case):
    check_bad_size(case)


@settings(max_examples=60, **PROPERTY)
@given(FLAT_ROWS, st.floats(0, 1))
def test_a_metrics_log_torn_anywhere_in_its_last_line_reads_as_its_whole_lines(rows, cut):
    check_torn_metrics(rows, cut)


@pytest.fixture(scope="module")
def finished_bc_run(cartpole_expert, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "bc"
    il("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "200", "--eval-episodes", "4",
       "--run-dir", run_dir)
    return run_dir


def test_eval_of_a_corrupt_checkpoint_is_exit_0_or_one_line(finished_bc_run):
    @settings(max_examples=10, **PROPERTY)
    @given(corruptions())
    def corrupt(corruption):
        check_corrupt_checkpoint(finished_bc_run, corruption)

    corrupt()


# --- inputs the properties found: regression tests for the fixed bugs -----------------------


@pytest.mark.parametrize("write", [
    lambda p: p.write_bytes(_npy_bytes()),  # a bare .npy array
    lambda p: np.savez(p, header=np.frombuffer(b"[1, 2]", np.uint8)),  # a header that is not an object
    lambda p: np.savez(p, header=np.frombuffer(b'{"schema_version": 2}', np.uint8), obs=np.zeros((2, 4)),
                       actions=np.zeros(2)),  # no env_id
], ids=["npy", "header-not-an-object", "no-env-id"])
def test_a_file_that_is_not_a_dataset_is_one_line(tmp_path, write):
    assert_one_error_line(*_demos_error(tmp_path, write), "not an il dataset")


@pytest.mark.parametrize("line", ["env = 5", "env = [1, 2]", "eval_policy = [1]", "sweep = [{a = 1}]",
                                  'sweep = [["lr"]]', "sweep = [[]]", 'lr = "fast"'])
def test_a_recipe_value_of_the_wrong_type_is_one_line(line):
    check_recipe(line + "\n")


def test_eval_of_a_corrupt_array_is_one_line(finished_bc_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_bc_run, run)
    latest = max(checkpoint_steps(run))
    for data in sorted((run / "checkpoints" / str(latest) / "default" / "ocdbt.process_0" / "d").iterdir()):
        data.write_bytes(b"\x00" * 16)
    assert_one_error_line(*invoke(["eval", run]), "cannot read the checkpoint")


def test_reads_abandoned_by_a_failed_restore_print_nothing(capsys, caplog):
    """A corrupt checkpoint fails one Orbax read; its sibling reads are abandoned and surface
    later as an unraisable coroutine error, asyncio's "Task/Future exception was never
    retrieved" or "coroutine ... was never awaited", as tracebacks around the one error line (found by the corrupt-checkpoint property, which
    hits them by GC timing). Both are dropped; an unraisable error from elsewhere still prints."""
    import asyncio
    import gc

    from il_cli.checkpoints import _quiet_abandoned_reads

    def unraisable_from(filename):
        scope = {}
        exec(compile("async def read(pending):\n    try:\n        await pending\n    finally:\n"
                     "        raise Exception('Encountered error while reading array index')\n",
                     filename, "exec"), scope)
        coroutine = scope["read"](types.coroutine(lambda: (yield))())
        coroutine.send(None)  # suspended in its read: collecting it raises in its finally
        del coroutine
        gc.collect()

    async def failing_read():
        raise ValueError("OUT_OF_RANGE: Error reading byte range")

    saved_hook = sys.unraisablehook
    try:
        with warnings.catch_warnings(record=True) as caught:
            _quiet_abandoned_reads()
            unraisable_from("/venv/site-packages/orbax/checkpoint/serialization.py")
            loop = asyncio.new_event_loop()
            task, future = loop.create_task(failing_read()), loop.create_future()
            future.set_exception(ValueError("OUT_OF_RANGE"))
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            del task, future
            failing_read()  # a read collected unstarted
            gc.collect()
        assert not caught, [str(w.message) for w in caught]
        assert "Encountered error" not in capsys.readouterr().err
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
        unraisable_from("/home/user/elsewhere.py")
        assert "Encountered error while reading array index" in capsys.readouterr().err
    finally:
        sys.unraisablehook = saved_hook


def test_a_member_past_a_single_runs_one_is_one_line(finished_bc_run):
    assert_one_error_line(*invoke(["eval", finished_bc_run, "--member", "1"]), "has one member (0), not 1")


def test_a_seed_past_int32_is_one_line(cartpole_expert):
    assert_user_error(il_here("bc", "--expert", cartpole_expert, "--seed", str(2**64)), "--seed")


def test_a_dataset_that_does_not_fit_the_environment_is_one_line(cartpole_expert, tmp_path, tmp_runs):
    from il_cli.data import Dataset, save_dataset

    path = tmp_path / "wide.npz"
    save_dataset(path, Dataset({"env_id": "CartPole-v1", "expert_return": 500.0}, np.zeros((10, 7), np.float32),
                               np.zeros(10, np.int32), np.array([10]), np.zeros(1)))
    assert_user_error(il_here("bc", "--demos", path, "--expert", cartpole_expert), "do not fit")
    assert not tmp_runs.exists() or not any(tmp_runs.iterdir())  # refused before a run was made


# Files a user found accepted, which then trained and reported wrong figures (issue #24): each
# is refused when loaded, naming the array and the rows, before a run is made.


@pytest.mark.parametrize("flaw", sorted(FLAWED_CARTPOLE_DEMOS))
def test_fixed_bug_a_dataset_whose_arrays_disagree_trained(tmp_path, flaw):
    change, message = FLAWED_CARTPOLE_DEMOS[flaw]
    demos = _cartpole_demos()
    demos.update(change(demos) if callable(change) else change)
    write_flawed("demos", demos, tmp_path / "demos.npz")
    (tmp_path / "file").write_text("")
    code, err = invoke(["bc", "--demos", tmp_path / "demos.npz", "--run-dir", tmp_path / "file" / "run"])
    assert_one_error_line(code, err, f"{tmp_path / 'demos.npz'}: {message}")


def test_fixed_bug_a_dataset_whose_lengths_do_not_add_up_left_a_run(tmp_path, tmp_runs, cartpole_expert):
    """As a user saw it: one line, exit 2, no run directory (it trained, held out "1 episode, 7
    transitions" and reported a return)."""
    demos = {**_cartpole_demos(), "episode_lengths": np.array([3, 4], np.int32)}
    write_flawed("demos", demos, tmp_path / "demos.npz")
    proc = il("bc", "--demos", tmp_path / "demos.npz", "--expert", cartpole_expert, "--num-steps", "50",
              "--eval-episodes", "2", check=False)
    assert_user_error(proc, "episode_lengths sum to 7, but the arrays have 15 rows")
    assert not tmp_runs.exists() or not any(tmp_runs.iterdir())


@pytest.mark.parametrize("content", [b"hello, this is text\n", bytes(range(256)) * 2],
                         ids=["text", "random-bytes"])
@pytest.mark.parametrize("option", ["bc --demos", "prefs --prefs-file", "rlhf --task text --rankings"])
def test_fixed_bug_a_file_that_is_not_an_archive_was_called_a_pickle(tmp_path, content, option):
    """np.load called these "pickled (object) data" and suggested loading them unsafely."""
    path = tmp_path / "file.npz"
    path.write_bytes(content)
    code, err = invoke([*option.split(), path])
    assert_one_error_line(code, err, f"{path} is not a", "not an .npz archive")
    assert "pickle" not in err and "allow_pickle" not in err


def test_fixed_bug_a_sweep_over_a_zero_size_was_a_traceback(tmp_path):
    (tmp_path / "file").write_text("")
    code, err = invoke(["bc", "--sweep", "hidden=0,64", "--run-dir", tmp_path / "file" / "run"])
    assert_one_error_line(code, err, "--sweep hidden=0: --hidden sizes must be positive, got '0'")


# --- bugs the properties found: fixed ones stay as regression tests; an open one is xfail (strict
# where it is deterministic: a fix makes it fail; then drop the marker
# and the KNOWN_BUGS entry) --------------------------------------------------------------


def test_fixed_bug_an_empty_file_as_demos(tmp_path):
    assert_one_error_line(*_demos_error(tmp_path, lambda p: p.write_bytes(b"")), "not an il dataset")


def test_fixed_bug_a_header_that_is_a_big_integer(tmp_path):
    assert_one_error_line(*_demos_error(tmp_path, lambda p: np.savez(
        p, header=np.array(2**62), obs=np.zeros((2, 4)), actions=np.zeros(2))), "not an il dataset")


def test_fixed_bug_actions_that_are_a_scalar(tmp_path):
    assert_one_error_line(*_demos_error(tmp_path, lambda p: np.savez(
        p, header=np.frombuffer(b'{"schema_version": 2, "env_id": "CartPole-v1"}', np.uint8),
        obs=np.zeros((2, 4)), actions=np.array(1))))


def test_fixed_bug_a_line_break_in_a_datasets_env_id(tmp_path):
    from il_cli.data import Dataset, save_dataset

    assert_one_error_line(*_demos_error(tmp_path, lambda p: save_dataset(
        p, Dataset({"env_id": "Cart\nPole"}, np.zeros((2, 4), np.float32), np.zeros(2, np.int32), np.array([2]),
                   np.zeros(1)))))


def test_fixed_bug_eval_of_a_corrupt_manifest_printed_tracebacks_at_exit(finished_bc_run, tmp_path):
    """Orbax's abandoned reads completed after its event loop closed ("Event loop is
    closed" tracebacks around the error line, 2 times in 3)."""
    run = tmp_path / "run"
    shutil.copytree(finished_bc_run, run)
    (run / "checkpoints" / str(max(checkpoint_steps(run))) / "default" / "manifest.ocdbt").write_bytes(bytes.fromhex(
        "574607a7bb0c42ca4f5a274569fe6d784377c4b443ff370db7fae99e067053fdf6a02884"))
    for _ in range(3):
        proc = il("eval", run, check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: cannot read the checkpoint"), proc.stderr


def test_fixed_bug_eval_of_a_relative_run_path(finished_bc_run):
    """`il eval runs/x` (a relative path) failed: Orbax wants absolute checkpoint paths."""
    proc = subprocess.run([sys.executable, "-m", "il_cli", "eval", finished_bc_run.name, "--json"],
                          cwd=finished_bc_run.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["eval"]["return_mean"] > 0


@pytest.mark.parametrize("option", ["--batch-size", "--eval-episodes"])
def test_fixed_bug_a_count_past_int64(cartpole_expert, tmp_runs, option):
    assert_user_error(il_here("bc", "--expert", cartpole_expert, "--episodes", "1", "--num-steps", "10",
                         "--eval-episodes", "2", option, str(2**64)), option)


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--num-steps", str(10**20)), ("--seeds", str(10**8), "--sweep", "lr=1e-3",
                                                                   "--episodes", "0")], ids=["num-steps", "seeds"])
def test_fixed_bug_huge_counts_hang(cartpole_expert, tmp_runs, args):
    assert_user_error(il("bc", "--expert", cartpole_expert, "--episodes", "1", "--eval-episodes", "2", *args,
                         timeout=60, check=False))  # (a process of its own: a hang ends in the timeout)
