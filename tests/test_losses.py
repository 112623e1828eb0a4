"""Every loss and estimator against hand-computed numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from il_cli import networks
from il_cli.algos.bc import bc_loss
from il_cli.algos.ppo import Transition, gae, ppo_loss


class FixedLogits:
    """A stand-in 'module' whose apply returns its params: lets a loss be checked by hand."""

    def apply(self, params, obs):
        return params


def test_bc_loss_is_negative_log_likelihood_categorical():
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]))
    loss = bc_loss(logits, FixedLogits(), True, None, jnp.array([0, 2]))
    assert loss == pytest.approx(-(np.log(0.7) + np.log(0.5)) / 2, rel=1e-6)


def test_bc_loss_gaussian():
    out = jnp.array([[0.0, np.log(2.0)]])  # N(0, 2²)
    loss = bc_loss(out, FixedLogits(), False, None, jnp.array([[1.0]]))
    assert loss == pytest.approx(-norm(0, 2).logpdf(1.0), rel=1e-6)


def test_tv_discrete_is_one_minus_prob_of_expert_action():
    logits = jnp.log(jnp.array([[0.7, 0.3], [0.1, 0.9]]))
    tv = networks.tv_to_expert(True, logits, jnp.array([0, 0]))
    np.testing.assert_allclose(tv, [0.3, 0.9], rtol=1e-6)


def test_tv_continuous_closed_form():
    out = jnp.array([[0.5, -3.0]])  # learner mean 0.5 (its std does not matter)
    tv = networks.tv_to_expert(False, out, jnp.array([[0.0]]), jnp.array([0.5]))
    # TV(N(0.5, .25), N(0, .25)) = 2Φ(Δ/2σ) − 1 with Δ/σ = 1
    assert float(tv[0]) == pytest.approx(2 * norm.cdf(0.5) - 1, rel=1e-5)


def test_gae_by_hand():
    # one env, 3 steps, γ = 0.5, λ = 1; episode terminates at t=1, bootstraps at t=2
    tr = Transition(obs=None, action=None, log_prob=None,
                    value=jnp.array([[1.0], [2.0], [3.0]]), reward=jnp.array([[1.0], [1.0], [1.0]]),
                    terminated=jnp.array([[0.0], [1.0], [0.0]]), done=jnp.array([[0.0], [1.0], [0.0]]),
                    next_value=jnp.array([[2.0], [9.0], [4.0]]))
    adv, targets = gae(tr, 0.5, 1.0)
    d0, d1, d2 = 1 + 0.5 * 2 - 1, 1 + 0 - 2, 1 + 0.5 * 4 - 3
    expected = [d0 + 0.5 * d1, d1, d2]  # no bootstrap through the terminal at t=1
    np.testing.assert_allclose(adv[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(targets[:, 0], np.array(expected) + [1, 2, 3], rtol=1e-6)


def test_gae_bootstraps_truncation_not_termination():
    base = dict(obs=None, action=None, log_prob=None, value=jnp.zeros((1, 1)),
                reward=jnp.zeros((1, 1)), done=jnp.ones((1, 1)), next_value=jnp.full((1, 1), 10.0))
    truncated, _ = gae(Transition(terminated=jnp.zeros((1, 1)), **base), 0.9, 0.95)
    terminated, _ = gae(Transition(terminated=jnp.ones((1, 1)), **base), 0.9, 0.95)
    assert float(truncated[0, 0]) == pytest.approx(9.0) and float(terminated[0, 0]) == 0.0


def test_ppo_clipped_objective_by_hand():
    """With ratio 1.5 and positive advantage, the clipped term (1.2·A) is the one used."""

    class Net:
        def apply(self, params, obs):
            return params

    logits = jnp.log(jnp.array([[0.6, 0.4], [0.6, 0.4]]))
    params = {"actor": logits, "critic": jnp.array([0.0, 0.0])}
    tr = Transition(obs=None, action=jnp.array([0, 0]), log_prob=jnp.log(jnp.array([0.4, 0.4])),
                    value=None, reward=None, terminated=None, done=None, next_value=None)
    adv, targets = jnp.array([1.0, -1.0]), jnp.array([1.0, 1.0])
    _, m = ppo_loss(params, (tr, adv, targets), Net(), Net(), True, 0.2, 0.5, 0.0)
    # normalized advantages ±1 (std of [1,-1] is 1); ratio 1.5 for both
    expected_pg = -np.mean([min(1.5 * 1, 1.2 * 1), min(1.5 * -1, 1.2 * -1)])
    assert float(m["pg_loss"]) == pytest.approx(expected_pg, rel=1e-5)
    assert float(m["value_loss"]) == pytest.approx(0.5, rel=1e-6)
    entropy = -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))
    assert float(m["entropy"]) == pytest.approx(entropy, rel=1e-6)


def test_sample_and_mode():
    key = jax.random.PRNGKey(0)
    logits = jnp.log(jnp.array([[0.0001, 0.9999]]))
    assert int(networks.mode(True, logits)[0]) == 1
    assert int(networks.sample(True, logits, key)[0]) == 1
    out = jnp.array([[1.5, -20.0]])
    assert float(networks.sample(False, out, key)[0, 0]) == pytest.approx(1.5, abs=1e-6)
