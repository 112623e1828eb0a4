"""An interrupted run continued with --resume ends bit for bit where an uninterrupted one does."""


import jax
import numpy as np
import pytest
from helpers import final_params, il_here, il_json, interrupt_after_first_checkpoint

from il_cli.runs import Run


@pytest.mark.parametrize("args", [
    pytest.param(("bc", "--env", "CartPole", "--episodes", "5", "--num-steps", "8000", "--seeds", "2",
                  "--sweep", "lr=1e-3,3e-3"), marks=pytest.mark.slow),  # SIGKILL tests cover bc's members
    pytest.param(("expert", "--env", "CartPole", "--total-timesteps", "524288"), marks=pytest.mark.slow),
    pytest.param(("dagger", "--rounds", "16", "--steps-per-round", "4000", "--train-steps", "2000",
                  "--eval-episodes", "10", "--beta-schedule", "exponential"),
                 marks=pytest.mark.slow),  # and DAgger's buffer (tests/test_reliability.py)
    ("prefs", "--env", "CartPole", "--num-steps", "4000", "--seeds", "2", "--eval-episodes", "10"),
    pytest.param(("rlhf", "--demo-episodes", "2", "--num-prompts", "64", "--rm-steps", "300",
                  "--total-timesteps", "32768", "--eval-episodes", "10", "--seeds", "2", "--iterations", "2",
                  "--kl-target", "0.05"), marks=pytest.mark.slow),
    pytest.param(("rlhf", "--method", "dpo", "--demo-episodes", "2", "--sft-steps", "300", "--num-prompts", "32",
                  "--segment-length", "50", "--dpo-steps", "400", "--iterations", "2", "--eval-episodes", "10"),
                 marks=pytest.mark.slow),
    pytest.param(("rlhf", "--task", "text", "--pretrain-steps", "100", "--sft-steps", "50", "--rm-steps", "50",
                  "--num-prompts", "32", "--updates", "2", "--dpo-steps", "2", "--d-model", "32", "--rm-d-model",
                  "32", "--seeds", "2"), marks=pytest.mark.slow),  # test_text_rlhf's config; CI time (the SIGKILL
                                                                  # tests resume text runs in the slow set too)
], ids=["bc-sweep", "expert", "dagger", "prefs-seeds", "rlhf", "rlhf-dpo", "rlhf-text"])
def test_resume_matches_uninterrupted(args, tmp_path, cartpole_expert):
    if args[0] != "expert" and "text" not in args:
        args = (*args, "--expert", cartpole_expert)
    code, err = interrupt_after_first_checkpoint(args, tmp_path / "interrupted")
    assert code == 130, err
    assert f"il {args[0]} --resume {tmp_path / 'interrupted'}" in err and "Traceback" not in err
    assert Run(tmp_path / "interrupted").summary is None
    il_json(args[0], "--resume", tmp_path / "interrupted")
    il_json(*args, "--run-dir", tmp_path / "straight")

    a, b = final_params(tmp_path / "interrupted"), final_params(tmp_path / "straight")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    done = Run(tmp_path / "interrupted").summary
    assert done["eval"] == Run(tmp_path / "straight").summary["eval"]
    run = Run(tmp_path / "interrupted")
    for member in run.members:
        steps = [r["step"] for r in run.metrics(member=member["member"])]
        assert steps == sorted(set(steps))  # no duplicated chunks after the resume
    assert len(run.metrics()) == len(run.members) * len(steps)


def test_resume_of_finished_run_reprints_its_summary(cartpole_expert):
    proc = il_here("expert", "--resume", cartpole_expert)
    assert "already finished" in proc.stdout and "500.00" in proc.stdout
    assert il_json("expert", "--resume", cartpole_expert) == Run(cartpole_expert).summary


def test_resume_after_the_last_checkpoint_reports_the_whole_training(cartpole_expert, tmp_path):
    """Killed after its last checkpoint but before its summary: resuming trains nothing and
    reports the figures of the training that was done."""
    args = ("bc", "--expert", cartpole_expert, "--episodes", "2", "--num-steps", "400",
            "--eval-episodes", "4", "--run-dir", tmp_path / "run")
    first = il_json(*args)
    (tmp_path / "run" / "summary.json").unlink()
    again = il_json("bc", "--resume", tmp_path / "run")
    assert again["bc"]["train_loss"] == first["bc"]["train_loss"]
    assert again["bc"]["samples_per_s"] == first["bc"]["samples_per_s"] > 0
    assert again["eval"] == first["eval"] and again["bc"]["tv_expert_states"] == first["bc"]["tv_expert_states"]
