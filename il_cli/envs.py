"""Environment names, construction and action-space descriptions.

Name resolution does not import gymnax, so a wrong name is reported at once.
"""

import dataclasses
import importlib
import sys
import types
from dataclasses import dataclass

from il_cli.errors import UserError, suggest

# gymnax 1.0.1's `registered_envs` (tests check that this list matches it).
ENV_IDS = (
    "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar", "Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite",
    "UmbrellaChain-bsuite", "DiscountingChain-bsuite", "MNISTBandit-bsuite",
    "SimpleBandit-bsuite", "FourRooms-misc", "MetaMaze-misc", "PointRobot-misc",
    "BernoulliBandit-misc", "GaussianBandit-misc", "Reacher-misc", "Swimmer-misc",
    "Pong-misc", "FrozenLake-misc",
)

# This package's own environments (il_cli.rail), built without gymnax's registry.
OWN_ENV_IDS = ("Rail-v0",)
ALL_ENV_IDS = ENV_IDS + OWN_ENV_IDS

# Environments with continuous (Box) actions; every other id has discrete actions. Static,
# like ENV_IDS, so options that depend on it are checked before gymnax is imported.
CONTINUOUS_ENV_IDS = ("Pendulum-v1", "MountainCarContinuous-v0", "PointRobot-misc",
                      "Reacher-misc", "Swimmer-misc")

# Environments with an exact expert written down (il_cli.exact; `il expert --exact`).
EXACT_ENV_IDS = ("Rail-v0", "MountainCar-v0", "MountainCarContinuous-v0")

# The returns of gymnax's published PPO agents (gymnax-blines), the strength a shipped expert is
# held to. An expert more than 20% of |reference| under one is flagged as failing the task
# (`reference`): the failures a user meets (MountainCar −200 for −118, MountainCarContinuous 0
# for 92, Breakout 7 for 28) are, PPO's near-misses (Pendulum −150 for −130) are not.
REFERENCE_RETURNS = {
    "CartPole-v1": 500.0, "Acrobot-v1": -80.0, "MountainCar-v0": -118.0, "Pendulum-v1": -130.0,
    "MountainCarContinuous-v0": 92.0, "Asterix-MinAtar": 15.0, "Breakout-MinAtar": 28.0,
    "Freeway-MinAtar": 58.0, "SpaceInvaders-MinAtar": 131.0,
}
REFERENCE_MARGIN = 0.2


def reference(env_id: str, expert_return: float) -> dict:
    """{"reference_return", "below_reference"} for an expert's return on `env_id` ({} without a
    published figure): below when more than 20% of |reference| under it."""
    if env_id not in REFERENCE_RETURNS:
        return {}
    ref = REFERENCE_RETURNS[env_id]
    return {"reference_return": ref, "below_reference": bool(expert_return < ref - REFERENCE_MARGIN * abs(ref))}


# Short names: the part before the first '-' ("CartPole", "Breakout", "Catch"), lower-case too.
ALIASES = {env_id.split("-")[0].lower(): env_id for env_id in ALL_ENV_IDS}
ALIASES["mountaincarcontinuous"] = "MountainCarContinuous-v0"


def is_custom(env_id: str) -> bool:
    """A user's own environment, given as `package.module:Class`."""
    return ":" in env_id


def load_custom(env_id: str):
    """The environment `package.module:Class` names: Class() (or the object itself, if not a
    class), checked for gymnax's API. Imports the module (and gymnax with it)."""
    import importlib

    module, _, attr = env_id.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # noqa: BLE001 (no such module or attribute, an empty name, the module's own error)
        raise UserError(f"--env {env_id}: cannot import {attr or '?'} from {module or '?'} ({exc}); a module "
                        f"on the Python path and a class in it, like my_envs:HeavyCartPole") from None
    try:
        env = found() if isinstance(found, type) else found
    except Exception as exc:  # noqa: BLE001 (the user's constructor)
        raise UserError(f"--env {env_id}: {attr}() failed: {type(exc).__name__}: {exc}") from None
    missing = [a for a in ("reset", "step", "default_params", "observation_space", "action_space")
               if not hasattr(env, a)]
    if missing:
        raise UserError(f"--env {env_id}: not a gymnax environment (no {', '.join(missing)}); subclass "
                        f"gymnax.environments.environment.Environment")
    return env


def is_continuous(env_id: str) -> bool:
    """Whether `env_id` has continuous actions (a custom environment is imported to tell)."""
    if not is_custom(env_id):
        return env_id in CONTINUOUS_ENV_IDS
    from gymnax.environments import spaces

    env = load_custom(env_id)
    return not isinstance(env.action_space(env.default_params), spaces.Discrete)


def resolve_env_id(name: str) -> str:
    """The environment id for `name` (an id or a short alias, any case, or a user's own
    `package.module:Class`, imported to check it); UserError otherwise."""
    if name in ALL_ENV_IDS:
        return name
    if is_custom(name):
        load_custom(name)
        return name
    by_lower = {env_id.lower(): env_id for env_id in ALL_ENV_IDS}
    key = name.lower()
    if key in by_lower:
        return by_lower[key]
    if key in ALIASES:
        return ALIASES[key]
    choices = list(ALL_ENV_IDS) + sorted({a.split("-")[0] for a in ALL_ENV_IDS})
    raise UserError(f"unknown environment '{name}'{suggest(name, choices)}; `il envs` lists them all")


@dataclass(frozen=True)
class EnvSpec:
    """What a policy needs to know about an environment."""

    env_id: str
    obs_shape: tuple
    discrete: bool
    action_dim: int  # number of actions (discrete) or action vector size (continuous)
    action_low: tuple = ()
    action_high: tuple = ()
    max_steps: int = 0

    def to_json(self) -> dict:
        return {
            "env_id": self.env_id, "obs_shape": list(self.obs_shape), "discrete": self.discrete,
            "action_dim": self.action_dim, "action_low": list(self.action_low),
            "action_high": list(self.action_high), "max_steps": self.max_steps,
        }


class _ImportedOnFirstUse(types.ModuleType):
    """A stand-in in sys.modules that imports the real module when an attribute is used."""

    def __getattr__(self, attr):
        if sys.modules.get(self.__name__) is self:  # once; later uses find the real module there
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def defer_gymnax_renderers():
    """`import gymnax` imports every environment module, and Pong's and Catch's import seaborn
    (and with it scipy.stats) and matplotlib.pyplot, used only by their `render`: 1.4 of the
    2.3 s that importing gymnax takes. Until one of them is used, stand-ins take their place."""
    for name in ("seaborn", "matplotlib.pyplot"):
        if name not in sys.modules:
            sys.modules[name] = _ImportedOnFirstUse(name)


# Fields gymnax stores precomputed from others, recomputed from them at every grid point (and
# so not varied themselves). Of gymnax's classic-control envs only CartPole has such fields.
DERIVED = {
    "CartPole-v1": lambda p: p.replace(total_mass=p.masscart + p.masspole, polemass_length=p.masspole * p.length),
}
DERIVED_FIELDS = {"CartPole-v1": ("total_mass", "polemass_length")}


def numeric_fields(env_id: str, env_params) -> dict:
    """The environment's parameters that can be varied, with their defaults: one number each,
    not the time limit (it sets shapes) and not a derived field."""
    import numpy as np

    skip = ("max_steps_in_episode", *DERIVED_FIELDS.get(env_id, ()))
    return {f.name: float(getattr(env_params, f.name)) for f in dataclasses.fields(env_params)
            if f.name not in skip and np.ndim(getattr(env_params, f.name)) == 0
            and isinstance(getattr(env_params, f.name), (int, float, np.floating, np.integer))}


def check_grid(env_id: str, vary: tuple, flag: str = "--vary") -> dict:
    """The defaults of the varied fields; UserError naming the valid ones for any other (and
    `flag`, the option the grid came from: --vary or --vary-eval)."""
    _, env_params, _ = make_env(env_id)
    valid = numeric_fields(env_id, env_params)
    for name, _ in vary:
        if name in DERIVED_FIELDS.get(env_id, ()):
            raise UserError(f"{flag}: {name} is derived from other parameters of {env_id} and recomputed from "
                            f"them; vary {', '.join(valid)} instead")
        if name not in valid:
            listing = ", ".join(f"{k}={v:g}" for k, v in valid.items())
            raise UserError(f"{flag}: {env_id} has no numeric parameter '{name}'{suggest(name, list(valid))}; "
                            f"its parameters (defaults): {listing}")
    return {name: valid[name] for name, _ in vary}


def env_param_values(env_param) -> tuple:
    """((name, value), ...) of an --env-param setting: ((name, (value,)), ...), or its JSON form."""
    return tuple((name, float(values[0])) for name, values in env_param)


def with_params(env_id: str, env_params, values: dict):
    """`env_params` with the parameters `values` ({name: value}) set, and the fields gymnax
    derives from them recomputed."""
    if not values:
        return env_params
    return DERIVED.get(env_id, lambda p: p)(env_params.replace(**values))


def make_env(env_id: str):
    """(env, env_params, EnvSpec) for an id of ENV_IDS (gymnax), OWN_ENV_IDS or a custom one; the spec's
    `max_steps` is the default params' time limit."""
    import gymnax
    import numpy as np
    from gymnax.environments import spaces

    if env_id == "Rail-v0":
        from il_cli.rail import Rail

        env = Rail()
        params = env.default_params
    elif is_custom(env_id):
        env = load_custom(env_id)
        params = env.default_params
    else:
        try:
            env, params = gymnax.make(env_id)
        except Exception as exc:  # MNISTBandit downloads MNIST on construction
            raise UserError(f"environment '{env_id}' cannot be built here: {exc}") from None
    action_space = env.action_space(params)
    obs_shape = tuple(env.observation_space(params).shape)
    max_steps = int(params.max_steps_in_episode)
    if isinstance(action_space, spaces.Discrete):
        spec = EnvSpec(env_id, obs_shape, True, int(action_space.n), max_steps=max_steps)
    else:
        low = np.broadcast_to(np.asarray(action_space.low, np.float32), action_space.shape)
        high = np.broadcast_to(np.asarray(action_space.high, np.float32), action_space.shape)
        spec = EnvSpec(env_id, obs_shape, False, int(np.prod(action_space.shape)),
                       tuple(float(x) for x in low.ravel()), tuple(float(x) for x in high.ravel()),
                       max_steps)
    return env, params, spec
