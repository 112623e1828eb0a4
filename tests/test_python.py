"""The Python entry point: `il_cli.run` is the command line's run, in a notebook or a script."""

import pytest
from helpers import TINY_BC

from il_cli import run
from il_cli.errors import UserError
from il_cli.runs import Run


def test_run_from_python_is_the_command_lines_run(tmp_runs, cartpole_expert):
    summary = run("bc", expert=cartpole_expert, seeds=2, quiet=True, **TINY_BC)
    assert [m["seed"] for m in summary["members"]] == [0, 1]
    run_dir = Run(summary["run_dir"])
    assert run_dir.meta["command"] == "bc" and run_dir.summary == summary
    assert run("bc", resume=summary["run_dir"], quiet=True) == summary  # finished: its summary again
    with pytest.raises(UserError, match="--episodes must be positive"):
        run("bc", episodes=-1)
    with pytest.raises(UserError, match="has no option lrr .did you mean lr"):
        run("bc", lrr=3)
