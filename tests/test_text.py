"""il_cli.text: the task's answers and judge by hand, the corpus's demonstrations, the
transformer's causal mask, log-likelihoods and sampling, and that it learns the corpus."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from il_cli.text import model, task
from il_cli.text.model import Transformer, answer_mask, sample
from il_cli.text.task import (
    ANSWER_LEN,
    BOS,
    EOS,
    PAD,
    PROMPT_LEN,
    SEP,
    SEQ_LEN,
    TASKS,
    VOCAB,
    VOCAB_SIZE,
    decode,
    encode,
)

# the library's functions are traced inside their caller's jit; here each is jitted alone
make_prompts = jax.jit(task.make_prompts, static_argnums=1)
corpus = jax.jit(task.corpus, static_argnums=(1, 2))
reference_answers, noisy_answers, gold_score = map(jax.jit, (task.reference_answers, task.noisy_answers,
                                                             task.gold_score))
token_log_probs = jax.jit(model.token_log_probs, static_argnums=0)
MODEL = Transformer()
init, apply = jax.jit(MODEL.init), jax.jit(MODEL.apply)
TOKENS = jnp.zeros((1, SEQ_LEN), jnp.int32)  # the shape that initialises the model


@pytest.fixture(scope="module")
def params():
    return init(jax.random.PRNGKey(0), TOKENS)


@pytest.fixture(scope="module")
def prompts():
    """Many prompts for the task's statistics; the model's tests take the first 64."""
    return make_prompts(jax.random.PRNGKey(1), 1024)


def answers_of(*texts):
    """Answers as the writer lays them out: tokens, <eos>, <pad>s."""
    return jnp.array([encode(t) + [EOS] + [PAD] * (ANSWER_LEN - 1 - len(encode(t))) for t in texts], jnp.int32)


def test_vocabulary_encode_decode():
    assert VOCAB_SIZE == len(VOCAB) == len(set(VOCAB)) <= 48
    assert (PAD, BOS, SEP, EOS) == (0, 1, 2, 3)
    text = "<bos> sort 3 1 2 0 <sep> 0 1 2 3 the big cat sees the dog ."
    assert decode(encode(text)) == text
    assert decode(encode("<bos> count a <sep> 1 <eos> 7 8") + [PAD]) == "<bos> count a <sep> 1"
    assert decode(np.array([PAD, *encode("a b"), PAD])) == "a b"
    with pytest.raises(ValueError, match="unknown token 'e'"):
        encode("sort e 1")


def test_prompts_layout_and_reference_answers_by_hand(prompts):
    assert prompts.shape == (1024, PROMPT_LEN) and prompts.dtype == jnp.int32
    assert np.all(prompts[:, 0] == BOS) and np.all(prompts[:, -1] == SEP)
    assert {VOCAB[i] for i in np.asarray(prompts[:, 1])} == set(TASKS)
    assert reference_answers(prompts).shape == (1024, ANSWER_LEN)
    by_hand = {"sort 3 1 9 0": "0 1 3 9", "reverse a c 9 b": "b 9 c a", "count a b a c": "2", "count d b c b": "0"}
    x = jnp.array([encode(f"<bos> {p} <sep>") for p in by_hand])
    np.testing.assert_array_equal(reference_answers(x), answers_of(*by_hand.values()))
    assert decode(reference_answers(x)[2]) == "2"


def test_answer_mask_by_hand():
    answers = jnp.array([[5, 6, EOS, PAD, PAD, PAD], [EOS, 7, EOS, 1, 1, 1], [5, 5, 5, 5, 5, 5]])
    np.testing.assert_array_equal(answer_mask(answers), [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])


def test_gold_score_is_maximal_at_the_reference_and_graded_by_hand():
    x = jnp.array([encode("<bos> sort 3 1 9 0 <sep>")] * 6 + [encode("<bos> count a b a c <sep>")] * 3)
    y = answers_of("0 1 3 9",     # the reference: 4/4 + <eos>, exact          2
                   "1 0 3 9",     # swap: 3 of 5 positions                      0.6
                   "0 1 9",       # drop: 2 of 5                                0.4
                   "0 1 1 3 9",   # repeat: 2 of 5, one token too many          0.3
                   "0 1 3 9 c",   # junk: 4 of 5, one token too many            0.7
                   "0 1 3")       # drop the last: 3 of 5                       0.6
    y_count = answers_of("2", "3", "2 2")  # reference 2; off by one 0.5; repeat 0.5 − 0.1
    no_eos = jnp.array([encode("0 1 3 9 9 9")])  # 4 of 5, |y| = 6, no <eos>: 0.8 − 0.1 − 0.5
    after_eos = answers_of("0 1 3 9").at[0, -1].set(encode("7")[0])  # what follows <eos> is ignored
    score = gold_score(jnp.concatenate([x, x[:2]]), jnp.concatenate([y, y_count, no_eos, after_eos]))
    assert score.dtype == jnp.float32
    np.testing.assert_allclose(score, [2.0, 0.6, 0.4, 0.3, 0.7, 0.6, 2.0, 0.5, 0.4, 0.2, 2.0], atol=1e-6)


def test_noisy_answers_make_every_kind_of_mistake(prompts):
    x = prompts
    np.testing.assert_array_equal(noisy_answers(jax.random.PRNGKey(2), x, 0.0), reference_answers(x))
    best = gold_score(x, reference_answers(x))
    np.testing.assert_array_equal(best, 2.0)
    noisy = gold_score(x, noisy_answers(jax.random.PRNGKey(4), x, 1.0))
    assert np.all(noisy < best)
    scores, lists = np.round(np.asarray(noisy, np.float64), 4), np.asarray(x[:, 1]) != encode("count")[0]
    # swap 0.6; drop at position i (i/5: what follows shifts) 0, 0.2, 0.4, 0.6; repeat at i ((i+1)/5 − 0.1) 0.1, 0.3,
    # 0.5, 0.7; junk 0.7. Count: off by one 0.5, drop 0, repeat or junk 0.5 − 0.1
    assert set(scores[lists]) == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}
    assert set(scores[~lists]) == {0.0, 0.4, 0.5}
    half = gold_score(x, noisy_answers(jax.random.PRNGKey(5), x, 0.5))
    assert abs(np.mean(half < 2.0) - 0.5) < 0.04


def test_corpus_packs_sentences_and_almost_right_demonstrations():
    rows = np.asarray(corpus(jax.random.PRNGKey(6), 32, 40))
    assert rows.shape == (32, 40) and rows.dtype == np.int32 and np.all(rows != PAD)
    demos = [np.pad(row, (0, SEQ_LEN))[i:i + SEQ_LEN] for row in rows for i in np.flatnonzero(row == BOS)
             if EOS in row[i:i + SEQ_LEN]]  # the complete demonstrations
    assert len(demos) > 32
    demos = np.stack(demos)
    gold = gold_score(jnp.asarray(demos[:, :PROMPT_LEN]), jnp.asarray(demos[:, PROMPT_LEN:]))
    assert np.all(gold < 2.0) and np.mean(gold) > 0.3  # the format, never the task done right
    text = " ".join(decode(row) for row in rows)
    assert "sees the" in text or "likes the" in text or "chases the" in text


def test_causal_mask_leaves_earlier_positions_unchanged_exactly(params, prompts):
    tokens = jnp.concatenate([prompts, reference_answers(prompts)], 1)[:64]
    changed = tokens.at[:, 9].set((tokens[:, 9] + 1) % VOCAB_SIZE)
    logits, logits_changed = apply(params, tokens), apply(params, changed)
    assert logits.shape == (64, SEQ_LEN, VOCAB_SIZE)
    np.testing.assert_array_equal(logits[:, :9], logits_changed[:, :9])
    assert not np.allclose(logits[:, 9:], logits_changed[:, 9:])
    critic = Transformer(head="scalar")
    values, values_changed = jax.jit(lambda key: jax.vmap(critic.apply, (None, 0))(
        critic.init(key, tokens), jnp.stack([tokens, changed])))(jax.random.PRNGKey(7))
    assert values.shape == (64, SEQ_LEN)
    np.testing.assert_array_equal(values[:, :9], values_changed[:, :9])


def test_token_log_probs_by_hand(params, prompts):
    x = prompts[:64]
    answers = noisy_answers(jax.random.PRNGKey(8), prompts, 0.5)[:64]
    logp = token_log_probs(MODEL, params, x, answers)
    assert logp.shape == (64, ANSWER_LEN)
    logits = np.asarray(apply(params, jnp.concatenate([x, answers], 1)), np.float64)
    log_softmax = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
    for b in range(3):
        for t in range(ANSWER_LEN):  # position PROMPT_LEN − 1 + t predicts answer token t
            assert logp[b, t] == pytest.approx(log_softmax[b, PROMPT_LEN - 1 + t, answers[b, t]], abs=1e-5)


def test_sampling_is_seeded_and_pads_after_eos(params, prompts):
    x = prompts[:64]
    a = sample(MODEL, params, x, jax.random.PRNGKey(9))
    assert a.shape == (64, ANSWER_LEN) and a.dtype == jnp.int32
    np.testing.assert_array_equal(a, sample(MODEL, params, x, jax.random.PRNGKey(9)))
    assert not np.array_equal(a, sample(MODEL, params, x, jax.random.PRNGKey(10)))
    mask = answer_mask(a)
    assert np.any(a == EOS) and np.all(np.where(mask, True, a == PAD))
    total = jnp.sum(jnp.where(mask, token_log_probs(MODEL, params, x, a), 0.0), axis=1)
    assert np.all(np.isfinite(total)) and np.all(total < 0)
    greedy = sample(MODEL, params, x, jax.random.PRNGKey(9), 0.0)
    np.testing.assert_array_equal(greedy, sample(MODEL, params, x, jax.random.PRNGKey(10), 0.0))
    logits = apply(params, jnp.concatenate([x, greedy], 1))
    np.testing.assert_array_equal(greedy[:, 0], jnp.argmax(logits[:, PROMPT_LEN - 1], -1))


def test_vmapped_members_equal_each_member_alone(params, prompts):
    x = prompts[:64]
    member_params = jax.tree.map(lambda *p: jnp.stack(p), params, init(jax.random.PRNGKey(11), TOKENS))
    keys = jax.random.split(jax.random.PRNGKey(12), 2)

    def member(params, key):  # as a vmapped training program holds its members
        answers = sample(MODEL, params, x, key)
        return answers, token_log_probs(MODEL, params, x, answers)

    together, logp = jax.jit(jax.vmap(member))(member_params, keys)
    for m in range(2):
        alone = jax.tree.map(lambda p: p[m], member_params)
        np.testing.assert_array_equal(together[m], sample(MODEL, alone, x, keys[m]))
        np.testing.assert_allclose(logp[m], token_log_probs(MODEL, alone, x, together[m]), atol=1e-5)
    assert not np.array_equal(together[0], together[1])


def test_next_token_training_on_the_corpus_lowers_the_loss():
    """60 Adam steps, each on the 96 windows of 13 tokens of 32 fresh corpus rows of 40 tokens."""
    params, tx = init(jax.random.PRNGKey(13), TOKENS), optax.adam(3e-3)

    def loss_fn(params, tokens):
        logp = jax.nn.log_softmax(MODEL.apply(params, tokens[:, :-1]))
        return -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1))

    @jax.jit  # a Python loop over steps: compiling a scan of them takes seconds longer
    def step(params, opt_state, rows):
        loss, grads = jax.value_and_grad(loss_fn)(params, rows[:, :39].reshape(-1, SEQ_LEN))
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for key in jax.random.split(jax.random.PRNGKey(14), 60):
        params, opt_state, loss = step(params, opt_state, corpus(key, 32, 40))
        losses.append(float(loss))
    assert losses[0] == pytest.approx(np.log(VOCAB_SIZE), abs=0.2)  # uniform at initialisation
    assert np.mean(losses[-10:]) < 0.6 * losses[0]
