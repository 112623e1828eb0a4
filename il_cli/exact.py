"""Experts written down instead of trained: `networks.Actor` parameters set by hand so that its
mode action is a known policy (Rail's a*, MountainCar's energy pumping). No training noise:
the expert is the same on every machine and seed.
"""

import jax.numpy as jnp
import numpy as np

from il_cli.errors import UserError


def code_network(first_kernel, first_bias, hidden, head_kernel, head_bias, log_std=None) -> dict:
    """Actor parameters that carry a two-unit code: the first layer's units 0 and 1 are
    act(obs · first_kernel + first_bias), each further layer copies them with weight 3 (tanh and
    relu keep the sign of h_0 − h_1), and the head reads units 0 and 1 through `head_kernel`
    [2, out] plus `head_bias`. Every other weight and bias is zero."""
    if not hidden or min(hidden) < 2:
        raise UserError(f"an exact expert needs hidden layers at least 2 wide, got {tuple(hidden)}")
    first_kernel = np.asarray(first_kernel, np.float32)
    layers, biases = [], []
    code, bias = first_kernel, np.asarray(first_bias, np.float32)
    for width in hidden:
        kernel = np.zeros((len(code), width), np.float32)
        kernel[:, :2] = code
        layers.append(kernel)
        biases.append(np.pad(bias, (0, width - 2)))
        code, bias = 3 * np.eye(width, 2, dtype=np.float32), np.zeros(2, np.float32)
    layers.append(np.eye(hidden[-1], 2, dtype=np.float32) @ np.asarray(head_kernel, np.float32))
    biases.append(np.asarray(head_bias, np.float32))
    params = {f"Dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
              for i, (k, b) in enumerate(zip(layers, biases))}
    if log_std is not None:
        params["log_std"] = jnp.asarray(log_std, jnp.float32)
    return {"params": params}


def mountain_car(hidden, activation: str) -> dict:
    """MountainCar-v0 (actions left, none, right): push right iff −0.4x + 100v − 0.2 > 0, i.e.
    along the velocity, with the boundary tilted so that the car first swings back left from
    its start (v = 0, x ≈ −0.5). Mode logits ±10 for right/left, −20 for none."""
    k = 10.0
    return code_network(k * np.array([[-0.4, 0.4], [100, -100]]), k * np.array([-0.2, 0.2]), hidden,
                        [[-10, 0, 10], [10, 0, -10]], [0, -20, 0])


def mountain_car_continuous(hidden, activation: str) -> dict:
    """MountainCarContinuous-v0: force a = clip(20v, −1, 1) (pump energy, gently while slow, as
    the reward charges 0.1a² a step): exact for relu; with tanh a saturating curve of the same
    slope at v = 0. Action std e⁻³ ≈ 0.05."""
    depth = len(hidden)
    if activation == "relu":
        k, c = 20.0, 1 / 3 ** (depth - 1)  # h_0 − h_1 = 3^(depth−1)·20v
    else:
        k, c = 20 / (2 * 3 ** (depth - 1) * 0.6), 0.6  # slope 2·3^(depth−1)·k·c = 20 at v = 0; |a| up to 1.2
    return code_network(k * np.array([[0, 0], [1, -1]]), [0, 0], hidden, [[c], [-c]], [0], log_std=[-3.0])


def rail(env, hidden, activation: str = "tanh") -> dict:
    """Rail's a* in every cell (il_cli.rail): position x's one-hot adds 3 to unit a*(x, 0), a depth
    d > 0 adds 6 to unit 0 and −6 to unit 1 (off the rail a* = 0 whatever x); the head gives logits
    ±10·(h_a − h_{1−a}), about ±10 with tanh (P[wrong] ≈ 2·10⁻⁹), ±90 with relu."""
    on_rail = 3 * np.eye(2, dtype=np.float32)[env.correct_actions()]  # [N, 2]
    off_rail = np.array([[0, 0]] + [[6, -6]] * env.depth, np.float32)  # [D + 1, 2]
    return code_network(np.concatenate([on_rail, off_rail]), [0, 0], hidden, 10 * np.array([[1, -1], [-1, 1]]),
                        [0, 0])


# env id -> (what the expert does, its parameters from (env, hidden, activation))
EXACT_EXPERTS = {
    "Rail-v0": ("a* in every cell", rail),
    "MountainCar-v0": ("push along the velocity (−0.4x + 100v > 0.2: right)",
                       lambda env, hidden, activation: mountain_car(hidden, activation)),
    "MountainCarContinuous-v0": ("force clip(20v, −1, 1)",
                                 lambda env, hidden, activation: mountain_car_continuous(hidden, activation)),
}
