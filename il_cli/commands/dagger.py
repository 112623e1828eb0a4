"""il dagger: DAgger (Algorithm 1)."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Coordinator, Distributed, Env, EvalEpisodes, EvalPolicy, Expert, Hidden, Json, Name, NumProcesses,
                                    ProcessId, Recipe, Resume, RunDir, Seed, Seeds, Sweep, TensorBoard, eval_rows, expert_rows, sweep_rows, open_or_start,
                                    user_errors, vary_after_training)
from il_cli.config import DAggerConfig, build_config, parse_ints
from il_cli.ui import UI


def dagger(
    env: Env = None, seed: Seed = None, seeds: Seeds = None, sweep: Sweep = None, recipe: Recipe = None, expert: Expert = None,
    rounds: Annotated[Optional[int], typer.Option(help="Rounds N (default 10, or the length of an explicit schedule).")] = None,
    steps_per_round: Annotated[Optional[int], typer.Option(help="States m visited and labelled per round.", show_default="2000")] = None,
    num_envs: Annotated[Optional[int], typer.Option(help="Environments stepped in parallel.", show_default="8")] = None,
    beta_schedule: Annotated[Optional[str], typer.Option(help="linear | exponential | step | constant | a list like 1,0.5,0.", show_default="linear")] = None,
    beta_decay: Annotated[Optional[float], typer.Option(help="p of the exponential schedule β_i = p^(i-1).", show_default="0.5")] = None,
    beta: Annotated[Optional[float], typer.Option(help="β of the constant schedule.", show_default="0.5")] = None,
    train_steps: Annotated[Optional[int], typer.Option(help="Gradient steps on D after each round.", show_default="500")] = None,
    retrain_from_scratch: Annotated[Optional[bool], typer.Option("--retrain-from-scratch/--warm-start", help="Refit π̂ from a fresh initialization each round (default: warm start).")] = None,
    label_noise: Annotated[Optional[float], typer.Option(help="Noisy supervisor: fraction of random labels (discrete) or Gaussian label noise scale (continuous).", show_default="0")] = None,
    expert_budget: Annotated[Optional[int], typer.Option(help="Cap on expert queries: every state the expert labels or acts in, demonstrations included. Once spent, β is 0.")] = None,
    demos: Annotated[Optional[str], typer.Option(help="Dataset seeding D.")] = None,
    episodes: Annotated[Optional[int], typer.Option(help="Expert episodes collected to seed D.", show_default="0")] = None,
    hidden: Hidden = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.", show_default="1e-3")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Minibatch size.", show_default="256")] = None,
    eval_episodes: EvalEpisodes = None, eval_policy: EvalPolicy = None,
    vary_eval: Annotated[Optional[list[str]], typer.Option("--vary-eval", help="NAME=v1,v2,... or NAME=lo:hi:n: at the end, also evaluate over this grid of an environment parameter (as il eval --vary).")] = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, tensorboard: TensorBoard = None, json: Json = False,
    distributed: Distributed = False, coordinator: Coordinator = None, num_processes: NumProcesses = None,
    process_id: ProcessId = None,
):
    """DAgger: roll out β_i·expert + (1-β_i)·learner, label every visited state with the expert, aggregate, retrain."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "dagger", DAggerConfig, resume, lambda: build_config(
            DAggerConfig, "dagger", recipe, env=env, seed=seed, seeds=seeds, tensorboard=tensorboard, vary_eval=tuple(vary_eval) if vary_eval else None,
            sweep=tuple(sweep) if sweep else None, expert=expert, num_rounds=rounds,
            steps_per_round=steps_per_round, num_envs=num_envs, beta_schedule=beta_schedule,
            beta_decay=beta_decay, beta=beta, train_steps=train_steps,
            retrain_from_scratch=retrain_from_scratch, label_noise=label_noise,
            expert_budget=expert_budget, demos=demos, episodes=episodes,
            hidden=parse_ints(hidden, "hidden"), lr=lr, batch_size=batch_size,
            eval_episodes=eval_episodes, eval_policy=eval_policy), run_dir, name,
            distributed=(coordinator, num_processes, process_id) if distributed else None)
        summary = run.summary
        if summary is None:
            from il_cli.jobs.dagger import run_dagger
            from il_cli.jobs.programs import run_programs

            summary = run_programs(run_dagger, cfg, run, ui, ctx)
        summary = vary_after_training(ui, cfg, run, summary)
        run.close()
        ui.results("DAgger", sweep_rows(summary) if "members" in summary else rows(summary), run.path)
        ui.emit_json(summary)


def rows(summary: dict) -> list[tuple]:
    d = summary["dagger"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    budget = "" if d.get("expert_budget") is None else f" of a budget of {d['expert_budget']}"
    return eval_rows(summary) + expert_rows(summary) + [
        ("rounds", d["rounds"]), ("β schedule", ", ".join(f"{b:.3g}" for b in d["betas"])),
        ("β in effect (budget)", ", ".join(f"{b:.3g}" for b in d.get("betas_effective", []))),
        ("expert queries", f"{d['expert_queries']}{budget} ({d['demo_labels']} demonstrations)"),
        ("labels in D", d["dataset_size"]), ("steps the expert controlled", d["expert_steps"]),
        (f"ε on the learner's states ({policy})", d["tv_learner_states"]),
        (f"ε on the expert's states ({policy})", d["tv_expert_states"]),
        ("train loss", d["train_loss"]), ("wall time (s)", summary["wall_s"])]
