"""A user's own environment for `il`: any class with gymnax's API (reset, step, default_params,
observation_space, action_space) works as `--env my_envs:HeavyCartPole`, with this file's
directory on the Python path (or the module installed)."""

from gymnax.environments.classic_control.cartpole import CartPole


class HeavyCartPole(CartPole):
    """CartPole with a pole five times as heavy (masspole 0.5 instead of 0.1)."""

    @property
    def default_params(self):
        params = super().default_params
        return params.replace(masspole=0.5, total_mass=params.masscart + 0.5,
                              polemass_length=0.5 * params.length)


class NotAnEnv:
    """(For the tests: a class without gymnax's API.)"""
