"""Recipes and config.json: a config built from its sources, lowest to highest priority
defaults < `--recipe` < command-line flags. A recipe is TOML: top-level keys apply to every
command, a `[bc]`/`[expert]`/... table to that command only. The merged config is written to
`config.json` and reproduces the run. This module does not import JAX."""

import dataclasses
from pathlib import Path

import tomllib

from il_cli.config import CONFIGS, Base, TextRLHFConfig
from il_cli.envs import resolve_env_id
from il_cli.errors import UserError, suggest
from il_cli.options import fields_of, flag_of, settable, within_int32

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


def _coerce(cls, name, value):
    """Turn TOML/JSON values into the field's type (lists into tuples)."""
    if isinstance(value, list):
        return tuple(value)
    f = fields_of(cls)[name]
    if f.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_type(cls, name: str, value, where: str):
    """UserError unless a recipe's `value` has the type of `cls`'s field `name` (an int for a
    float is fine; tables, booleans for numbers and strings for numbers are not)."""
    import types
    import typing

    def fits(kind, v) -> bool:
        if kind is float:
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        if kind is int:
            return isinstance(v, int) and not isinstance(v, bool)
        if kind in (str, bool):
            return isinstance(v, kind)
        if kind is tuple:  # sweep / vary lists: "key=v1,v2" strings or [key, [values]] pairs
            return isinstance(v, list) and all(
                isinstance(x, str) or (isinstance(x, list) and len(x) == 2 and isinstance(x[0], str)
                                       and isinstance(x[1], list) and all(fits(float, y) for y in x[1])) for x in v)
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if origin in (typing.Union, types.UnionType):
            return any(fits(a, v) for a in args if a is not type(None))
        if origin is tuple:
            return isinstance(v, list) and all(fits(args[0], x) for x in v)
        return True

    kind = fields_of(cls)[name].type
    if not fits(kind, value):
        shown = getattr(kind, "__name__", str(kind))
        raise UserError(f"{where}: '{name}' must be of type {shown}, got {value!r}")


def shipped_recipe(env_id: str) -> str | None:
    """The name of the environment's shipped recipe (recipes/<short name>.toml), or None."""
    short = env_id.split("-")[0].lower()
    return short if (RECIPE_DIR / f"{short}.toml").is_file() else None


def env_recipe(command: str, env: str | None) -> str | None:
    """The shipped recipe of `env` (default: the configs' default environment) if it has a
    [command] table: the settings `il gail`, `il airl` use there without --recipe."""
    recipe = shipped_recipe(resolve_env_id(env or Base.env))
    if recipe and command in tomllib.loads((RECIPE_DIR / f"{recipe}.toml").read_text()):
        return recipe
    return None


def resolve_recipe_path(recipe: str) -> Path:
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = RECIPE_DIR / f"{recipe.removesuffix('.toml')}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))
    raise UserError(f"recipe '{recipe}' not found{suggest(path.stem, names)}; "
                    f"shipped recipes: {', '.join(names)}")


def load_recipe(recipe: str, command: str, cls) -> dict:
    """The keys of a recipe that apply to `command`; unknown keys are a UserError."""
    path = resolve_recipe_path(recipe)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe {path} is not valid TOML: {exc}") from None
    known = set(settable(cls))
    values = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in CONFIGS:
                raise UserError(f"recipe {path}: unknown section [{key}]{suggest(key, CONFIGS)}")
            if key == command:
                for sub_key, sub_value in value.items():
                    name = sub_key.replace("-", "_")
                    if name not in known:
                        raise UserError(f"recipe {path}: unknown key '{sub_key}' in [{key}]"
                                        f"{suggest(name, known)}")
                    _check_type(cls, name, sub_value, f"recipe {path} [{key}]")
                    values[name] = _coerce(cls, name, sub_value)
            continue
        name = key.replace("-", "_")
        if name in known:
            _check_type(cls, name, value, f"recipe {path}")
            values[name] = _coerce(cls, name, value)
        elif not any(name in fields_of(c) for c in (*CONFIGS.values(), TextRLHFConfig)):
            all_keys = set().union(*(fields_of(c) for c in CONFIGS.values()))
            raise UserError(f"recipe {path}: unknown key '{key}'{suggest(name, all_keys)}")
    return values


def build_config(cls, command: str, recipe: str | None = None, **flags):
    """defaults < recipe < flags (flags that are None were not given)."""
    values = load_recipe(recipe, command, cls) if recipe else {}
    values.update({k: _coerce(cls, k, v) for k, v in flags.items() if v is not None})
    for name, value in values.items():
        within_int32(value, flag_of(cls, name))
    if "env" in values:
        values["env"] = resolve_env_id(values["env"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise UserError(str(exc)) from None


def to_json(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_json(cls, data: dict):
    known = fields_of(cls)
    return cls(**{k: _coerce(cls, k, v) for k, v in data.items() if k in known})
