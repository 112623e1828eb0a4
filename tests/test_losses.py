"""Every loss and estimator against hand-computed numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from il_cli import networks
from il_cli.algos.bc import bc_loss
from il_cli.algos.ppo import Transition, gae, ppo_loss
from il_cli.envs import EnvSpec


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


CARTPOLE = EnvSpec("CartPole-v1", (4,), True, 2)
PENDULUM = EnvSpec("Pendulum-v1", (3,), False, 1, (-2.0,), (2.0,), 200)


def test_tv_stochastic_discrete_is_one_minus_prob_of_expert_action():
    logits = jnp.log(jnp.array([[0.7, 0.3], [0.1, 0.9]]))
    tv = networks.tv_sample(CARTPOLE, logits, jnp.array([0, 0]), None, jax.random.PRNGKey(0))
    np.testing.assert_allclose(tv, [0.3, 0.9], rtol=1e-6)


def test_tv_greedy_discrete_is_disagreement():
    logits = jnp.log(jnp.array([[0.7, 0.3], [0.1, 0.9], [0.4, 0.6]]))
    tv = networks.tv_mode(CARTPOLE, logits, jnp.array([0, 0, 1]))
    np.testing.assert_array_equal(tv, [0.0, 1.0, 0.0])


def test_tv_greedy_continuous_closed_form():
    out = jnp.array([[0.5, -3.0], [2.5, -3.0]])  # learner means 0.5 and 2.5 (beyond the bound)
    tv = networks.tv_mode(PENDULUM, out, jnp.array([[0.0], [1.5]]), jnp.array([0.5]))
    # TV(N(0.5, .25), N(0, .25)) = 2Φ(Δ/2σ) − 1 with Δ/σ = 1; 2.5 executes as 2.0, Δ/σ = 1 again
    np.testing.assert_allclose(tv, [2 * norm.cdf(0.5) - 1] * 2, rtol=1e-5)


def test_tv_stochastic_continuous_monte_carlo_against_numerical_integral():
    """TV(N(0.3, 0.2²), N(0, 0.5²)) by quadrature, against the Monte Carlo estimate."""
    x = np.linspace(-5, 5, 200_001)
    exact = 0.5 * np.sum(np.abs(norm(0.3, 0.2).pdf(x) - norm(0, 0.5).pdf(x))) * (x[1] - x[0])
    out = jnp.tile(jnp.array([[0.3, np.log(0.2)]]), (4000, 1))
    tv = networks.tv_sample(PENDULUM, out, jnp.zeros((4000, 1)), jnp.array([0.5]), jax.random.PRNGKey(0))
    assert float(tv.mean()) == pytest.approx(exact, abs=0.005)
    same = networks.tv_sample(PENDULUM, jnp.array([[0.0, np.log(0.5)]]), jnp.zeros((1, 1)),
                              jnp.array([0.5]), jax.random.PRNGKey(0))
    assert float(same[0]) == pytest.approx(0.0, abs=1e-6)


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


def test_ppo_combined_loss_with_entropy_bonus():
    """L = pg + c_v·value_loss − c_e·H, with c_e > 0 (value 0.5·mean((0 − 1)²) = 0.5)."""
    logits = jnp.log(jnp.array([[0.6, 0.4], [0.6, 0.4]]))
    params = {"actor": logits, "critic": jnp.array([0.0, 0.0])}
    tr = Transition(obs=None, action=jnp.array([0, 1]), log_prob=jnp.log(jnp.array([0.6, 0.4])),
                    value=None, reward=None, terminated=None, done=None, next_value=None)
    adv, targets = jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0])
    loss, m = ppo_loss(params, (tr, adv, targets), FixedLogits(), FixedLogits(), True, 0.2, 0.5, 0.1)
    entropy = -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))
    pg = -np.mean([1.0, -1.0])  # ratio 1, normalized advantages ±1
    assert float(loss) == pytest.approx(pg + 0.5 * 0.5 - 0.1 * entropy, rel=1e-5)
    assert float(m["loss"]) == float(loss)


def test_sample_and_mode():
    key = jax.random.PRNGKey(0)
    logits = jnp.log(jnp.array([[0.0001, 0.9999]]))
    assert int(networks.mode(True, logits)[0]) == 1
    assert int(networks.sample(True, logits, key)[0]) == 1
    out = jnp.array([[1.5, -20.0]])
    assert float(networks.sample(False, out, key)[0, 0]) == pytest.approx(1.5, abs=1e-6)
