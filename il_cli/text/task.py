"""A language task for InstructGPT in miniature: three instructions, a noisy writer of
demonstrations, a graded judge standing in for human labellers, and a pretraining corpus.

The vocabulary has 33 tokens: `<pad>` `<bos>` `<sep>` `<eos>`, the digits, the letters a–d,
the task words and twelve words of a small grammar. A prompt has one layout, without padding:

    <bos> task x1 x2 x3 x4 <sep>                                   (PROMPT_LEN = 7 tokens)

with task `sort` (four distinct digits; answer them in increasing order), `reverse` (four
distinct digits or letters; answer them in reverse order) or `count` (four letters a–d;
answer the number of a's as one digit). An answer is ANSWER_LEN = 6 tokens: the response,
then `<eos>`, then `<pad>` (`sort 3 1 2 0` -> `0 1 2 3 <eos> <pad>`). Everything on token
arrays is jittable, with static shapes.
"""

import jax
import jax.numpy as jnp
import numpy as np

SPECIALS = ("<pad>", "<bos>", "<sep>", "<eos>")
DIGITS = tuple("0123456789")
LETTERS = ("a", "b", "c", "d")
TASKS = ("sort", "reverse", "count")
WORDS = ("the", "big", "small", "cat", "dog", "bird", "fox", "sees", "likes", "chases", "and", ".")
VOCAB = SPECIALS + DIGITS + LETTERS + TASKS + WORDS
VOCAB_SIZE = len(VOCAB)
TOKEN_ID = {token: i for i, token in enumerate(VOCAB)}

PAD, BOS, SEP, EOS = range(len(SPECIALS))
DIGIT_0, LETTER_A, SORT, COUNT = TOKEN_ID["0"], TOKEN_ID["a"], TOKEN_ID["sort"], TOKEN_ID["count"]
NUM_ITEM_TOKENS = len(DIGITS) + len(LETTERS)  # digits then letters, ids DIGIT_0 … DIGIT_0 + 13

NUM_ITEMS = 4  # arguments per prompt
PROMPT_LEN = NUM_ITEMS + 3
ANSWER_LEN = NUM_ITEMS + 2  # room for one token too many, and <eos>
SEQ_LEN = PROMPT_LEN + ANSWER_LEN

EXACT_BONUS = 1.0
LENGTH_PENALTY = 0.1  # per response token beyond the reference's length
NO_EOS_PENALTY = 0.5


def encode(text: str) -> list[int]:
    """The ids of space-separated tokens."""
    unknown = [token for token in text.split() if token not in TOKEN_ID]
    if unknown:
        raise ValueError(f"unknown token {unknown[0]!r} in {text!r}; the vocabulary is: {' '.join(VOCAB)}")
    return [TOKEN_ID[token] for token in text.split()]


def decode(ids) -> str:
    """Space-separated tokens of a 1-D sequence of ids, up to (without) the first <eos>, <pad>s skipped."""
    tokens = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i != PAD:
            tokens.append(VOCAB[i])
    return " ".join(tokens)


def answer_mask(answers):
    """True for the tokens of the response, up to and including the first <eos>: [..., L] -> bool [..., L]."""
    eos = answers == EOS
    return jnp.cumsum(eos, axis=-1) - eos == 0


def _distinct(key, n: int, num_choices: int):
    """n rows of NUM_ITEMS distinct integers in [0, num_choices), uniformly (a random permutation's first)."""
    return jnp.argsort(jax.random.uniform(key, (n, num_choices)), axis=1)[:, :NUM_ITEMS]


def make_prompts(key, n: int):
    """n prompts with a uniformly random task and arguments: int32 [n, PROMPT_LEN]."""
    task_key, sort_key, reverse_key, count_key = jax.random.split(key, 4)
    task = jax.random.randint(task_key, (n, 1), 0, len(TASKS))  # the task word's id is SORT + task
    sort_args = DIGIT_0 + _distinct(sort_key, n, len(DIGITS))
    reverse_args = DIGIT_0 + _distinct(reverse_key, n, NUM_ITEM_TOKENS)
    count_args = LETTER_A + jax.random.randint(count_key, (n, NUM_ITEMS), 0, len(LETTERS))
    args = jnp.select([task == 0, task == 1], [sort_args, reverse_args], count_args)
    return jnp.concatenate([jnp.full((n, 1), BOS), SORT + task, args, jnp.full((n, 1), SEP)], 1).astype(jnp.int32)


def is_held_out(prompts):
    """Whether each prompt [n, PROMPT_LEN] is held out: a fixed hash of its tokens is 0 mod 5
    (one in five). Held-out prompts never occur in training, pretraining included."""
    weights = jnp.arange(1, prompts.shape[1] + 1) * 7919
    return jnp.sum(prompts * weights, axis=1) % 5 == 0


def train_prompts(key, n: int, held_out: bool = False):
    """n prompts of the training split, or of the held-out split (`is_held_out`), drawn from
    16n candidates (too few of the split has probability < 1e-30 for n ≥ 16)."""
    candidates = make_prompts(key, 16 * n)
    return candidates[jnp.argsort(is_held_out(candidates) != held_out, stable=True)[:n]]


def _reference(prompts):
    """(tokens [n, ANSWER_LEN], length [n]): the correct response, left-aligned, and its length without <eos>."""
    task, args = prompts[:, 1:2], prompts[:, 2:2 + NUM_ITEMS]
    lists = jnp.where(task == SORT, jnp.sort(args, axis=1), args[:, ::-1])
    count = DIGIT_0 + jnp.sum(args == LETTER_A, axis=1, keepdims=True)
    tokens = jnp.pad(jnp.where(task == COUNT, count, lists), ((0, 0), (0, ANSWER_LEN - NUM_ITEMS)))
    return tokens, jnp.where(task[:, 0] == COUNT, 1, NUM_ITEMS)


def _answers(tokens, length):
    """The first `length` tokens of each row, then <eos>, then <pad>: [n, ANSWER_LEN]."""
    t = jnp.arange(ANSWER_LEN)
    return jnp.where(t < length[:, None], tokens, jnp.where(t == length[:, None], EOS, PAD)).astype(jnp.int32)


def reference_answers(prompts):
    """The correct answer to every prompt, then <eos>, then <pad>: int32 [n, ANSWER_LEN]."""
    return _answers(*_reference(prompts))


def noisy_answers(key, prompts, noise):
    """A noisy programmatic writer of demonstrations, int32 [n, ANSWER_LEN]: the reference
    answer, with one mistake with probability `noise` per answer, of one of four kinds drawn
    uniformly: two adjacent tokens swapped (for `count`: the count off by one), a token
    dropped, a token repeated, a junk digit or letter added before <eos>. Every mistake makes
    the answer wrong (sort and reverse arguments are distinct)."""
    tokens, length = _reference(prompts)
    n = prompts.shape[0]
    apply_key, kind_key, pos_key, junk_key, sign_key = jax.random.split(key, 5)
    kind = jax.random.randint(kind_key, (n, 1), 0, 4)  # 0 swap / off by one, 1 drop, 2 repeat, 3 junk
    u = jax.random.uniform(pos_key, (n, 1))
    i = jnp.floor(u * length[:, None]).astype(jnp.int32)  # the token dropped or repeated
    swap = jnp.floor(u * (length[:, None] - 1)).astype(jnp.int32)  # the tokens swapped: swap, swap + 1
    t = jnp.arange(ANSWER_LEN)
    swapped = jnp.where(t == swap, t + 1, jnp.where(t == swap + 1, t - 1, t))
    source = jnp.select([kind == 0, kind == 1, kind == 2], [swapped, t + (t >= i), t - (t > i)], t)  # gathered from
    mistaken = jnp.take_along_axis(tokens, jnp.clip(source, 0, ANSWER_LEN - 1), axis=1)
    junk = DIGIT_0 + jax.random.randint(junk_key, (n, 1), 0, NUM_ITEM_TOKENS)
    mistaken = jnp.where((kind == 3) & (t == length[:, None]), junk, mistaken)
    is_count = prompts[:, 1:2] == COUNT
    sign = jnp.where((tokens[:, :1] == DIGIT_0) | jax.random.bernoulli(sign_key, 0.5, (n, 1)), 1, -1)
    mistaken = jnp.where(is_count & (kind == 0), tokens.at[:, :1].add(sign), mistaken)
    mistaken_length = length + jnp.select([kind[:, 0] == 1, kind[:, 0] >= 2], [-1, 1], 0)
    wrong = jax.random.bernoulli(apply_key, noise, (n,))
    return _answers(jnp.where(wrong[:, None], mistaken, tokens), jnp.where(wrong, mistaken_length, length))


def gold_score(prompts, answers):
    """The programmatic stand-in for human judgment, float32 [n]. With y the response (up to
    and including the first <eos>; what follows it is ignored), y* the reference, |·| lengths
    counted with <eos> (|y| = ANSWER_LEN when y has none):

        gold = (1/|y*|) Σ_{t<|y*|} 1[y_t = y*_t] + 1[y = y*]
               − 0.1 · max(0, |y| − |y*|) − 0.5 · 1[no <eos> in y]

    (the weights are EXACT_BONUS, LENGTH_PENALTY, NO_EOS_PENALTY): graded by the positions
    right, with its maximum 2 exactly at y = y* (any other response has a wrong position
    among the first |y*|, so it scores below 1)."""
    reference = reference_answers(prompts)
    ref_mask = answer_mask(reference)
    ref_length, length = ref_mask.sum(-1), answer_mask(answers).sum(-1)
    hits = jnp.sum((answers == reference) & ref_mask, -1)
    no_eos = ~jnp.any(answers == EOS, -1)
    too_long = jnp.maximum(0, length - ref_length)
    score = hits / ref_length + EXACT_BONUS * (hits == ref_length) - LENGTH_PENALTY * too_long - NO_EOS_PENALTY * no_eos
    return score.astype(jnp.float32)


def _compact(tokens, keep):
    """The kept tokens of each row moved to its front, in order, then <pad> (a stable sort)."""
    order = jnp.argsort(~keep, axis=-1, stable=True)
    return jnp.take_along_axis(jnp.where(keep, tokens, PAD), order, axis=-1)


def _sentences(key, n: int):
    """n sentences of the grammar S → NP verb NP [and NP] . ; NP → the [adjective] noun, each
    option taken with probability ½: [n, SEQ_LEN], left-aligned, <pad>-ended (6 to 12 tokens)."""
    adj_key, noun_key, verb_key, has_adj_key, has_and_key = jax.random.split(key, 5)
    adj = TOKEN_ID["big"] + jax.random.randint(adj_key, (n, 3), 0, 2)
    noun = TOKEN_ID["cat"] + jax.random.randint(noun_key, (n, 3), 0, 4)
    verb = TOKEN_ID["sees"] + jax.random.randint(verb_key, (n, 1), 0, 3)
    has_adj = jax.random.bernoulli(has_adj_key, 0.5, (n, 3))
    has_and = jax.random.bernoulli(has_and_key, 0.5, (n, 1))
    word = lambda w: jnp.full((n, 1), TOKEN_ID[w])
    yes = jnp.ones((n, 1), bool)
    np_tokens = [jnp.concatenate([word("the"), adj[:, k:k + 1], noun[:, k:k + 1]], 1) for k in range(3)]
    np_keep = [jnp.concatenate([yes, has_adj[:, k:k + 1], yes], 1) for k in range(3)]
    tokens = jnp.concatenate([np_tokens[0], verb, np_tokens[1], word("and"), np_tokens[2], word("."), word("<pad>")], 1)
    keep = jnp.concatenate([np_keep[0], yes, np_keep[1], has_and, np_keep[2] & has_and, yes, ~yes], 1)
    return _compact(tokens, keep)


def corpus(key, n: int, length: int):
    """A pretraining corpus, int32 [n, length]: each row packs segments end to end (no
    padding), starting at a segment, each segment with probability ½ an almost-right task
    demonstration `<bos> task x1 … x4 <sep> answer <eos>` (one mistake in every answer, as
    noisy_answers makes them: web text shows the format, never the task done right) and
    otherwise a grammar sentence (`the big cat sees the dog .`). Its prompts are training
    prompts: no held-out prompt occurs in it."""
    segment_key, demo_key, noise_key, sentence_key = jax.random.split(key, 4)
    m = -(-length // 6)  # segments per row: each has at least 6 tokens
    prompts = train_prompts(demo_key, n * m)  # never a held-out prompt
    demos = jnp.concatenate([prompts, noisy_answers(noise_key, prompts, 1.0)], 1)
    is_demo = jax.random.bernoulli(segment_key, 0.5, (n * m, 1))
    segments = jnp.where(is_demo, demos, _sentences(sentence_key, n * m)).reshape(n, m * SEQ_LEN)
    return _compact(segments, segments != PAD)[:, :length].astype(jnp.int32)
