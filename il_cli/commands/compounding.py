"""il compounding: Theorem 24.1 measured, BC's H²ε against DAgger's Hε."""

from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Coordinator, Distributed, EvalPolicy, Expert, Hidden, Json, Name,
                                    NumProcesses, ProcessId, Recipe, Resume, RunDir, Seed, Sweep, open_or_start,
                                    user_errors)
from il_cli.config import CompoundingConfig, build_config, parse_ints
from il_cli.ui import UI


def compounding(
    env: Annotated[Optional[str], typer.Option("--env", "-e", help="gymnax id or alias; Rail is the worst case of the theorem.", show_default="Rail-v0")] = None,
    seed: Seed = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per horizon, trained as one vmapped program.", show_default="16")] = None,
    sweep: Sweep = None, recipe: Recipe = None, expert: Expert = None,
    horizons: Annotated[Optional[str], typer.Option(help="Horizons H (episodes truncated at H), e.g. 50,100,200.", show_default="Rail: 16,32,64,128,256; others: 50,100,200,300,500")] = None,
    demos: Annotated[Optional[str], typer.Option("--demos", help="Expert episodes for BC, e.g. 1,2,5,10; DAgger gets as many expert labels.", show_default="4")] = None,
    rounds: Annotated[Optional[int], typer.Option(help="DAgger rounds (β = 1 in the first, 0 after).", show_default="4")] = None,
    train_steps: Annotated[Optional[int], typer.Option(help="BC's gradient steps; DAgger's after each round.", show_default="1000")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of BC and DAgger.", show_default="3e-3")] = None,
    hidden: Hidden = None,
    eval_episodes: Annotated[Optional[int], typer.Option("--eval-episodes", help="Evaluation episodes per seed and horizon.", show_default="256")] = None,
    eval_policy: EvalPolicy = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, json: Json = False,
    distributed: Distributed = False, coordinator: Coordinator = None, num_processes: NumProcesses = None,
    process_id: ProcessId = None,
):
    """Theorem 24.1 measured: BC's and DAgger's return gaps against H at equal expert labels, with ε, H²ε and fitted slopes."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        cfg, run = open_or_start(ui, ctx, "compounding", CompoundingConfig, resume, lambda: build_config(
            CompoundingConfig, "compounding", recipe, env=env, seed=seed, seeds=seeds,
            sweep=tuple(sweep) if sweep else None, expert=expert, horizons=parse_ints(horizons, "horizons"),
            demo_episodes=parse_ints(demos, "demos"), rounds=rounds, train_steps=train_steps, lr=lr,
            hidden=parse_ints(hidden, "hidden"), eval_episodes=eval_episodes, eval_policy=eval_policy), run_dir, name,
            distributed=(coordinator, num_processes, process_id) if distributed else None)
        summary = run.summary
        if summary is None:
            from il_cli.jobs.compounding import run_compounding

            summary = run_compounding(cfg, run, ui)
        run.close()
        ui.results("compounding error (Theorem 24.1)", rows(summary), run.path)
        ui.emit_json(summary)


def rows(summary: dict) -> list[tuple]:
    """Per (demos, H): BC's and DAgger's gap ± s.e., ε on the expert's and own states, H²ε and
    gap/(H²ε); then the fitted slopes and the bound check."""
    out = []
    for r in summary["table"]:
        cell = "".join(f", {k}={v:g}" for k, v in r["hyper"].items())
        ratio = "–" if r["gap_over_h2_eps"] is None else f"{r['gap_over_h2_eps']:.3f}"
        own = "–" if r.get("gap_over_h_eps_own") is None else f"{r['gap_over_h_eps_own']:.2f}"
        out.append((f"{'BC' if r['algo'] == 'bc' else 'DAgger'}, {r['demos']} demos{cell}, H={r['horizon']}",
                    f"gap {r['gap']:.2f} ± {r['gap_se']:.2f}  ε {r['eps_expert_states']:.4f} (own states "
                    f"{r['eps_own_states']:.4f})  H²ε {r['bound']:.1f}  gap/H²ε {ratio}  gap/Hε_own {own}"))
    for s in summary["slopes"]:
        cell = "".join(f", {k}={v:g}" for k, v in s["hyper"].items())
        ci = "" if not s.get("ci95") else f"  [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}] 95% CI over seeds"
        out.append((f"growth exponent p of the gap ≈ c·H^p, {'BC' if s['algo'] == 'bc' else 'DAgger'}, "
                    f"{s['demos']} demos{cell}", "– (no positive gap)" if s["slope"] is None else f"{s['slope']:.2f}{ci}"))
    out += [("gap ≤ H²ε for every seed and H", "yes" if summary["bound_holds"] else "NO"),
            ("seeds", summary["seeds"]), ("table", summary["csv"]), ("plot", summary["plot"]),
            ("wall time (s)", summary["wall_s"])]
    return out
