"""il bc: behavioral cloning."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Coordinator, Distributed, Env, EvalEpisodes, EvalPolicy, Expert, Hidden, Json,
                                    Name, NumProcesses, ProcessId, Recipe,
                                    Resume, RunDir, Seed, Seeds, Sweep, TensorBoard, eval_rows, expert_rows, sweep_rows, open_or_start,
                                    user_errors, vary_after_training)
from il_cli.config import BCConfig, build_config, parse_ints
from il_cli.ui import UI


def bc(
    env: Env = None, seed: Seed = None, seeds: Seeds = None, sweep: Sweep = None, recipe: Recipe = None,
    demos: Annotated[Optional[str], typer.Option(help="Dataset from `il collect` (default: collect --episodes).")] = None,
    episodes: Annotated[Optional[int], typer.Option(help="Expert episodes to collect when no --demos.", show_default="20")] = None,
    expert: Expert = None, hidden: Hidden = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.", show_default="1e-3")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Minibatch size.", show_default="256")] = None,
    num_steps: Annotated[Optional[int], typer.Option(help="Gradient steps.", show_default="4000")] = None,
    holdout_frac: Annotated[Optional[float], typer.Option(help="Fraction of whole demonstration episodes held out to measure ε and accuracy (0: none).", show_default="0.1")] = None,
    eval_episodes: EvalEpisodes = None, eval_policy: EvalPolicy = None,
    vary_eval: Annotated[Optional[list[str]], typer.Option("--vary-eval", help="NAME=v1,v2,... or NAME=lo:hi:n: at the end, also evaluate over this grid of an environment parameter (as il eval --vary).")] = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, tensorboard: TensorBoard = None, json: Json = False,
    distributed: Distributed = False, coordinator: Coordinator = None, num_processes: NumProcesses = None,
    process_id: ProcessId = None,
):
    """Behavioral cloning: maximum likelihood of the expert's actions (eq. 24.2), then evaluation."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "bc", BCConfig, resume, lambda: build_config(
            BCConfig, "bc", recipe, env=env, seed=seed, seeds=seeds, tensorboard=tensorboard, vary_eval=tuple(vary_eval) if vary_eval else None,
            sweep=tuple(sweep) if sweep else None, demos=demos, episodes=episodes, expert=expert,
            hidden=parse_ints(hidden, "hidden"), lr=lr, batch_size=batch_size, num_steps=num_steps,
            holdout_frac=holdout_frac, eval_episodes=eval_episodes, eval_policy=eval_policy), run_dir, name,
            distributed=(coordinator, num_processes, process_id) if distributed else None)
        summary = run.summary
        if summary is None:
            from il_cli.jobs.bc import run_bc
            from il_cli.jobs.programs import run_programs

            summary = run_programs(run_bc, cfg, run, ui, ctx)
        summary = vary_after_training(ui, cfg, run, summary)
        run.close()
        ui.results("behavioral cloning", sweep_rows(summary) if "members" in summary else rows(summary), run.path)
        ui.emit_json(summary)


def rows(summary: dict) -> list[tuple]:
    b = summary["bc"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    held = b.get("holdout")
    holdout = held if not isinstance(held, dict) else (
        f"{held['episodes']} episodes, {held['transitions']} transitions")
    out = eval_rows(summary) + expert_rows(summary) + [
        (f"ε = TV(π̂, π*) on held-out expert states ({policy})", b["tv_expert_states"]),
        ("ε of the stochastic π̂ on held-out expert states", b.get("tv_expert_states_stochastic"))]
    if "tv_learner_states" in b:
        out.append((f"ε on the learner's own states ({policy})", b["tv_learner_states"]))
    out += [("held-out greedy action accuracy", b["action_accuracy"])] if "action_accuracy" in b else [
        ("held-out greedy action MSE", b["action_mse"])]
    return out + [
        ("held-out log-likelihood", b["holdout_log_likelihood"]), ("held out", holdout),
        ("train loss", b["train_loss"]),
        ("demonstrations (expert queries)", f"{b['demos']} transitions, {b['demo_episodes']} episodes"),
        ("samples / s", f"{b['samples_per_s']:,.0f}" if b.get("samples_per_s") else None), ("wall time (s)", summary["wall_s"])]
