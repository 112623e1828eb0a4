"""The `il` command line. Thin: every command that makes a run is generated from its entry in
il_cli.registry and its config's declarations (il_cli.options), so an option's flag, help and
shown default are the ones that run; `il eval`, `il plot`, `il runs`, `il envs` and `il data` live in
il_cli/commands/. No JAX import here.
"""

import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from il_cli.commands.benchmark import benchmark
from il_cli.commands.common import user_errors
from il_cli.commands.data import data_app
from il_cli.commands.evaluate import eval_
from il_cli.commands.plot import plot
from il_cli.commands.runs import envs, runs
from il_cli.options import fields_of, flag_of, parse_ints
from il_cli.registry import COMMANDS, TASKS, Command

app = typer.Typer(
    name="il", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Imitation learning experiments: behavioral cloning, DAgger, compounding error, learning from preferences, "
         "RLHF and PPO experts as jit-compiled JAX programs on vectorized gymnax environments.")


@app.callback()
def _options(
    no_compile_cache: Annotated[bool, typer.Option(
        "--no-compile-cache", help="Do not use the persistent JAX compilation cache.")] = False,
):
    if no_compile_cache:
        os.environ["IL_COMPILE_CACHE"] = "0"


def _param(name, annotation, *decls, default=None, **kw):
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, typer.Option(*decls, **kw)])


def run_options(command: Command) -> list[inspect.Parameter]:
    """The options of a run that are not its config's: where it comes from and where it goes."""
    out = [_param("recipe", Optional[str], "--recipe", rich_help_panel="Run",
                  help="TOML recipe (a path, or a shipped name like cartpole); flags override it."),
           _param("run_dir", Optional[Path], "--run-dir", rich_help_panel="Run",
                  help="Exact run directory (default runs/<time>-<command>-<env>[-name])."),
           _param("name", Optional[str], "--name", help="Suffix for the run directory's name.", rich_help_panel="Run"),
           _param("json", bool, "--json", default=False, rich_help_panel="Run",
                  help="Print the summary as one JSON object on stdout.")]
    if len(command.configs) > 1:
        out.insert(0, _param("task", Optional[str], "--task", show_default=next(iter(command.configs)),
                             help=escape("; ".join(f"{task}: {TASKS[task]}" for task in command.configs) + ".")))
    if command.resumable:
        out += [_param("resume", Optional[Path], "--resume", rich_help_panel="Run",
                       help="Continue an interrupted run from its last checkpoint."),
                _param("distributed", bool, "--distributed", default=False, rich_help_panel="Distributed", help=(
                    "Join a multi-process run (jax.distributed; SLURM's variables, or --coordinator/--num-processes/"
                    "--process-id); members are sharded over every process's devices and process 0 writes the run "
                    "directory.")),
                _param("coordinator", Optional[str], "--coordinator", rich_help_panel="Distributed",
                       help="--distributed: host:port of process 0 (default: from SLURM)."),
                _param("num_processes", Optional[int], "--num-processes", rich_help_panel="Distributed",
                       help="--distributed: how many processes (default: from SLURM)."),
                _param("process_id", Optional[int], "--process-id", rich_help_panel="Distributed",
                       help="--distributed: this process's index (default: from SLURM).")]
    return out


def shown(value) -> str | None:
    """A default as --help shows it (None: nothing shown)."""
    if value is None or value == ():
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _panel(cls, name: str) -> str | None:
    """The --help panel of the part that declares field `name` (a command's own: none)."""
    for klass in reversed(cls.__mro__):
        if name in klass.__dict__.get("__annotations__", {}):
            return klass.__dict__.get("panel")
    return None


def config_options(command: Command) -> list[inspect.Parameter]:
    """An option per config field, from its declaration: for a command of several tasks, a
    field of one task only says so, and a default that differs per task shows both."""
    tasks = list(command.configs)
    out = {}
    for task, cls in command.configs.items():
        for name, f in fields_of(cls).items():
            if name in out or not f.metadata.get("cli", True):
                continue
            holders = [t for t in tasks if name in fields_of(command.configs[t])
                       and fields_of(command.configs[t])[name].metadata.get("cli", True)]
            defaults = {t: shown(fields_of(command.configs[t])[name].default) for t in holders}
            values = list(dict.fromkeys(defaults.values()))
            default = values[0] if len(values) == 1 else "; ".join(
                f"{'' if t == tasks[0] else t + ' '}{d}" for t, d in defaults.items())
            help_text = f.metadata["help"]
            if len(tasks) > 1 and holders != tasks:
                help_text = f"--task {holders[0]}: {help_text}" if holders[0] != tasks[0] else help_text
            kind = f.type
            if kind == tuple[int, ...]:
                annotation = Optional[str]  # 64,64: parsed by make_command
            elif kind is tuple:
                annotation = Optional[list[str]]  # --sweep and --vary-eval, repeated
            else:
                annotation = Optional[{int | None: int, str | None: str}.get(kind, kind)]
            decls = [flag_of(f)] + ([f.metadata["short"]] if f.metadata.get("short") else [])
            out[name] = _param(name, annotation, *decls, help=escape(help_text), show_default=default or False,
                               rich_help_panel=_panel(cls, name))
    return list(out.values())


def make_command(command: Command):
    """The Typer command of a registry entry: its options parsed, then il_cli.launch runs it."""
    options = run_options(command)
    fields = config_options(command)

    def run_it(**given):
        where = {p.name: given.pop(p.name) for p in options}
        json_mode = where.pop("json")
        distributed = [where.pop(k, None) for k in ("distributed", "coordinator", "num_processes", "process_id")]
        flags = {"task": where.pop("task", None), **given}
        from il_cli.ui import UI

        ui = UI(json_mode)
        with user_errors(ui) as ctx:
            from il_cli import launch, results

            for name, value in flags.items():
                f = next((fields_of(c)[name] for c in command.configs.values() if name in fields_of(c)), None)
                if f is not None and value is not None:
                    flags[name] = parse_ints(value, flag_of(f)) if f.type == tuple[int, ...] else \
                        tuple(value) if f.type is tuple else value
            summary, run = launch.run_command(command, flags, ui, ctx, distributed=tuple(distributed[1:])
                                              if distributed[0] else None, **where)
            results.report(ui, command, summary, run.path)
            ui.emit_json(summary)

    run_it.__signature__ = inspect.Signature(options + fields)
    run_it.__doc__ = command.help
    return run_it


for _command in COMMANDS.values():
    app.command(_command.name)(make_command(_command))
app.command("eval")(eval_)
app.command()(plot)
app.command()(benchmark)
app.command()(runs)
app.command()(envs)
app.add_typer(data_app, name="data")


def main():
    try:
        app()
    except SystemExit as exc:
        if exc.code in (130, 143):  # interrupted, the run closed (its checkpoint whole): leave now, as XLA's
            sys.stdout.flush()      # threads may still be inside a computation that interpreter teardown
            sys.stderr.flush()      # would pull the memory from under (a SIGSEGV at exit, instead of 130/143)
            os._exit(exc.code)
        raise
