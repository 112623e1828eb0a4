"""Learning from state-action preferences (lecture section 24.2.3).

Data D = {(s, a, b, y)}: at state s a teacher says how much it prefers a to b, y = P(a ≻ b)
in {0, ½, 1}. The learner fits

    p(a ≻ b | s) = σ(Q(s, a) − Q(s, b))                                        (eq. 24.11)

by cross-entropy, and acts with the maximum-entropy policy π(a|s) ∝ exp(Q(s, a)/α).

`param="policy"` instead trains log π directly through σ(α log π(a|s) − α log π(b|s)):
the one-step (contextual bandit) case of Contrastive Preference Learning (Hejna et al.,
2024) and of DPO without a reference policy (Rafailov et al., 2023). Since
log π = Q/α − log Z(s) and log Z(s) cancels in the difference, both parameterisations
describe the same preferences; they differ in what the network outputs.

Teachers are simulated from an expert π* (B-Pref's Oracle, Stoc, Mistake, Skip and Equal,
Lee et al., 2021, and a skip-near-ties rule of our own), with
score(s, a) = log π*(a|s): the expert's log-probability for discrete actions, and for
continuous ones the log-density of N(a*, Σ*) around its executed action a* (the mode,
clipped to the bounds) with its own std Σ*. A Boltzmann teacher with rationality β
prefers a with probability σ(β(score a − score b)); fitting it exactly gives
Q = β log π* + c(s), so π ∝ exp(Q/α) = π*^(β/α) (normalised): at α = β the expert itself.
"""

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.algos.fit import FitState, make_fit
from il_cli.envs import EnvSpec

NUM_CANDIDATES = 128  # actions at which a continuous Q is evaluated to act
NEAR_EXPERT_WIDTH = 0.1  # std of near-expert candidates, as a fraction of the action range


def candidate_actions(spec: EnvSpec, num: int = NUM_CANDIDATES):
    """Fixed actions spread over the action box: an even grid in 1-D, else uniform draws
    from a fixed key (the same for every state, so the greedy action is deterministic)."""
    low = jnp.asarray(spec.action_low, jnp.float32).reshape(spec.action_dim)
    high = jnp.asarray(spec.action_high, jnp.float32).reshape(spec.action_dim)
    if spec.action_dim == 1:
        u = jnp.linspace(0.0, 1.0, num)[:, None]
    else:
        u = jax.random.uniform(jax.random.PRNGKey(0), (num, spec.action_dim))
    return low + (high - low) * u


@dataclass(frozen=True)
class PreferencePolicy:
    """The learner as an actor: `apply(params, obs) -> out` in the format of
    il_cli.networks (logits, or Gaussian mean and log-std), so evaluation, ε and `il eval`
    treat it as any policy. `params` is {"net": network parameters, "temperature": α}.

    q, discrete: logits Q(s, ·)/α, i.e. π ∝ exp(Q/α) exactly. q, continuous: π ∝ exp(Q/α)
    over `candidate_actions`, summarised by a Gaussian centred at its mode (the candidate
    with the largest Q, so the greedy action is argmax Q) with its std. policy: the
    network's own softmax or Gaussian π."""

    spec: EnvSpec
    net: Any
    param: str

    def q_values(self, net_params, obs, actions):
        """Q(s, a) for a batch of states [B, ...] and actions [B] / [B, d]; for `param="policy"`
        the log-probability log π(a|s) (Q/α up to a state's constant)."""
        if self.param == "q" and not self.spec.discrete:
            return self.net.apply(net_params, obs, actions)
        out = self.net.apply(net_params, obs)
        if self.param == "q":
            return jnp.take_along_axis(out, actions[..., None].astype(jnp.int32), -1)[..., 0]
        return networks.log_prob(self.spec.discrete, out, actions)

    def apply(self, params, obs):
        net_params, alpha = params["net"], params["temperature"]
        if self.param == "policy":
            return self.net.apply(net_params, obs)
        if self.spec.discrete:
            return self.net.apply(net_params, obs) / alpha
        cands = candidate_actions(self.spec)  # [K, d]
        batch = obs.shape[: obs.ndim - len(self.spec.obs_shape)]
        flat = obs.reshape(-1, *self.spec.obs_shape)
        q = jax.vmap(lambda a: self.net.apply(net_params, flat, jnp.broadcast_to(a, (len(flat), a.shape[0]))))(cands)
        w = jax.nn.softmax(q / alpha, axis=0)  # [K, B]
        mean = jnp.einsum("kb,kd->bd", w, cands)
        var = jnp.einsum("kb,kbd->bd", w, (cands[:, None, :] - mean[None]) ** 2)
        mode = cands[jnp.argmax(q, axis=0)]  # [B, d]
        return jnp.concatenate([mode, 0.5 * jnp.log(var + 1e-6)], -1).reshape(*batch, 2 * self.spec.action_dim)

    def init(self, key, obs0):
        if self.param == "q" and not self.spec.discrete:
            return self.net.init(key, obs0, jnp.zeros((obs0.shape[0], self.spec.action_dim)))
        return self.net.init(key, obs0)


def make_policy(spec: EnvSpec, param: str, hidden, activation: str) -> PreferencePolicy:
    if param == "q" and not spec.discrete:
        net = networks.make_state_action(spec, hidden, activation)
    else:  # discrete Q: one head per action; policy: the usual actor
        net = networks.make_actor(spec, hidden, activation)
    return PreferencePolicy(spec, net, param)


# --- data: states, candidate pairs, teachers -------------------------------------------


def expert_score(spec: EnvSpec, expert_out, action):
    """score(s, a) = log π*(a|s) (discrete), or log N(a; a*, Σ*) with a* the expert's
    executed action (continuous)."""
    if spec.discrete:
        return networks.log_prob(True, expert_out, action)
    a_star = networks.clip_action(spec, networks.mode(False, expert_out))
    log_std = jnp.split(expert_out, 2, axis=-1)[1]
    return networks.log_prob(False, jnp.concatenate([a_star, log_std], -1), action)


def sample_pairs(spec: EnvSpec, key, expert_out):
    """Two distinct candidate actions per state. Discrete: an ordered pair drawn uniformly
    among the pairs of different actions. Continuous: each candidate independently, with
    probability ½ near the expert (a* + N(0, (0.1·range)²)) and otherwise uniform over the
    action box, clipped to the bounds."""
    n = expert_out.shape[0]
    k1, k2, k3, k4 = jax.random.split(key, 4)
    if spec.discrete:
        a = jax.random.randint(k1, (n,), 0, spec.action_dim)
        b = (a + jax.random.randint(k2, (n,), 1, spec.action_dim)) % spec.action_dim
        return a.astype(jnp.int32), b.astype(jnp.int32)
    low = jnp.asarray(spec.action_low, jnp.float32).reshape(spec.action_dim)
    high = jnp.asarray(spec.action_high, jnp.float32).reshape(spec.action_dim)
    a_star = networks.clip_action(spec, networks.mode(False, expert_out))

    def draw(k_near, k_far):
        kn, ku, kc = jax.random.split(k_near, 3)
        near = a_star + NEAR_EXPERT_WIDTH * (high - low) * jax.random.normal(kn, a_star.shape)
        far = rollout.uniform_action(spec, ku, a_star.shape)
        pick_near = jax.random.bernoulli(k_far, 0.5, (n, 1))
        return networks.clip_action(spec, jnp.where(pick_near, near, far))

    return draw(k1, k3), draw(k2, k4)


def teach(teacher: str, key, score_a, score_b, hyper):
    """(label y = P(a ≻ b), asked, oracle label) from the expert's scores.

    oracle: the better-scored action wins (½ on an exact tie). noisy (B-Pref's Stoc):
    Boltzmann-rational, y ~ Bernoulli(σ(β·(score a − score b))), β = `teacher_beta`. mistake
    (B-Pref's Mistake): the oracle's label flipped with probability `mistake_rate`. skip
    (B-Pref's Skip): a pair in which both actions score below `teacher_skip_score` (neither is
    any good) is not asked. skip-ties: pairs with |score gap| < δ (`teacher_threshold`) are
    not asked. equal (B-Pref's Equal): such near-ties are labelled ½ (a soft target).
    """
    gap = score_a - score_b
    oracle = jnp.where(gap > 0, 1.0, jnp.where(gap < 0, 0.0, 0.5))
    asked = jnp.ones_like(gap, bool)
    near_tie = jnp.abs(gap) < hyper["teacher_threshold"]
    if teacher == "oracle":
        label = oracle
    elif teacher == "noisy":
        label = jax.random.bernoulli(key, jax.nn.sigmoid(hyper["teacher_beta"] * gap)).astype(jnp.float32)
    elif teacher == "mistake":
        flip = jax.random.bernoulli(key, hyper["mistake_rate"], gap.shape)
        label = jnp.where(flip, 1.0 - oracle, oracle)
    elif teacher == "skip":
        label, asked = oracle, jnp.maximum(score_a, score_b) >= hyper["teacher_skip_score"]
    elif teacher == "skip-ties":
        label, asked = oracle, ~near_tie
    elif teacher == "equal":
        label = jnp.where(near_tie, 0.5, oracle)
    else:
        raise ValueError(f"unknown teacher {teacher}")
    return label, asked, oracle


def make_generate(env, env_params, spec: EnvSpec, expert, num_streams: int, horizon: int,
                  state_source: str, teacher: str):
    """generate(key, expert_params, hyper) -> dict of [num_streams·horizon] rows, stream
    after stream: `obs`, `action_a`, `action_b`, `label`, `asked`.

    States: `num_streams` environments run for `horizon` steps (auto-reset within a stream)
    by the deterministic expert ("expert"), or, at every step, the expert with probability ½
    and a uniformly random action otherwise ("uniform-mix": states off the expert's
    distribution). Each state gets one pair of candidate actions and the teacher's label;
    the teacher is a jit-compiled transform of the expert's scores."""
    reset, run = rollout.make_rollout(env, env_params, spec, num_streams)

    def generate(key, expert_params, hyper):
        reset_key, run_key, pair_key, teach_key = jax.random.split(key, 4)

        def act(obs, key, aux):
            a_star, _ = rollout.expert_action(spec, expert, expert_params, obs)
            if state_source == "expert":
                return a_star, None, aux
            k_coin, k_act = jax.random.split(key)
            other = rollout.uniform_action(spec, k_act, a_star.shape)
            coin = jax.random.bernoulli(k_coin, 0.5, (num_streams,) + (1,) * (a_star.ndim - 1))
            return jnp.where(coin, a_star, other), None, aux

        _, _, obs = run(act, lambda s: s.obs, reset(reset_key), run_key, horizon)
        obs = jnp.swapaxes(obs, 0, 1).reshape(num_streams * horizon, *spec.obs_shape)
        expert_out = expert.apply(expert_params, obs)
        a, b = sample_pairs(spec, pair_key, expert_out)
        label, asked, _ = teach(teacher, teach_key, expert_score(spec, expert_out, a),
                                expert_score(spec, expert_out, b), hyper)
        return {"obs": obs, "action_a": a, "action_b": b, "label": label, "asked": asked}

    return generate


# --- the learner -----------------------------------------------------------------------


def preference_logit(policy: PreferencePolicy, params, obs, a, b):
    """Δ(s) with p(a ≻ b | s) = σ(Δ): Q(s,a) − Q(s,b) (eq. 24.11), or α(log π(a|s) − log π(b|s))."""
    net, alpha = params["net"], params["temperature"]
    delta = policy.q_values(net, obs, a) - policy.q_values(net, obs, b)
    return delta if policy.param == "q" else alpha * delta


def preference_loss(delta, label, asked):
    """Cross-entropy −[y log σ(Δ) + (1 − y) log σ(−Δ)], averaged over the asked pairs."""
    ce = -(label * jax.nn.log_sigmoid(delta) + (1.0 - label) * jax.nn.log_sigmoid(-delta))
    weight = asked.astype(jnp.float32)
    return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def make_prefs(policy: PreferencePolicy, batch_size: int):
    """(init(key, obs0, lr, temperature) -> FitState, train_chunk(state, data, num_steps)):
    il_cli.algos.fit's minibatch Adam on `preference_loss`, `data` being (obs, action_a,
    action_b, label, asked, size). The state's params are {"net", "temperature": α}; Adam
    updates "net" only."""

    def loss(params, obs, a, b, label, asked):
        return preference_loss(preference_logit(policy, params, obs, a, b), label, asked)

    fit_init, _, train_chunk = make_fit(loss, batch_size, trainable="net")

    def init(key, obs0, lr, temperature) -> FitState:
        init_key, train_key = jax.random.split(key)
        return fit_init({"net": policy.init(init_key, obs0), "temperature": jnp.asarray(temperature, jnp.float32)},
                        train_key, lr)

    return init, train_chunk


def make_prefs_metrics(spec: EnvSpec, policy: PreferencePolicy, expert, eval_policy: str):
    """metrics(params, expert_params, obs, a, b, label, asked, key) on held-out states:
    preference accuracy against the expert's true preference (pairs it does not tie) and
    against the teacher's labels (asked, not ½), the held-out loss, the policy's entropy,
    and TV(π, π*) there, of the evaluated and of the stochastic policy."""

    def metrics(params, expert_params, obs, a, b, label, asked, key):
        delta = preference_logit(policy, params, obs, a, b)
        expert_out = expert.apply(expert_params, obs)
        gap = expert_score(spec, expert_out, a) - expert_score(spec, expert_out, b)
        decided = (gap != 0).astype(jnp.float32)
        labelled = (asked & (label != 0.5)).astype(jnp.float32)
        a_star, std = rollout.expert_action(spec, expert, expert_params, obs)
        out = policy.apply(params, obs)
        return {
            "preference_accuracy": jnp.sum(((delta > 0) == (gap > 0)) * decided) / jnp.maximum(decided.sum(), 1),
            "label_accuracy": jnp.sum(((delta > 0) == (label > 0.5)) * labelled) / jnp.maximum(labelled.sum(), 1),
            "holdout_loss": preference_loss(delta, label, asked),
            "entropy": jnp.mean(networks.entropy(spec.discrete, out)),
            "tv_holdout_states": jnp.mean(networks.tv_to_expert(spec, eval_policy, out, a_star, std, key)),
            "tv_holdout_states_stochastic": jnp.mean(networks.tv_sample(spec, out, a_star, std, key)),
        }

    return metrics


def stream_lengths(num_rows: int, horizon: int) -> np.ndarray:
    """Lengths of the environment streams that `make_generate` lays out one after another."""
    full, rest = divmod(num_rows, horizon)
    return np.array([horizon] * full + ([rest] if rest else []), np.int32)
