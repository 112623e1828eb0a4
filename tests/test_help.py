"""`il COMMAND --help` tells the truth: every default it shows is the value the command uses."""

import dataclasses

import pytest
import typer

from il_cli.cli import app
from il_cli.config import COMMANDS, TextRLHFConfig

# Options whose config field has another name.
FIELD = {("dagger", "rounds"): "num_rounds", ("compounding", "demos"): "demo_episodes"}
NOT_CONFIG = {"recipe", "run_dir", "name", "resume", "json", "distributed", "coordinator", "num_processes",
              "process_id", "task"}


def shown_defaults():
    """(command, option, the default --help shows or None, the config classes the option sets)."""
    group = typer.main.get_command(app)
    for command, click_command in group.commands.items():
        if command not in COMMANDS:
            continue
        for param in click_command.params:
            if param.name in NOT_CONFIG:
                continue
            text = command == "rlhf" and param.name != "env"  # --task text runs on its own task
            classes = [COMMANDS[command]] + ([TextRLHFConfig] if text else [])
            shown = param.show_default if isinstance(param.show_default, str) else None
            if shown is None and param.default not in (None, False) and param.show_default:
                shown = str(param.default)
            yield command, param.name, shown, classes


def parse(text: str, like):
    if isinstance(like, bool):
        return text in ("yes", "true", "True")
    if isinstance(like, tuple):
        return tuple(int(v) for v in text.split(","))
    if isinstance(like, (int, float)):
        return float(text)
    return text


@pytest.mark.parametrize("command,option,shown,classes", list(shown_defaults()),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_help_shows_the_default_that_runs(command, option, shown, classes):
    field = FIELD.get((command, option), option)
    holders = [cls for cls in classes if field in {f.name for f in dataclasses.fields(cls)}]
    assert holders, f"il {command} --{option} sets no config field"
    defaults = [next(f for f in dataclasses.fields(cls) if f.name == field).default for cls in holders]
    if all(d is None or d == () or d is False for d in defaults):  # described in words, or a flag that is off
        return
    assert shown is not None, f"il {command} --help shows no default for --{option} (it is {defaults})"
    parts = dict(p.rsplit(" ", 1) if p.startswith("text ") else ("", p) for p in shown.split("; "))
    for cls, default in zip(holders, defaults):
        text = parts.get("text", parts[""]) if cls is TextRLHFConfig else parts.get("", None)
        assert text is not None, f"il {command} --help shows no default of --{option} for {cls.__name__}"
        assert parse(text.strip(), default) == pytest.approx(default) if isinstance(default, float) else \
            parse(text.strip(), default) == default, f"il {command} --{option}: --help says {text}, {cls.__name__} uses {default}"
