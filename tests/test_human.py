"""The terminal ranker of `il rlhf --task text --human`, driven as a person would: the real
program in a pseudo-terminal (pexpect), keys typed, the rankings file read while it waits."""

import io
import os
import pickle
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pexpect
import pytest

from il_cli.errors import UserError
from il_cli.text import human

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # the child execs python at once: no JAX thread is copied

PROMPTS = np.array([[11, 12], [21, 22], [31, 32]], np.int32)
ANSWERS = (PROMPTS[:, None, :] * 100 + np.arange(1, 5)[None, :, None]).astype(np.int32)  # answer 4 to 11 12: 1104 1204
ASK = "order of 1..4, best first (s skip, q stop): "
DRIVER = f"""
import sys
from pathlib import Path
import numpy as np
from rich.console import Console
from il_cli.text import human
prompts, answers, path = np.array({PROMPTS.tolist()}), np.array({ANSWERS.tolist()}), Path(sys.argv[1])
rankings = human.load_rankings(path, prompts, answers) if path.exists() else human.new_rankings(prompts, answers)
render = lambda row: " ".join(map(str, row))
try:
    human.rank_in_terminal(Console(), rankings, render, render, path)
except KeyboardInterrupt:
    sys.exit(130)
"""


def spawn(path):
    child = pexpect.spawn(sys.executable, ["-c", DRIVER, str(path)], cwd=ROOT, encoding="utf-8", timeout=15,
                          env={**os.environ, "TERM": "xterm-256color"})
    child.logfile_read = io.StringIO()  # the whole transcript
    return child


def asked(child, prompt: int) -> str:
    """Wait until `prompt` (1-based) is shown and its order asked for; what was shown."""
    child.expect_exact(f"prompt {prompt}/3")
    child.expect_exact(ASK)
    return child.before


def finish(child, last_line: str, code: int = 0) -> str:
    child.expect_exact(last_line)
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.logfile_read.getvalue()
    assert child.exitstatus == code and "Traceback" not in transcript, transcript
    return transcript


def on_disk(path):
    r = human.load_rankings(path, PROMPTS, ANSWERS)
    return r["status"].tolist(), r["order"].tolist()


def test_each_ranking_is_on_disk_before_the_next_prompt(tmp_path):
    path = tmp_path / "rankings.npz"
    child = spawn(path)
    shown = asked(child, 1)
    assert "11 12" in shown and all(f"11{j} 12{j}" in shown for j in "01 02 03 04".split())
    assert on_disk(path) == ([0, 0, 0], [[-1] * 4] * 3)
    child.sendline("3142")
    asked(child, 2)
    assert on_disk(path) == ([1, 0, 0], [[2, 0, 3, 1], [-1] * 4, [-1] * 4])  # while it waits for the second
    child.sendline("1 2 3 4")
    asked(child, 3)
    assert on_disk(path) == ([1, 1, 0], [[2, 0, 3, 1], [0, 1, 2, 3], [-1] * 4])
    child.sendline("s")
    finish(child, f"ranked 2, skipped 1, left 0 of 3 — saved to {path}")
    index, orders = human.ranked(human.load_rankings(path))
    assert index.tolist() == [0, 1] and orders.tolist() == [[2, 0, 3, 1], [0, 1, 2, 3]]


def test_a_malformed_order_gets_one_line_and_is_asked_again_then_q_keeps_what_was_typed(tmp_path):
    path = tmp_path / "rankings.npz"
    child = spawn(path)
    asked(child, 1)
    for typed, complaint in [("3312", "names answer 3 twice"), ("12", "ranks 2 of the 4 answers"),
                             ("abcd", "is not an order"), ("5123", "has 5, but the answers are numbered 1..4"),
                             ("", "expected each of 1..4 once")]:
        child.sendline(typed)
        child.expect_exact(ASK)
        lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", child.before).splitlines() if line.strip()]
        assert lines[-1].startswith(f"'{typed}' {complaint}" if typed else complaint), lines
        assert lines[-1].endswith("expected each of 1..4 once, best first, e.g. 4321") and len(lines) <= 2, lines
        assert "prompt 2/3" not in child.before
    child.sendline("4,3,2,1")
    asked(child, 2)
    child.sendline("q")
    finish(child, f"ranked 1, skipped 0, left 2 of 3 — saved to {path}")
    assert on_disk(path) == ([1, 0, 0], [[3, 2, 1, 0], [-1] * 4, [-1] * 4])


@pytest.mark.parametrize("interrupt", ["ctrl-c", "sigkill"])
def test_an_interrupted_session_resumes_at_the_first_prompt_not_shown(tmp_path, interrupt):
    path = tmp_path / "rankings.npz"
    child = spawn(path)
    asked(child, 1)
    child.sendline("3142")
    asked(child, 2)
    if interrupt == "ctrl-c":
        child.sendintr()  # stops labelling and interrupts the command
        finish(child, f"ranked 1, skipped 0, left 2 of 3 — saved to {path}", code=130)
    else:
        child.kill(signal.SIGKILL)
        child.expect(pexpect.EOF)
        child.close()
        assert child.signalstatus == signal.SIGKILL
    child = spawn(path)
    shown = asked(child, 2)
    assert "prompt 1/3" not in shown and "21 22" in shown
    child.sendline("s")
    asked(child, 3)
    child.sendeof()  # Ctrl-D stops as q does
    transcript = finish(child, f"ranked 1, skipped 1, left 1 of 3 — saved to {path}")
    assert "prompt 1/3" not in transcript
    assert on_disk(path) == ([1, 2, 0], [[2, 0, 3, 1], [-1] * 4, [-1] * 4])


def _pickled_array(path):
    arrays = human.new_rankings(PROMPTS, ANSWERS)
    np.savez(path, **{**arrays, "answers": np.array([{"tokens": 1}], dtype=object)})


def _truncated(path):
    human.save_rankings(path, human.new_rankings(PROMPTS, ANSWERS))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _not_a_permutation(path):
    rankings = human.new_rankings(PROMPTS, ANSWERS)
    rankings["order"][1], rankings["status"][1] = [0, 0, 1, 2], 1
    human.save_rankings(path, rankings)


def _other_answers(path):
    human.save_rankings(path, human.new_rankings(PROMPTS, ANSWERS + 1))


def _other_prompts(path):
    human.save_rankings(path, human.new_rankings(PROMPTS[:2], ANSWERS[:2]))


def _plain_pickle(path):
    path.write_bytes(pickle.dumps(human.new_rankings(PROMPTS, ANSWERS)))


def _text(path):
    path.write_text("3142\n1234\n")


def _status_out_of_range(path):
    rankings = human.new_rankings(PROMPTS, ANSWERS)
    rankings["status"][2] = 7
    human.save_rankings(path, rankings)


def _skipped_with_an_order(path):
    rankings = human.new_rankings(PROMPTS, ANSWERS)
    rankings["order"][0], rankings["status"][0] = [0, 1, 2, 3], human.SKIPPED
    human.save_rankings(path, rankings)


@pytest.mark.parametrize("make, complaint", [
    (_pickled_array, "is not a rankings file: its 'answers' array holds pickled Python objects, which il never"),
    (_truncated, "is not a rankings file (BadZipFile"),
    (_not_a_permutation, "the order of prompt 2 is [0, 0, 1, 2], not a permutation of 0..3"),
    (_other_answers, "holds rankings of other answers (its answers differ from these at prompt 1)"),
    (_other_prompts, "holds rankings of other answers (its prompts are (2, 2), these (3, 2))"),
    (_plain_pickle, "is not a rankings file: it is a Python pickle, not an .npz archive; il never unpickles"),
    (_text, "is not a rankings file: it is not an .npz archive"),
    (_status_out_of_range, "status of prompt 3 is 7, not 0 (not yet shown), 1 (ranked) or 2 (skipped)"),
    (_skipped_with_an_order, "the order of prompt 1 is [0, 1, 2, 3], not all −1 (it is not ranked)"),
])
def test_load_rankings_refuses_a_file_it_cannot_trust(tmp_path, make, complaint):
    path = tmp_path / "rankings.npz"
    make(path)
    with pytest.raises(UserError) as error:
        human.load_rankings(path, PROMPTS, ANSWERS)
    message = str(error.value)
    assert message.startswith(str(path)) and complaint in message and "\n" not in message, message
    assert "allow_pickle" not in message  # never the advice to load it unsafely


@pytest.mark.parametrize("args,complaint", [
    (("--num-prompts", "5", "--k", "4"), "holds rankings of 3 prompts with 4 answers each, not --num-prompts 5 with --k 4"),
    (("--num-prompts", "3", "--k", "4"), "holds 0 ranking(s); rank at least 2"),
])
def test_a_rankings_file_that_cannot_serve_is_refused_before_a_run_is_made(tmp_path, args, complaint):
    """Checked before anything runs (pretraining took minutes before the file was read)."""
    from helpers import assert_user_error, il

    human.save_rankings(tmp_path / "r.npz", human.new_rankings(PROMPTS, ANSWERS))
    env = {"IL_RUNS_DIR": str(tmp_path / "runs")}
    proc = il("rlhf", "--task", "text", "--rankings", tmp_path / "r.npz", *args, "--pretrain-steps", "10",
              "--sft-steps", "10", "--rm-steps", "10", "--updates", "1", check=False, env=env, timeout=300)
    assert_user_error(proc, f"{tmp_path / 'r.npz'} {complaint}")
    assert not (tmp_path / "runs").exists()


def test_more_answers_than_digits_is_a_user_error():
    with pytest.raises(UserError, match="--k 10: a person ranks 2 to 9 answers"):
        human.new_rankings(PROMPTS, np.zeros((3, 10, 2), np.int32))
