"""The `il` command line. Thin: each subcommand lives in il_cli/commands/. No JAX import here."""

import os
from typing import Annotated

import typer

from il_cli.commands.bc import bc
from il_cli.commands.collect import collect
from il_cli.commands.compounding import compounding
from il_cli.commands.dagger import dagger
from il_cli.commands.evaluate import eval_
from il_cli.commands.expert import expert
from il_cli.commands.plot import plot
from il_cli.commands.prefs import prefs
from il_cli.commands.rlhf import rlhf
from il_cli.commands.runs import envs, runs

app = typer.Typer(
    name="il", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Imitation learning experiments: behavioral cloning, DAgger, compounding error, learning from preferences, "
         "RLHF and PPO experts as "
         "jit-compiled JAX programs on vectorized gymnax environments.")


@app.callback()
def _options(
    no_compile_cache: Annotated[bool, typer.Option(
        "--no-compile-cache", help="Do not use the persistent JAX compilation cache.")] = False,
):
    if no_compile_cache:
        os.environ["IL_COMPILE_CACHE"] = "0"


app.command()(bc)
app.command()(collect)
app.command()(compounding)
app.command()(dagger)
app.command("eval")(eval_)
app.command()(expert)
app.command()(plot)
app.command()(prefs)
app.command()(rlhf)
app.command()(runs)
app.command()(envs)


def main():
    app()
