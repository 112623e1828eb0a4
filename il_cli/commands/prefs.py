"""il prefs: learning from state-action preferences."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Coordinator, Distributed, NumProcesses, ProcessId, Env, EvalEpisodes, EvalPolicy, Expert, Hidden, Json, Name, Recipe, Resume,
                                    RunDir, Seed, Seeds, Sweep, TensorBoard, eval_rows, expert_rows, open_or_start, sweep_rows,
                                    user_errors)
from il_cli.config import PrefsConfig, build_config, parse_ints
from il_cli.ui import UI

StateSource = Annotated[Optional[str], typer.Option(help="States the pairs are asked at: the expert's rollouts (expert), or the expert acting with probability ½ and a random action otherwise (uniform-mix).", show_default="uniform-mix")]
Teacher = Annotated[Optional[str], typer.Option(help="Simulated teacher, labelling from the expert's score log π*(a|s): oracle (the better-scored action) | noisy (B-Pref's Stoc: Boltzmann, --teacher-beta) | mistake (B-Pref's: --mistake-rate of labels flipped) | skip (B-Pref's: no answer when both actions score below --teacher-skip-score) | skip-ties (no answer when the score gap is under --teacher-threshold) | equal (B-Pref's: ½ for such near-ties).", show_default="oracle")]
TeacherBeta = Annotated[Optional[float], typer.Option(help="Rationality β of the noisy teacher: p(a ≻ b) = σ(β(log π*(a|s) − log π*(b|s))).", show_default="1")]
MistakeRate = Annotated[Optional[float], typer.Option(help="Fraction of the mistake teacher's labels that are flipped.", show_default="0.1")]
TeacherThreshold = Annotated[Optional[float], typer.Option(help="Score gap (nats) under which the skip-ties teacher does not answer and the equal teacher says ½.", show_default="0.1")]
TeacherSkipScore = Annotated[Optional[float], typer.Option(help="The skip teacher does not answer when both actions' scores log π*(a|s) are below this (nats).", show_default="-3")]


def prefs(
    env: Env = None, seed: Seed = None, seeds: Seeds = None, sweep: Sweep = None, recipe: Recipe = None,
    expert: Expert = None,
    num_prefs: Annotated[Optional[int], typer.Option(help="Preference pairs (s, a, b) put to the teacher.", show_default="5000")] = None,
    prefs_file: Annotated[Optional[str], typer.Option(help="Preferences from a file (`il collect --prefs`, or your own in its format) instead of a simulated teacher.")] = None,
    state_source: StateSource = None, teacher: Teacher = None, teacher_beta: TeacherBeta = None,
    mistake_rate: MistakeRate = None, teacher_threshold: TeacherThreshold = None,
    teacher_skip_score: TeacherSkipScore = None,
    param: Annotated[Optional[str], typer.Option(help="q: learn Q(s,a), act with π ∝ exp(Q/α); policy: learn log π directly (CPL / DPO without a reference).", show_default="q")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="α in π ∝ exp(Q/α) (with --param policy: the scale of α log π in the loss).", show_default="1")] = None,
    hidden: Hidden = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.", show_default="1e-3")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Minibatch size (pairs).", show_default="256")] = None,
    num_steps: Annotated[Optional[int], typer.Option(help="Gradient steps.", show_default="4000")] = None,
    holdout_frac: Annotated[Optional[float], typer.Option(help="Fraction of whole environment streams held out to measure accuracy and ε (0: none).", show_default="0.1")] = None,
    eval_episodes: EvalEpisodes = None, eval_policy: EvalPolicy = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, tensorboard: TensorBoard = None, json: Json = False,
    distributed: Distributed = False, coordinator: Coordinator = None, num_processes: NumProcesses = None,
    process_id: ProcessId = None,
):
    """Learning from preferences: Q fitted to p(a ≻ b | s) = σ(Q(s,a) − Q(s,b)) (eq. 24.11), acting with π ∝ exp(Q/α)."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "prefs", PrefsConfig, resume, lambda: build_config(
            PrefsConfig, "prefs", recipe, env=env, seed=seed, seeds=seeds, tensorboard=tensorboard, sweep=tuple(sweep) if sweep else None,
            expert=expert, num_prefs=num_prefs, prefs_file=prefs_file, state_source=state_source,
            teacher=teacher, teacher_beta=teacher_beta, mistake_rate=mistake_rate,
            teacher_threshold=teacher_threshold, teacher_skip_score=teacher_skip_score, param=param, temperature=temperature,
            hidden=parse_ints(hidden, "hidden"), lr=lr, batch_size=batch_size, num_steps=num_steps,
            holdout_frac=holdout_frac, eval_episodes=eval_episodes, eval_policy=eval_policy), run_dir, name,
            distributed=(coordinator, num_processes, process_id) if distributed else None)
        summary = run.summary
        if summary is None:
            from il_cli.jobs.prefs import run_prefs
            from il_cli.jobs.programs import run_programs

            summary = run_programs(run_prefs, cfg, run, ui, ctx)
        run.close()
        ui.results("learning from preferences", sweep_rows(summary) if "members" in summary else rows(summary),
                   run.path)
        ui.emit_json(summary)


def teacher_text(teacher) -> str:
    if not isinstance(teacher, dict):
        return str(teacher)
    extra = {"noisy": "teacher_beta", "mistake": "mistake_rate", "skip": "teacher_skip_score",
             "skip-ties": "teacher_threshold", "equal": "teacher_threshold"}.get(teacher["name"])
    return teacher["name"] + (f" ({extra.split('_', 1)[1].replace('_', ' ')} {teacher[extra]:g})"
                              if extra and extra in teacher else "")


def rows(summary: dict) -> list[tuple]:
    p = summary["prefs"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    held = p["holdout"]
    holdout = held if not isinstance(held, dict) else (
        f"{held['streams']} stream{'s' * (held['streams'] > 1)}, {held['pairs']} pairs")
    return eval_rows(summary) + expert_rows(summary) + [
        ("held-out preference accuracy (vs the expert)", p["preference_accuracy"]),
        ("held-out accuracy on the teacher's labels", p["label_accuracy"]),
        (f"ε = TV(π, π*) on the expert's states ({policy})", p["tv_expert_states"]),
        (f"ε on the learner's own states ({policy})", p["tv_learner_states"]),
        (f"ε on the held-out states ({policy})", p["tv_holdout_states"]),
        ("policy entropy on held-out states", p["entropy"]), ("held out", holdout),
        ("train loss / held-out loss", f"{p['train_loss']:.4f} / {p['holdout_loss']:.4f}"),
        ("parameterisation", f"{p['param']} (α = {p['temperature']:g})"),
        ("teacher", f"{teacher_text(p['teacher'])}, states from {p['state_source'] or 'the file'}"),
        ("teacher queries", f"{p['teacher_queries']} of {p['pairs']} pairs ({p['train_pairs']} trained on)"),
        ("samples / s", f"{p['samples_per_s']:,.0f}" if p.get("samples_per_s") else None),
        ("wall time (s)", summary["wall_s"])]
