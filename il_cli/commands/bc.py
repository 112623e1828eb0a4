"""il bc: behavioral cloning."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Env, EvalEpisodes, Expert, Hidden, Json, Name, Recipe, Resume, RunDir,
                                    Seed, eval_rows, open_or_start, user_errors)
from il_cli.config import BCConfig, build_config, parse_ints
from il_cli.ui import UI


def bc(
    env: Env = None, seed: Seed = None, recipe: Recipe = None,
    demos: Annotated[Optional[str], typer.Option(help="Dataset from `il collect` (default: collect --episodes).")] = None,
    episodes: Annotated[Optional[int], typer.Option(help="Expert episodes to collect when no --demos.", show_default="20")] = None,
    expert: Expert = None, hidden: Hidden = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.", show_default="1e-3")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Minibatch size.", show_default="256")] = None,
    num_steps: Annotated[Optional[int], typer.Option(help="Gradient steps.", show_default="4000")] = None,
    eval_episodes: EvalEpisodes = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, json: Json = False,
):
    """Behavioral cloning: maximum likelihood of the expert's actions (eq. 24.2), then evaluation."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "bc", BCConfig, resume, lambda: build_config(
            BCConfig, "bc", recipe, env=env, seed=seed, demos=demos, episodes=episodes, expert=expert,
            hidden=parse_ints(hidden, "hidden"), lr=lr, batch_size=batch_size, num_steps=num_steps,
            eval_episodes=eval_episodes), run_dir, name)
        from il_cli.jobs.bc import run_bc

        summary = run_bc(cfg, run, ui)
        run.close()
        b = summary["bc"]
        rows = eval_rows(summary) + [
            ("expert return", summary["expert"]["return_mean"]), ("return gap", summary["return_gap"]),
            ("ε = TV(π̂, π*) on expert states", b["tv_expert_states"])]
        rows += [("held-out action accuracy", b["action_accuracy"])] if "action_accuracy" in b else [
            ("held-out action MSE", b["action_mse"])]
        rows += [("held-out log-likelihood", b["holdout_log_likelihood"]), ("train loss", b["train_loss"]),
                 ("demonstrations", f"{b['demos']} transitions, {b['demo_episodes']} episodes"),
                 ("samples / s", f"{b['samples_per_s']:,.0f}"), ("wall time (s)", summary["wall_s"])]
        ui.results("behavioral cloning", rows, run.path)
        ui.emit_json(summary)
