"""A tiny decoder-only transformer (GPT-2's layout, Radford et al. 2019) over il_cli.text.task's
tokens: the policy ("lm" head) and the reward model and value function ("scalar" head), with
the log-likelihood of answers and autoregressive sampling."""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from il_cli.text.task import ANSWER_LEN, PAD, SEQ_LEN, VOCAB_SIZE, answer_mask

INIT = nn.initializers.normal(0.02)  # GPT-2's initialisation of every weight matrix and embedding
HEADS = ("lm", "scalar")


class Block(nn.Module):
    """A pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x)), a GELU MLP of width 4·d."""

    num_heads: int

    @nn.compact
    def __call__(self, x, mask):
        d = x.shape[-1]
        x = x + nn.MultiHeadDotProductAttention(self.num_heads, kernel_init=INIT)(nn.LayerNorm()(x), mask=mask)
        h = nn.gelu(nn.Dense(4 * d, kernel_init=INIT)(nn.LayerNorm()(x)))
        return x + nn.Dense(d, kernel_init=INIT)(h)


class Transformer(nn.Module):
    """tokens int32 [B, T ≤ max_len] -> logits [B, T, V] ("lm", the policy) or one scalar per
    position [B, T] ("scalar": the reward model reads it at the response's last token, the
    value function at every position); position t sees tokens 0…t only (a causal mask).
    Learned position embeddings, no dropout."""

    vocab_size: int = VOCAB_SIZE
    num_layers: int = 2
    d_model: int = 64
    num_heads: int = 4
    max_len: int = SEQ_LEN
    head: str = "lm"

    @nn.compact
    def __call__(self, tokens):
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {self.head!r}")
        x = nn.Embed(self.vocab_size, self.d_model, embedding_init=INIT)(tokens)
        x = x + self.param("position_embedding", INIT, (self.max_len, self.d_model))[:tokens.shape[-1]]
        mask = nn.make_causal_mask(tokens)
        for _ in range(self.num_layers):
            x = Block(self.num_heads)(x, mask)
        x = nn.LayerNorm()(x)
        if self.head == "lm":
            return nn.Dense(self.vocab_size, kernel_init=INIT)(x)
        return nn.Dense(1, kernel_init=INIT)(x)[..., 0]


def token_log_probs(model, params, prompts, answers):
    """log π(y_t | x, y_<t) of every answer token, [B, ANSWER_LEN], from one forward pass over
    x ⊕ y (the logits at position p predict the token at p + 1)."""
    tokens = jnp.concatenate([prompts, answers], axis=1)
    logits = model.apply(params, tokens[:, :-1])[:, prompts.shape[1] - 1:]
    return jnp.take_along_axis(jax.nn.log_softmax(logits), answers[..., None], axis=-1)[..., 0]


@partial(jax.jit, static_argnums=0)
def sample(model, params, prompts, key, temperature=1.0):
    """Answers y ∼ π(·|x), int32 [B, ANSWER_LEN], one token per step of a `lax.scan`, each from
    softmax(logits / temperature) (argmax when temperature is 0), <pad> after the first <eos>.
    Each step recomputes the whole fixed buffer x ⊕ y, ANSWER_LEN forward passes over 12
    tokens (a KV cache would save little at these sizes); the causal mask keeps the <pad>s
    not yet written from changing the logits."""
    p = prompts.shape[1]
    tokens = jnp.concatenate([prompts, jnp.full((prompts.shape[0], ANSWER_LEN), PAD, jnp.int32)], axis=1)

    def step(tokens, t_key):
        t, step_key = t_key
        logits = jax.lax.dynamic_index_in_dim(model.apply(params, tokens[:, :-1]), p - 1 + t, axis=1, keepdims=False)
        drawn = jax.random.categorical(step_key, logits / jnp.maximum(temperature, 1e-6))
        token = jnp.where(temperature > 0, drawn, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
        return jax.lax.dynamic_update_index_in_dim(tokens, token, p + t, axis=1), None

    tokens, _ = jax.lax.scan(step, tokens, (jnp.arange(ANSWER_LEN), jax.random.split(key, ANSWER_LEN)))
    answers = tokens[:, p:]
    return jnp.where(answer_mask(answers), answers, PAD).astype(jnp.int32)
