"""Rail-v0: a worst case for behavioral cloning (Theorem 24.1), and its exact expert.

One mistake off the expert's path costs the rest of the episode unless the learner knows
the way back, so BC's return gap grows like H²ε while DAgger's grows like Hε.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

SEED = 0x5A11  # fixes the correct action of every cell, the same for every instance


def correct_action(x, d):
    """a*(x, d) ∈ {0, 1}: on the rail (d = 0) the top bit of a 32-bit integer hash (lowbias32)
    of x and SEED, a fixed pseudo-random bit; off it, 0 (step back). `x` and `d` are integer
    arrays, numpy or jax (traced too): both give the same bits."""

    def mix(h):
        h = h ^ (h >> 16)
        h = h * np.uint32(0x7FEB352D)
        h = h ^ (h >> 15)
        h = h * np.uint32(0x846CA68B)
        return h ^ (h >> 16)

    on_rail = (mix(mix(x.astype(np.uint32) ^ np.uint32(SEED))) >> 31).astype(np.int32)
    return on_rail * (d == 0)


@struct.dataclass
class EnvState(environment.EnvState):
    x: jax.Array  # position along the rail, 0 … N−1
    d: jax.Array  # depth off the rail, 0 (on it) … D (lost)
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = 200  # H; may be replaced, and traced (vmapped over)


class Rail(environment.Environment[EnvState, EnvParams]):
    """A rail of N positions with D levels of depth off it; cells (x, d), start (0, 0).

    Two actions. On the rail (d = 0) each position has one correct action a*(x, 0), a fixed
    pseudo-random bit (`correct_action`): it advances x by 1 or 2 (each with probability ½;
    x is clipped at N − 1) with reward 1; the wrong one moves to (x, 1) with reward 0. Off
    the rail (0 < d < D) the correct action is always 0, "step back", to (x + 1, d − 1) (so a
    learner rejoins the rail past the position it got wrong); the other goes to d + 1;
    reward 0. At d = D (lost) every action stays, reward 0. Nothing
    terminates: episodes are truncated at `max_steps_in_episode` = H, so the expert (always
    correct, always on the rail) returns exactly H.

    The observation is [one-hot of x (N), one-hot of d (D + 1)]. On the rail a network
    knows a* only at the positions it was trained on (a coin flip elsewhere: ε comes from the
    positions the demonstrations missed). Off the rail the right action is the same at every
    x, so a learner shown a few off-rail states (DAgger) steps back from all of them, and a
    mistake costs it a couple of steps: gap ~ Hε. BC is never shown d > 0; there it acts on
    features it never trained, and with D = 2 about half its mistakes end lost for the rest
    of the episode, costing H − t for a mistake at step t: gap ~ H²ε, Theorem 24.1's worst case.
    """

    def __init__(self, num_positions: int = 1024, depth: int = 2):
        super().__init__()
        self.num_positions = num_positions  # N: 1024 > 2·500, the end is never reached for H ≤ 500
        self.depth = depth  # D
        self.obs_shape = (num_positions + depth + 1,)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key: jax.Array, state: EnvState, action, params: EnvParams
                 ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[Any, Any]]:
        correct = jnp.asarray(action).astype(jnp.int32) == correct_action(state.x, state.d)
        on_rail, lost = state.d == 0, state.d == self.depth
        advance = 1 + jax.random.bernoulli(key).astype(jnp.int32)
        step_back = ~on_rail & ~lost & correct  # rejoins the rail one position further on
        x = jnp.minimum(state.x + jnp.where(on_rail & correct, advance, step_back.astype(jnp.int32)),
                        self.num_positions - 1)
        d = jnp.where(lost | (on_rail & correct), state.d, jnp.where(correct, state.d - 1, state.d + 1))
        reward = (on_rail & correct).astype(jnp.float32)
        state = EnvState(x=x, d=d, time=state.time + 1)
        return (self.get_obs(state), state, reward, self.is_terminated(state, params),
                {"discount": self.discount(state, params)})

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        state = EnvState(x=jnp.int32(0), d=jnp.int32(0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> jax.Array:
        return jnp.concatenate([jax.nn.one_hot(state.x, self.num_positions, dtype=jnp.float32),
                                jax.nn.one_hot(state.d, self.depth + 1, dtype=jnp.float32)])

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Never: the time limit (gymnax's `is_truncated`) is the only end of an episode."""
        return jnp.array(False)

    @property
    def name(self) -> str:
        return "Rail-v0"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, self.obs_shape, jnp.float32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return spaces.Dict({"x": spaces.Discrete(self.num_positions), "d": spaces.Discrete(self.depth + 1),
                            "time": spaces.Discrete(params.max_steps_in_episode)})

    def all_actions_equivalent(self, obs) -> jax.Array:
        """True at the lost state (d = D), where every action stays: no action there is a
        mistake, so ε does not count one (il_cli.rollout.make_tv_measure)."""
        return obs[..., self.num_positions + self.depth] == 1

    def correct_actions(self) -> np.ndarray:
        """a*(x, 0) of every position x on the rail."""
        return correct_action(np.arange(self.num_positions), np.zeros(self.num_positions, np.int32))
