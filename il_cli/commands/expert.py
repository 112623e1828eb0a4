"""il expert: train a PPO expert and save it as a run."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Coordinator, Distributed, Env, EvalEpisodes, EvalPolicy, Hidden, Json, Name,
                                    NumProcesses, ProcessId, Recipe, Resume, RunDir, Seed, Seeds, Sweep, TensorBoard, eval_rows, open_or_start, sweep_rows, user_errors)
from il_cli.config import PPOConfig, build_config, parse_ints
from il_cli.ui import UI


def expert(
    env: Env = None, seed: Seed = None, seeds: Seeds = None, sweep: Sweep = None, recipe: Recipe = None,
    total_timesteps: Annotated[Optional[int], typer.Option(help="Environment steps of PPO training.", show_default="262144")] = None,
    num_envs: Annotated[Optional[int], typer.Option(help="Parallel environments.", show_default="32")] = None,
    num_steps: Annotated[Optional[int], typer.Option(help="Rollout length per update.", show_default="64")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.", show_default="3e-3")] = None,
    ent_coef: Annotated[Optional[float], typer.Option(help="Entropy bonus coefficient.", show_default="0.01")] = None,
    hidden: Hidden = None, eval_episodes: EvalEpisodes = None, eval_policy: EvalPolicy = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, tensorboard: TensorBoard = None, json: Json = False,
    distributed: Distributed = False, coordinator: Coordinator = None, num_processes: NumProcesses = None,
    process_id: ProcessId = None,
):
    """Train a PPO expert (GAE, clipped objective, truncation bootstrapping) and save it as a run."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "expert", PPOConfig, resume, lambda: build_config(
            PPOConfig, "expert", recipe, env=env, seed=seed, seeds=seeds, tensorboard=tensorboard,
            sweep=tuple(sweep) if sweep else None, total_timesteps=total_timesteps,
            num_envs=num_envs, num_steps=num_steps, lr=lr, ent_coef=ent_coef,
            hidden=parse_ints(hidden, "hidden"), eval_episodes=eval_episodes,
            eval_policy=eval_policy), run_dir, name,
            distributed=(coordinator, num_processes, process_id) if distributed else None)
        summary = run.summary
        if summary is None:
            from il_cli.jobs.expert import train_expert
            from il_cli.jobs.programs import run_programs

            summary = run_programs(train_expert, cfg, run, ui, ctx)
        run.close()
        if "members" in summary:
            ui.results("expert", sweep_rows(summary), run.path)
        else:
            ui.results("expert", eval_rows(summary) + [
                ("timesteps", summary["expert"]["timesteps"]), ("wall time (s)", summary["wall_s"])], run.path)
        ui.emit_json(summary)
