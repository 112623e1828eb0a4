"""il eval: evaluate a run's saved policy."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from il_cli.commands.common import Json, eval_rows, sweep_rows, user_errors
from il_cli.config import EvalConfig
from il_cli.ui import UI


def eval_(
    run: Annotated[Path, typer.Argument(help="Run directory (bc, expert, ...).")],
    episodes: Annotated[Optional[int], typer.Option(help="Evaluation episodes (default: the run's own count, so its figure is reproduced).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Evaluation seed (default: the run's own).")] = None,
    eval_policy: Annotated[Optional[str], typer.Option("--eval-policy", help="mode (greedy) or sample (default: the run's own).")] = None,
    stage: Annotated[Optional[str], typer.Option(help="Evaluate the policy of an earlier stage of the run instead of its final one (il rlhf: sft).")] = None,
    member: Annotated[Optional[int], typer.Option(help="Evaluate only this member of a run of several seeds or a sweep (default: all).")] = None,
    gif: Annotated[Optional[Path], typer.Option(help="Render one episode to this GIF (needs the render extra; the first member evaluated).")] = None,
    gif_frames: Annotated[int, typer.Option(help="At most this many frames in the GIF.")] = 200,
    json: Json = False,
):
    """Evaluate a run's policy on vectorized environments, as the run itself evaluated it."""
    ui = UI(json)
    with user_errors(ui):
        cfg = EvalConfig(run=str(run), episodes=episodes, seed=seed, eval_policy=eval_policy,
                         stage=stage, member=member, gif=str(gif) if gif else None, gif_frames=gif_frames)
        from il_cli.runs import Run

        Run.open(cfg.run)
        from il_cli.jobs.evaluate import run_eval
        from il_cli.loop import setup_jax

        setup_jax()
        summary = run_eval(cfg, ui)
        rows = sweep_rows(summary) if "members" in summary else eval_rows(summary) + [("seed", summary["seed"])]
        if "gif" in summary:
            rows.append(("gif", summary["gif"]))
        ui.results(f"eval of a {summary['evaluated']} run", rows, summary["run_dir"])
        ui.emit_json(summary)
