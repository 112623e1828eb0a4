"""`il rlhf --task text`: the loss identities on token sequences, the held-out split, the
command end to end (PPO-ptx and DPO), its errors, and a person ranking answers in a real
terminal (pexpect)."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pexpect
import pytest
from helpers import assert_user_error, il, il_here, il_json, invoke
from helpers import last_stdout as helpers_stdout

from il_cli.algos.rlhf import kway_loss
from il_cli.algos.text_rlhf import (
    answer_log_probs,
    answer_logits,
    lm_loss,
    make_text_reward,
    scaled_head,
    sequence_log_likelihood,
    text_dpo_score,
)
from il_cli.runs import Run
from il_cli.text import human
from il_cli.text.model import Transformer, token_log_probs
from il_cli.text.task import (
    BOS,
    PROMPT_LEN,
    SEQ_LEN,
    answer_mask,
    corpus,
    is_held_out,
    make_prompts,
    noisy_answers,
    reference_answers,
    train_prompts,
)

# test_resume's slow rlhf-text case runs this config with --seeds 2, as the end-to-end test does
TINY = ("--task", "text", "--pretrain-steps", "100", "--sft-steps", "50", "--rm-steps", "50", "--num-prompts", "32",
        "--updates", "2", "--dpo-steps", "2", "--d-model", "32", "--rm-d-model", "32")


@pytest.fixture(scope="module")
def lm():
    model = Transformer(d_model=32)
    return model, model.init(jax.random.PRNGKey(0), jnp.zeros((1, SEQ_LEN - 1), jnp.int32))


def test_answer_log_likelihoods_agree(lm):
    model, params = lm
    prompts = make_prompts(jax.random.PRNGKey(1), 8)
    answers = noisy_answers(jax.random.PRNGKey(2), prompts, 0.5)
    direct = token_log_probs(model, params, prompts, answers)
    np.testing.assert_allclose(answer_log_probs(answer_logits(model, params, prompts, answers), answers), direct,
                               rtol=1e-6)
    rows = jnp.concatenate([prompts, answers], 1)
    np.testing.assert_allclose(sequence_log_likelihood(model, params, rows)[:, PROMPT_LEN - 1:], direct, rtol=1e-6)
    mask = answer_mask(answers)
    sft = lm_loss(model, PROMPT_LEN)(params, rows)  # SFT: only the answer up to <eos> counts
    np.testing.assert_allclose(sft, -jnp.sum(jnp.where(mask, direct, 0)) / mask.sum(), rtol=1e-6)


def test_dpo_score_is_zero_at_the_reference_policy_and_its_kway_loss_is_log_2(lm):
    model, params = lm
    prompts = jnp.repeat(make_prompts(jax.random.PRNGKey(3), 2), 3, axis=0).reshape(2, 3, -1)
    answers = noisy_answers(jax.random.PRNGKey(4), prompts.reshape(6, -1), 0.7).reshape(2, 3, -1)
    score = text_dpo_score(model)(params, prompts, answers, answer_mask(answers), params, 0.1)
    np.testing.assert_array_equal(score, np.zeros((2, 3)))
    np.testing.assert_allclose(kway_loss(score), np.log(2), rtol=1e-6)  # eq. 24.12 with r_i = r_j


def test_reward_model_reads_the_last_answer_token():
    rm = Transformer(d_model=32, head="scalar")
    prompts = make_prompts(jax.random.PRNGKey(5), 4)
    answers = reference_answers(prompts)
    params = rm.init(jax.random.PRNGKey(6), jnp.zeros((1, SEQ_LEN - 1), jnp.int32))
    mask = answer_mask(answers)
    score = make_text_reward(rm)(params, prompts[:, None], answers[:, None], mask[:, None])[:, 0]
    values = rm.apply(params, jnp.concatenate([prompts, answers], 1))
    last = PROMPT_LEN + mask.sum(-1) - 1
    np.testing.assert_allclose(score, values[jnp.arange(4), last], rtol=1e-6)


def test_held_out_prompts_never_occur_in_training_or_pretraining():
    train = {tuple(p) for p in np.asarray(train_prompts(jax.random.PRNGKey(7), 2048))}
    held = {tuple(p) for p in np.asarray(train_prompts(jax.random.PRNGKey(8), 512, held_out=True))}
    assert len(held) > 300 and not train & held  # (count prompts repeat: 4⁴ of them in all)
    rows = np.asarray(corpus(jax.random.PRNGKey(9), 128, SEQ_LEN))
    in_corpus = np.array([row[t:t + PROMPT_LEN] for row in rows for t in np.flatnonzero(row == BOS)
                          if t + PROMPT_LEN <= len(row)])
    assert len(in_corpus) > 50 and not np.any(is_held_out(jnp.asarray(in_corpus)))


def test_the_value_function_starts_on_the_scale_of_the_rewards_it_predicts():
    rm = Transformer(d_model=32, head="scalar")
    tokens = jnp.concatenate([make_prompts(jax.random.PRNGKey(10), 4), reference_answers(make_prompts(
        jax.random.PRNGKey(10), 4))], 1)
    params = rm.init(jax.random.PRNGKey(11), tokens)
    np.testing.assert_allclose(rm.apply(scaled_head(params, 3.5), tokens), 3.5 * rm.apply(params, tokens), rtol=1e-5)


@pytest.fixture(scope="module")
def single_text_run(tmp_path_factory) -> dict:
    """The run --seed 1 of TINY, read by the end-to-end test; the DPO and --human tests (after
    it, on the same worker: --dist loadfile) reuse its compiled programs."""
    return il_json("rlhf", *TINY, "--seed", "1", "--run-dir", tmp_path_factory.mktemp("text") / "seed1")


def test_text_rlhf_end_to_end(single_text_run):
    run = single_text_run
    assert run["rl"]["method"] == "ppo" and run["reward_model"]["ranker"] == "simulated"
    assert run["sft"]["gold"] > run["pretrained"]["gold"]  # SFT on the writer's answers helps
    assert run["gold_gain"] > 0 and run["rl"]["kl"] > 0  # two PPO updates already move π toward the gold score
    assert run["reward_model"]["holdout"] == {"rankings": 3} and run["rl"]["kl_unit"].startswith("nats per answer")
    assert len(run["examples"]) == 6 and {"prompt", "sft", "rlhf"} <= set(run["examples"][0])
    rows = Run(run["run_dir"]).metrics()
    assert [r["step"] for r in rows] == [1, 2]
    assert {"gold_return", "kl", "proxy_reward", "corpus_log_likelihood", "ranking_accuracy",
            "gold_pair_accuracy"} <= set(rows[-1])
    assert (Path(run["run_dir"]) / "rlhf.png").stat().st_size > 0
    assert il_json("eval", run["run_dir"])["eval"]["return_mean"] == run["eval"]["return_mean"]  # reproduced
    sft = il_json("eval", run["run_dir"], "--stage", "sft")
    assert sft["eval"]["gold"] == run["sft"]["gold"] and sft["eval"]["kl"] == 0


@pytest.mark.slow  # a second program (vmapped members); control RLHF's member k is checked by default
def test_text_member_k_is_the_run_with_seed_s_plus_k(tmp_runs, single_text_run):
    summary = il_json("rlhf", *TINY, "--seeds", "2")
    assert len(summary["members"]) == 2 and len(Run(summary["run_dir"]).metrics()) == 4
    single = single_text_run  # member 1 is the run --seed 1
    assert single["examples"] == summary["members"][1]["examples"]
    for block in ("eval", "pretrained", "sft", "reward_model", "rl"):
        for name, value in single[block].items():
            if isinstance(value, float) and not name.endswith(("_s", "per_s")):  # (a vmapped program's float sums
                # differ in the last bits, and PPO on sampled answers grows that to about 0.1%)
                assert summary["members"][1][block][name] == pytest.approx(value, rel=5e-3, abs=1e-5), (block, name)


def test_text_dpo_end_to_end(tmp_runs, single_text_run):
    summary = il_json("rlhf", *TINY, "--method", "dpo", "--seed", "1")  # the programs of the run --seed 1
    rm = summary["reward_model"]
    assert summary["rl"]["method"] == "dpo" and rm["model"] == "implicit"  # no r_θ: DPO fits π to the rankings
    assert rm["holdout"] == {"rankings": 3} and np.isfinite(rm["ranking_accuracy"])
    assert "the final policy's implicit reward" in rm["measured_on"]
    rows = Run(summary["run_dir"]).metrics()
    assert {"ranking_accuracy", "gold_pair_accuracy", "kl"} <= set(rows[-1])


@pytest.mark.parametrize("args, fragment", [
    (("--task", "text", "--env", "CartPole"), "--env: not an option of --task text"),
    (("--task", "text", "--human"), "--human needs --rankings"),
    (("--task", "text", "--human", "--rankings", "r.npz", "--seeds", "2"), "one member"),
    (("--task", "text", "--rankings", "missing.npz"), "no such file"),
    (("--task", "text", "--k", "1"), "--k must be at least 2"),
    (("--task", "text", "--human", "--rankings", "r.npz", "--k", "12"), "a person ranks 2 to 9"),
    (("--task", "text", "--d-model", "30"), "--d-model 30 must be a multiple of --num-heads 4"),
    (("--task", "text", "--num-layers", "0"), "--num-layers must be positive"),
    (("--updates", "5",), "only with --task text"),
    (("--task", "speech",), "--task must be control or text"),
    (("--task", "text", "--human", "--rankings", "r.npz", "--distributed"), "not with --distributed"),
    (("--task", "text", "--sweep", "d_model=32,4x4"), "whole number"),
])
def test_text_errors_are_one_line(args, fragment, tmp_runs):
    assert_user_error(il_here("rlhf", *args), fragment)


def spawn(args, cwd):
    child = pexpect.spawn(sys.executable, ["-m", "il_cli", "rlhf", *args], cwd=str(cwd), encoding="utf-8",
                          timeout=240, dimensions=(40, 160))
    return child


def test_a_person_ranks_and_the_pipeline_trains_on_their_rankings(tmp_path, tmp_runs, single_text_run):
    """--human with the answers typed in: a malformed order re-asked, two rankings saved, q
    stops ranking and the reward model and PPO train on the person's rankings (the terminal
    itself, Ctrl-C and --resume: the slow pexpect test below and tests/test_human.py)."""
    code, err = invoke(["rlhf", *TINY, "--seed", "1", "--human", "--rankings", tmp_path / "r.npz", "--json"],
                       input="1124\n3124\n2 1 3 4\nq\n")
    assert code == 0, err
    assert "names answer 1 twice" in err
    saved = human.load_rankings(tmp_path / "r.npz")
    assert saved["order"][0].tolist() == [2, 0, 1, 3] and saved["status"][:3].tolist() == [1, 1, 0]
    rm = json.loads(helpers_stdout())["reward_model"]
    assert rm["ranker"] == "person" and rm["rankings"] + rm["held_out_rankings"] == 2


@pytest.mark.slow  # the same through a real terminal, with Ctrl-C and --resume (two processes, a minute)
@pytest.mark.filterwarnings("ignore:os.fork")  # pexpect's child execs `il` at once: no JAX thread is copied
def test_a_person_ranks_in_the_terminal_and_resumes(tmp_path, tmp_runs):
    """--human through a pseudo-terminal: a malformed order re-asked, rankings saved after each
    answer, the labelling interrupted (Ctrl-C) and continued with --resume, then the pipeline
    trains on them."""
    args = [*TINY, "--seed", "1", "--human", "--rankings", "r.npz", "--run-dir", "run"]  # TINY's programs
    child = spawn(args, tmp_path)
    child.expect("prompt 1/32")
    child.expect(r"best first \(s skip, q stop\): ")
    child.sendline("1124")
    child.expect("names answer 1 twice")
    child.sendline("3124")
    child.expect("prompt 2/32")
    saved = human.load_rankings(tmp_path / "r.npz")
    assert saved["order"][0].tolist() == [2, 0, 1, 3] and saved["status"][:4].tolist() == [1, 0, 0, 0]
    child.expect(r"best first \(s skip, q stop\): ")
    child.sendintr()  # Ctrl-C: the command stops, saying how to go on
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in child.before
    assert "ranked 1, skipped 0, left 31 of 32" in child.before and "il rlhf --resume" in child.before

    child = spawn(["--resume", "run"], tmp_path)  # the saved config: --human, the same file
    child.expect("prompt 2/32")
    for order in ("s", "2 1 3 4", "1,3,2,4", "q"):
        child.expect(r"best first \(s skip, q stop\): ")
        child.sendline(order)
    child.expect(pexpect.EOF, timeout=300)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "Traceback" not in child.before and "prompt 1/32" not in child.before
    summary = Run(tmp_path / "run").summary
    assert summary["reward_model"]["ranker"] == "person"
    assert summary["reward_model"]["rankings"] + summary["reward_model"]["held_out_rankings"] == 3
    saved = human.load_rankings(tmp_path / "r.npz")
    assert saved["status"][:5].tolist() == [1, 2, 1, 1, 0]
    proc = il("rlhf", "--resume", tmp_path / "run", "--task", "control", check=False)
    assert proc.returncode == 2 and "is a --task text run" in proc.stderr
