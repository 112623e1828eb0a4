"""`il COMMAND --help` tells the truth: every config field has an option, every default it
shows is the value the command uses, and help text survives rich's markup."""

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from il_cli.cli import app
from il_cli.options import flag_of
from il_cli.registry import COMMANDS


def options():
    """(command, config class, field, the click option of its flag or None)."""
    group = typer.main.get_command(app)
    for name, command in COMMANDS.items():
        by_flag = {decl: p for p in group.commands[name].params for decl in getattr(p, "opts", [])}
        for cls in command.configs.values():
            for f in dataclasses.fields(cls):
                if f.metadata.get("cli", True):
                    yield name, cls, f, by_flag.get(flag_of(f).split("/")[0])


def parse(text: str, like):
    if isinstance(like, bool):
        return text == "yes"
    if isinstance(like, tuple):
        return tuple(int(v) for v in text.split(","))
    if isinstance(like, (int, float)):
        return float(text)
    return text


@pytest.mark.parametrize("command,cls,field,option", list(options()),
                         ids=lambda x: x if isinstance(x, str) else getattr(x, "name", ""))
def test_every_field_has_an_option_that_shows_the_default_that_runs(command, cls, field, option):
    assert option is not None, f"il {command} has no option for {cls.__name__}.{field.name}"
    if field.default in (None, ()) or field.default is False:  # nothing to show, or described in words
        return
    shown = option.show_default
    assert isinstance(shown, str), f"il {command} --help shows no default for {flag_of(field)}"
    parts = dict(p.split(" ", 1) if p.startswith("text ") else ("", p) for p in shown.split("; "))
    text = parts.get("text", parts[""]) if getattr(cls, "command", "").endswith("text") else parts[""]
    value = parse(text, field.default)
    assert value == (pytest.approx(field.default) if isinstance(field.default, float) else field.default), \
        f"il {command} {flag_of(field)}: --help says {text}, {cls.__name__} uses {field.default}"


def test_help_text_survives_rich_markup():
    out = CliRunner().invoke(app, ["bc", "--help"], env={"COLUMNS": "200"}).output
    assert "pip install -e '.[tb]'" in out
    assert "pip install -e '.[minari]'" in CliRunner().invoke(app, ["data", "--help"], env={"COLUMNS": "200"}).output


def test_runs_command_lists_every_command():
    out = CliRunner().invoke(app, ["runs", "--help"], env={"COLUMNS": "200"}).output
    assert all(name in out for name in COMMANDS)
