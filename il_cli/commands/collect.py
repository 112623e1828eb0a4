"""il collect: expert demonstrations as a dataset."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import Env, Expert, Json, Name, Recipe, RunDir, Seed, open_or_start, user_errors
from il_cli.commands.prefs import (MistakeRate, StateSource, Teacher, TeacherBeta, TeacherSkipScore,
                                   TeacherThreshold, teacher_text)
from il_cli.config import CollectConfig, build_config
from il_cli.ui import UI


def collect(
    env: Env = None, seed: Seed = None, recipe: Recipe = None,
    episodes: Annotated[Optional[int], typer.Option(help="Episodes to record.", show_default="100")] = None,
    num_envs: Annotated[Optional[int], typer.Option(help="Environments stepped in parallel.", show_default="1024")] = None,
    expert: Expert = None,
    prefs: Annotated[Optional[int], typer.Option(help="Write N preference pairs (s, a, b, P(a ≻ b)) judged by a simulated teacher into run/data/prefs.npz instead of demonstrations.", show_default="0")] = None,
    state_source: StateSource = None, teacher: Teacher = None, teacher_beta: TeacherBeta = None,
    mistake_rate: MistakeRate = None, teacher_threshold: TeacherThreshold = None,
    teacher_skip_score: TeacherSkipScore = None, run_dir: RunDir = None, name: Name = None, json: Json = False,
):
    """Record expert demonstrations on vectorized environments into run/data/demos.npz (or, with --prefs, a teacher's preferences into run/data/prefs.npz)."""
    import time

    started = time.time()
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "collect", CollectConfig, None, lambda: build_config(
            CollectConfig, "collect", recipe, env=env, seed=seed, episodes=episodes, num_envs=num_envs,
            expert=expert, prefs=prefs, state_source=state_source, teacher=teacher, teacher_beta=teacher_beta,
            mistake_rate=mistake_rate, teacher_threshold=teacher_threshold, teacher_skip_score=teacher_skip_score),
            run_dir, name, resumable=False)
        from il_cli.jobs.collect import run_collect
        from il_cli.jobs.expert import get_expert

        expert_run = get_expert(cfg.env, cfg.expert, ui)
        summary = run_collect(cfg, run, expert_run, started)
        c, d = summary["collect"], summary["dataset"]
        if cfg.prefs:
            ui.results("collect", [
                ("preference file", d["path"]), ("pairs", d["pairs"]), ("teacher queries", d["count"]),
                ("teacher", teacher_text(d["teacher"])), ("states from", d["state_source"]),
                ("labelled ½ (ties)", d["ties"]), ("wall time (s)", summary["wall_s"])], run.path)
            ui.emit_json(summary)
            return
        ui.results("collect", [
            ("dataset", d["path"]), ("transitions", d["count"]), ("episodes", d["episodes"]),
            ("demo return", d["return_mean"]), ("transitions / s", f"{c['transitions_per_s']:,.0f}"),
            ("compile (s)", c["compile_s"]), ("wall time (s)", summary["wall_s"])], run.path)
        ui.emit_json(summary)
