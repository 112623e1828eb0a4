"""il eval: evaluate a run's saved policy."""

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from il_cli.commands.common import Json, user_errors
from il_cli.config import EvalConfig
from il_cli.errors import UserError
from il_cli.ui import UI


def eval_(
    runs: Annotated[list[Path], typer.Argument(help="Run directory (bc, expert, ...); several with --vary.")],
    episodes: Annotated[Optional[int], typer.Option(help="Evaluation episodes (default: the run's own count, so its figure is reproduced).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Evaluation seed (default: the run's own).")] = None,
    eval_policy: Annotated[Optional[str], typer.Option("--eval-policy", help="mode (greedy) or sample (default: the run's own).")] = None,
    stage: Annotated[Optional[str], typer.Option(help="Evaluate the policy of an earlier stage of the run instead of its final one (il rlhf: sft).")] = None,
    member: Annotated[Optional[int], typer.Option(help="Evaluate only this member of a run of several seeds or a sweep (default: all).")] = None,
    gif: Annotated[Optional[Path], typer.Option(help="Render one episode to this GIF (needs the render extra; the first member evaluated).")] = None,
    gif_frames: Annotated[int, typer.Option(help="At most this many frames in the GIF.")] = 200,
    vary: Annotated[Optional[list[str]], typer.Option("--vary", help="NAME=v1,v2,... or NAME=lo:hi:n: evaluate over this grid of an environment parameter (repeat for a 2-D grid); every run given, on the same keys.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Directory for vary.json and vary.png (default: the first run's).")] = None,
    json: Json = False,
):
    """Evaluate a run's policy on vectorized environments, as the run itself evaluated it."""
    ui = UI(json)
    with user_errors(ui):
        cfg = EvalConfig(run=str(runs[0]), others=tuple(map(str, runs[1:])), episodes=episodes, seed=seed,
                         eval_policy=eval_policy, stage=stage, member=member, gif=str(gif) if gif else None,
                         gif_frames=gif_frames, vary=tuple(vary or ()), out=str(out) if out else None)
        from il_cli.runs import Run

        opened = [Run.open(path) for path in (cfg.run, *cfg.others)]
        text = [str(r.path) for r in opened if r.meta["config"].get("task") == "text"]
        if cfg.vary and text:
            raise UserError(f"--vary changes an environment's parameters; {text[0]} is a text run, which has none")
        if cfg.vary:  # a sweep over a count or shape: each of its programs' runs
            paths = [str(child.path) for r in opened for child in ([c for _, c in r.programs] or [r])]
            cfg = dataclasses.replace(cfg, run=paths[0], others=tuple(paths[1:]), out=cfg.out or str(opened[0].path))
            from il_cli.jobs.vary import run_vary
            from il_cli.loop import setup_jax

            setup_jax()
            summary = run_vary([cfg.run, *cfg.others], cfg.vary, cfg.episodes, cfg.seed, cfg.eval_policy, cfg.out, ui)
            from il_cli.results import vary_table

            ui.grid(f"return (mean [95% CI] over {summary['episodes']} episodes × members, the same keys; "
                    f"* the training value)", *vary_table(summary))
            ui.print(f"plot: {summary['plot']}\ntable: {summary['json']}")
            ui.emit_json(summary)
            return
        from il_cli.jobs.evaluate import run_eval
        from il_cli.loop import setup_jax

        setup_jax()
        summary = run_eval(cfg, ui)
        from il_cli.results import eval_report_rows

        ui.results(f"eval of a {summary['evaluated']} run", eval_report_rows(summary), summary["run_dir"])
        ui.emit_json(summary)
