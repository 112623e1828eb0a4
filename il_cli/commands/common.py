"""Options shared by subcommands, and the error handling every command runs under."""

import contextlib
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from il_cli import signals
from il_cli.errors import UserError
from il_cli.sweep import describe
from il_cli.ui import UI

Env = Annotated[Optional[str], typer.Option("--env", "-e", help="gymnax id or alias (CartPole, Pendulum, Breakout, ...).", show_default="CartPole-v1")]
Seed = Annotated[Optional[int], typer.Option(help="Root PRNG seed; the same seed gives the same run.", show_default="0")]
Recipe = Annotated[Optional[str], typer.Option(help="TOML recipe (a path, or a shipped name like cartpole); flags override it.")]
RunDir = Annotated[Optional[Path], typer.Option("--run-dir", help="Exact run directory (default runs/<time>-<command>-<env>[-name]).")]
Name = Annotated[Optional[str], typer.Option(help="Suffix for the run directory's name.")]
Resume = Annotated[Optional[Path], typer.Option(help="Continue an interrupted run from its last checkpoint.")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")]
Expert = Annotated[Optional[str], typer.Option(help="Expert run directory (default: the cached expert, trained on first use).")]
Hidden = Annotated[Optional[str], typer.Option(help="Hidden layer sizes, e.g. 64,64.", show_default="64,64")]
EvalEpisodes = Annotated[Optional[int], typer.Option("--eval-episodes", help="Evaluation episodes.", show_default="100")]
Seeds = Annotated[Optional[int], typer.Option("--seeds", help="Members with seeds seed … seed+N−1, trained as one vmapped program.", show_default="1")]
Sweep = Annotated[Optional[list[str]], typer.Option("--sweep", help="key=v1,v2,...: a grid over a hyperparameter (repeat for a cartesian product); each cell runs --seeds members. Floats (lr=1e-3,3e-4) run in one vmapped program; counts and shapes (hidden=64x64,256x256, num_envs=8,32) one program per value, in RUN/cells/.")]
TensorBoard = Annotated[Optional[bool], typer.Option("--tensorboard/--no-tensorboard", help="Also write every logged metric as TensorBoard event files in RUN_DIR/tb (needs pip install -e '.[tb]').", show_default="no")]
Distributed = Annotated[bool, typer.Option("--distributed", help="Join a multi-process run (jax.distributed; SLURM's variables, or --coordinator/--num-processes/--process-id); members are sharded over every process's devices and process 0 writes the run directory.")]
Coordinator = Annotated[Optional[str], typer.Option(help="--distributed: host:port of process 0 (default: from SLURM).")]
NumProcesses = Annotated[Optional[int], typer.Option(help="--distributed: how many processes (default: from SLURM).")]
ProcessId = Annotated[Optional[int], typer.Option(help="--distributed: this process's index (default: from SLURM).")]
EvalPolicy = Annotated[Optional[str], typer.Option("--eval-policy", help="Evaluate greedy actions (mode) or actions sampled from π̂ (sample); ε is reported for that policy.", show_default="mode")]


@contextlib.contextmanager
def user_errors(ui: UI):
    """User mistakes: one line, exit 2. Ctrl-C: say what is kept and how to resume, exit 130;
    SIGTERM, 143.

    Yields a dict; a command that has created its run sets "root" and "run" to it ("run" to a
    sweep program's run while it trains: its pending checkpoint is finished before exiting) and
    "resume" to the command line that continues it."""
    ctx = {}
    try:
        with signals.handled():
            yield ctx
    except UserError as exc:
        ui.console.file.flush()
        print(f"error: {' '.join(str(exc).splitlines())}", file=sys.stderr)  # one line, whatever it quotes
        raise typer.Exit(2) from None
    except OSError as exc:  # a full disk, a read-only or vanished directory: not a bug of ours
        ui.console.file.flush()
        where = f" ({exc.filename})" if exc.filename else ""
        kept = "; the last checkpoint is kept" if _kept(ctx) else ""
        print(f"error: {exc.strerror or exc}{where}{kept}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (KeyboardInterrupt, signals.Terminated) as exc:
        if "run" in ctx:  # let a checkpoint being written finish, so the last one is whole
            ctx["run"].close()
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        if _kept(ctx):
            where = f"; continue with `{ctx['resume']}`" if "resume" in ctx else ""
            print(f"{how}: the last checkpoint is kept{where}", file=sys.stderr)
        elif "resume" in ctx:  # the run directory holds its settings, and nothing trained yet
            print(f"{how} before the first checkpoint, so no training is kept; `{ctx['resume']}` starts the run "
                  f"again from step 0", file=sys.stderr)
        else:
            print(f"{how}: nothing was saved; run the command again", file=sys.stderr)
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 143) from None


def _kept(ctx: dict) -> bool:
    """Whether the run being made (ctx["root"], the one --resume continues) has kept work:
    a checkpoint, or in a sweep over programs a program's checkpoint or summary."""
    run = ctx.get("root")
    if run is None:
        return False
    runs = [run.path, *sorted((run.path / "cells").glob("*"))]
    return any(p.name.isdigit() for r in runs if (r / "checkpoints").is_dir() for p in (r / "checkpoints").iterdir()) \
        or any((r / "summary.json").is_file() for r in runs)


def open_resumed(path, command: str):
    """The run to resume and its saved config; UserError if it is not a `command` run."""
    from il_cli.runs import Run

    run = Run.open(path)
    meta = run.meta
    if meta["command"] != command:
        raise UserError(f"{path} is an il {meta['command']} run; resume it with `il {meta['command']} --resume {path}`")
    return run, meta["config"]


def open_or_start(ui: UI, ctx: dict, command: str, cls, resume, make_config, run_dir=None,
                  name=None, resumable: bool = True, distributed: tuple | None = None):
    """(config, run): a run to resume with its saved config, or a new config (validated,
    its dataset and expert checked before JAX is imported) and a new run directory.

    A resumed run that already finished is returned as it is (its `summary` is set): the
    command reprints that summary instead of training. `distributed` = (coordinator,
    num_processes, process_id) joins a multi-process run (il_cli.loop.init_distributed):
    process 0 creates and writes the run directory, the others compute and stay quiet."""
    from il_cli import config as config_lib
    from il_cli.runs import Run, open_policy_run

    if resume:
        run, saved = open_resumed(resume, command)
        cfg = config_lib.from_json(cls, saved)
        if run.summary is None:
            if distributed is None:
                run.lock()
        else:
            ui.header(command, cfg.env, run.path, run.summary.get("device", ""))
            ui.print(f"{run.path} already finished: nothing to resume; its summary:")
            return cfg, run
    else:
        cfg = make_config()
        from il_cli.data import load_dataset

        datasets = {path: load_dataset(path, cfg.env) for path in (getattr(cfg, "demos", None),
                                                                   getattr(cfg, "pretrain_data", None)) if path}
        if getattr(cfg, "expert", None):
            open_policy_run(cfg.expert, cfg.env)
    from il_cli.envs import make_env
    from il_cli.loop import device_description, setup_jax, shared_run
    from il_cli.paths import runs_root

    jax = setup_jax()
    if distributed is not None:
        from il_cli.loop import init_distributed, is_writer

        init_distributed(*distributed)
        if not is_writer():  # process 0 prints (and --json emits) for all
            ui.console.quiet, ui.json_mode = True, False
    from il_cli.sweep import members, programs, split_grid

    grid = getattr(cfg, "sweep", ())
    num_members = getattr(cfg, "seeds", 1) * math.prod(len(values) for _, values in split_grid(grid)[1])
    if num_members % jax.device_count():  # the members of each program
        raise UserError(f"{num_members} members do not divide evenly over {jax.device_count()} devices; "
                        f"choose --seeds so that seeds × grid cells is a multiple of {jax.device_count()}")
    if not resume:
        spec = None if getattr(cfg, "task", None) == "text" else make_env(cfg.env)[2]
        from il_cli.data import check_fits

        for path, data in datasets.items():  # read before JAX started; their shapes need the env
            check_fits(data, path, spec)
        if getattr(cfg, "vary_eval", ()):
            from il_cli.jobs.vary import check_grid

            check_grid(cfg.env, cfg.vary_eval, "--vary-eval")
        if getattr(cfg, "prefs_file", None):
            from il_cli.data import load_preferences

            load_preferences(cfg.prefs_file, spec.env_id, spec.obs_shape, spec.discrete, spec.action_dim, given=True)
        if getattr(cfg, "rankings", None) and Path(cfg.rankings).exists():  # a person's, to rank or reuse
            from il_cli.text.human import check_rankings

            check_rankings(cfg.rankings, cfg.num_prompts, cfg.k, cfg.human)
        create = lambda: Run.create(runs_root(), command, cfg.env, name, config_lib.to_json(cfg),
                                    {"task": cfg.task} if spec is None else spec.to_json(),
                                    members(cfg.seed, getattr(cfg, "seeds", 1), grid),
                                    run_dir=str(run_dir) if run_dir else None, programs=programs(grid))
        if distributed is None:
            with signals.uninterrupted():  # a Ctrl-C while the run is made is answered with its --resume
                run = ctx["run"] = ctx["root"] = create()
                if resumable:
                    ctx["resume"] = f"il {command} --resume {run.path}"
        else:
            run = shared_run(create)
    elif distributed is not None and resume and run.summary is None:
        run = shared_run(lambda: (run.lock(), run)[1])
    ctx["run"] = ctx["root"] = run
    if resumable:
        ctx["resume"] = f"il {command} --resume {run.path}"
    ui.header(command, cfg.env, run.path, device_description())
    if resume:
        ui.print(f"resuming from step {run.latest_step() or 0}")
    return cfg, run


def eval_rows(summary: dict) -> list[tuple]:
    ev = summary["eval"]
    policy = {"mode": "greedy", "sample": "sampled"}[ev.get("policy", "mode")]
    return [("return", f"{ev['return_mean']:.2f} ± {ev['return_std']:.2f}  "
                       f"[{ev['return_min']:.1f}, {ev['return_max']:.1f}]  "
                       f"({ev['episodes']} episodes, {policy} actions)"),
            ("episode length", ev["length_mean"])]


def expert_rows(summary: dict) -> list[tuple]:
    """The paired expert return and the gap (or the dataset's figure when not paired)."""
    ex = summary["expert"]
    paired = "same keys and episodes" if ex.get("paired") else "recorded in the dataset, not paired"
    return [("expert return", f"{ex['return_mean']:.2f}  ({paired})"),
            ("return gap J(π*) − J(π̂)", summary["return_gap"])]


def sweep_rows(summary: dict) -> list[tuple]:
    """Result rows of a run of several members: per sweep cell, the return's interquartile
    mean with its 95% bootstrap CI, and mean ± std over the cell's seeds."""
    out = []
    for cell in summary["cells"]:
        name = describe(cell["hyper"]) or "all members"
        r = cell["return"]
        out.append((f"return, {name}", f"IQM {r['iqm']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]  "
                                       f"mean {r['mean']:.2f} ± {r['std']:.2f}  ({r['n']} seed{'s' * (r['n'] > 1)})"))
    return out + [("members", len(summary["members"])), ("wall time (s)", summary["wall_s"])]


def vary_after_training(ui: UI, cfg, run, summary: dict) -> dict:
    """--vary-eval: the trained run evaluated over the grid too (il_cli.jobs.vary), its table
    printed and vary.json/vary.png named in the summary; once, also across --resume."""
    if not getattr(cfg, "vary_eval", ()) or "vary_eval" in summary:
        return summary
    from il_cli.commands.evaluate import vary_table
    from il_cli.jobs.vary import run_vary

    result = run_vary([str(run.path)], cfg.vary_eval, None, None, None, None, ui)
    ui.grid("return over the --vary-eval grid (* the training value)", *vary_table(result))
    summary = {**summary, "vary_eval": {"plot": result["plot"], "json": result["json"],
                                        "grid": result["results"][0]["grid"]}}
    run.write_summary(summary)
    return summary
