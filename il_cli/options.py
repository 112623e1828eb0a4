"""One declaration per option.

A config field is declared once, with `opt(default, help, ...)`: its default, its help, its
flag, whether it is traced (a sweep over it runs in one vmapped program) and its check.
From that one declaration come the dataclass field, the command-line option with the
default that runs (il_cli.cli), the recipe key, sweepability (il_cli.sweep) and validation
(`Config.__post_init__`). Configs are composed of parts (il_cli.config) and redeclare only
what differs (`like`). No JAX, no Typer here.
"""

import dataclasses
import math
from dataclasses import dataclass

from il_cli.errors import UserError, suggest


def opt(default, help: str, *, flag: str | None = None, short: str | None = None, traced: bool = False,
        check=None, panel: str | None = None, cli: bool = True):
    """A config field: `help` is its --help text, `flag` its option (default --field-name),
    `traced` whether its value is a traced float (a sweep over it is one program), `check(value,
    flag)` raises a UserError for a value no run can take, `panel` groups it in --help, and
    `cli=False` marks a field no option sets (it is fixed by the command)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "short": short, "traced": traced, "check": check, "panel": panel,
        "cli": cli})


def like(part, name: str, default, help: str | None = None):
    """`part`'s field `name` declared again with another default (and help)."""
    f = next(f for f in dataclasses.fields(part) if f.name == name)
    return dataclasses.field(default=default, metadata={**f.metadata, **({"help": help} if help else {})})


def flag_of(cls_or_field, name: str | None = None) -> str:
    """The option that sets a field: `flag_of(BCConfig, "num_steps")` -> "--num-steps"."""
    f = cls_or_field if name is None else fields_of(cls_or_field)[name]
    return f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"


def fields_of(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def settable(cls) -> list:
    """The fields of `cls` that an option (or a recipe key) sets: all but those marked cli=False."""
    return [name for name, f in fields_of(cls).items() if f.metadata.get("cli", True)]


def traced(cls) -> tuple:
    """The fields of `cls` that are traced (a sweep over them runs in one vmapped program)."""
    return tuple(name for name, f in fields_of(cls).items() if f.metadata.get("traced"))


@dataclass(frozen=True, kw_only=True)
class Config:
    """A frozen config: after construction every field's check runs, then each class's
    `validate` (cross-field checks and normalisation), most general part first."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                check(getattr(self, f.name), flag_of(f))
        for cls in reversed(type(self).__mro__):
            if "validate" in cls.__dict__:
                cls.__dict__["validate"](self)

    def set(self, **values):
        """Normalise fields during validation (the config is frozen)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)


# --- checks: check(value, flag) raises a UserError ----------------------------------------


def positive(value, flag):
    if not 0 < value < float("inf"):  # NaN fails too
        raise UserError(f"{flag} must be positive and finite, got {value}")


def non_negative(value, flag):
    if not value >= 0:  # NaN fails too
        raise UserError(f"{flag} must be non-negative, got {value}")


def unit(value, flag):
    if not 0 <= value <= 1:
        raise UserError(f"{flag} must be in [0, 1], got {value}")


def unit_open(value, flag):
    if not 0 <= value < 1:
        raise UserError(f"{flag} must be in [0, 1), got {value}")


def sizes(value, flag):
    """Layer sizes: each positive (a zero-width layer trains and then cannot be checkpointed)."""
    if not all(v > 0 for v in value):
        raise UserError(f"{flag} sizes must be positive, got '{','.join(map(str, value))}'")


def optional(check):
    """`check` for a value that may also be None (not given)."""
    return lambda value, flag: None if value is None else check(value, flag)


def choice(*choices, what: dict | None = None):
    """One of `choices`; `what` explains them in the message (mode: greedy actions)."""

    def check(value, flag):
        if value not in choices:
            shown = ", ".join(f"{c} ({what[c]})" if what and c in what else str(c) for c in choices)
            raise UserError(f"{flag} must be one of {shown}, got '{value}'{suggest(str(value), choices)}")

    return check


def at_least(low: int, why: str = ""):
    def check(value, flag):
        if not value >= low:
            raise UserError(f"{flag} must be at least {low}{why}, got {value}")

    return check


def within_int32(value, flag: str):
    """Counts beyond int32 only overflow (or hang) later; floats must be finite."""
    for v in value if isinstance(value, tuple) else (value,):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**31:
            raise UserError(f"{flag} must be below 2^31, got {v}")
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"{flag} must be a finite number, got {v}")


INT_LIST_EXAMPLES = {"--hidden": "64,64", "--rm-hidden": "64,64", "--horizons": "50,100,200", "--demos": "1,2,5,10"}


def parse_ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    """'64,64' -> (64, 64), for the options that take a list of integers."""
    if text is None:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        example = INT_LIST_EXAMPLES.get(flag, "1,2,3")
        raise UserError(f"{flag} must be comma-separated integers like {example}, got '{text}'") from None
    sizes(values, flag)
    return values
