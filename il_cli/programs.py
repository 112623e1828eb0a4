"""A sweep over counts or shapes (`--sweep hidden=64x64,256x256`, `--sweep num_envs=8,32`):
one compiled program per value, one after another, each a run of its own in
RUN/cells/<key=value,...>/ with the float grid and seeds vmapped inside it. The parent run
holds the whole grid: its metrics are its programs' (il_cli.runs.Run.metrics) and its summary
aggregates their members, numbered as in a run of one program (shape keys vary slowest)."""

import time

from il_cli import recipe as recipe_lib
from il_cli.plots import write_curves
from il_cli.runs import CONFIG, Run
from il_cli.summaries import run_summary
from il_cli.sweep import describe, members, program_config

MEMBER_KEYS = ("member", "seed", "cell", "hyper")
RUN_KEYS = ("command", "env", "run_dir", "seed", "wall_s", "device", "versions", "compile", "curves", "plot")


def member_blocks(summary: dict) -> list[dict]:
    """The per-member figures of a run's summary (without the member's seed and cell)."""
    if "members" in summary:
        return [{k: v for k, v in m.items() if k not in MEMBER_KEYS} for m in summary["members"]]
    return [{k: v for k, v in summary.items() if k not in RUN_KEYS}]


def open_program(parent: Run, program: dict, cfg) -> Run:
    """The run of one program: created on first use, reopened (and locked) to continue it."""
    import jax

    from il_cli.loop import shared_run

    path = parent.path / program["dir"]
    meta = parent.meta

    def make():
        if (path / CONFIG).is_file():
            run = Run.open(path)
            if run.summary is None:
                run.lock()
            return run
        return Run.create(None, meta["command"], meta["env"], None, recipe_lib.to_json(cfg), meta["spec"],
                          members(cfg.seed, cfg.seeds, cfg.sweep), run_dir=str(path), policy_path=meta["policy_path"])

    return make() if jax.process_count() == 1 else shared_run(make)


def run_programs(job, cfg, run: Run, ui, ctx: dict) -> dict:
    """`job(cfg, run, ui)` (il_cli.jobs.*) once for a run of one program, else once per program
    of its grid (a finished one is skipped, an interrupted one continued); then the parent's
    summary: every member's figures, per cell mean, std, IQM and 95% CI (run_summary)."""
    programs = run.meta.get("programs")
    if not programs:
        return job(cfg, run, ui)
    started = time.time()
    done = []  # (program, its run, its summary)
    for i, program in enumerate(programs):
        program_cfg = program_config(cfg, program["hyper"])
        child = open_program(run, program, program_cfg)
        summary = child.summary
        ui.print(f"program {i + 1}/{len(programs)}: {describe(program['hyper'])} → {child.path}"
                 + ("" if summary is None else " (finished before)"))
        if summary is None:
            if child.latest_step():
                ui.print(f"resuming from step {child.latest_step()}")
            ctx["run"] = child  # Ctrl-C lets its checkpoint finish; the parent's --resume continues
            summary = job(program_cfg, child, ui)  # (process 0 writes it; the others use this one)
            child.close()
            ctx["run"] = run
        done.append((program, child, summary))
    blocks = [block for _, _, s in done for block in member_blocks(s)]
    meta = run.meta
    summary = run_summary(meta["command"], meta["env"], cfg.seed, run, started, blocks, run.members)
    summary["programs"] = [{"hyper": p["hyper"], "run_dir": str(child.path), "wall_s": s["wall_s"]}
                           for p, child, s in done]
    summary["wall_s"] = round(sum(p["wall_s"] for p in summary["programs"]), 3)
    summary["curves"] = str(write_curves(run, summary))
    run.write_summary(summary)
    return summary
