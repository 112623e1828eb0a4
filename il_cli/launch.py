"""Starting and running a command: the same path for the command line (il_cli.cli) and for
Python (`il_cli.run`). The config is built and validated, its datasets, expert and rankings
checked, before JAX is imported or a run directory exists; then the run is made (or opened to
resume), its job runs (one program, or one per value of a swept count or shape) and its
summary is written.
"""

import math
from pathlib import Path

from il_cli import config as config_lib
from il_cli import recipe as recipe_lib
from il_cli import signals
from il_cli.errors import UserError, suggest
from il_cli.options import fields_of, flag_of, settable
from il_cli.registry import Command


def open_resumed(path, command: str):
    """The run to resume and its saved config; UserError if it is not a `command` run."""
    from il_cli.runs import Run

    run = Run.open(path)
    meta = run.meta
    if meta["command"] != command:
        raise UserError(f"{path} is an il {meta['command']} run; resume it with `il {meta['command']} --resume {path}`")
    return run, meta["config"]


def choose_config(command: Command, flags: dict, resume):
    """The config class of the run: the one of its --task (a resumed run keeps its own); a flag
    of another task's config only is refused."""
    task = flags.pop("task", None)
    if task is not None and task not in command.configs:
        raise UserError(f"--task must be {' or '.join(command.configs)}, got '{task}'")
    if resume and len(command.configs) > 1:
        from il_cli.runs import Run

        meta = Run.open(resume).meta
        if meta["command"] == command.name:
            saved = meta["config"].get("task", next(iter(command.configs)))
            if task not in (None, saved):
                raise UserError(f"{resume} is a --task {saved} run; resume it without --task {task}")
            task = saved
    cls = command.config(task)
    own = set(settable(cls))
    known = set().union(*(fields_of(c) for c in command.configs.values()))
    unknown = sorted(name for name in flags if name not in known)
    if unknown:  # only from Python: the command line has no such option to give
        raise UserError(f"il {command.name} has no option {unknown[0]}{suggest(unknown[0], own)}")
    others = sorted(name for name, value in flags.items() if value is not None and name not in own)
    if others:
        given = ", ".join(flag_of(next(c for c in command.configs.values() if name in fields_of(c)), name)
                          for name in others)
        task = task or next(iter(command.configs))
        if task == next(iter(command.configs)):
            theirs = next(t for t, c in command.configs.items() if others[0] in fields_of(c))
            raise UserError(f"{given}: only with --task {theirs}")
        raise UserError(f"{given}: not an option of --task {task} (see il {command.name} --help)")
    return cls


def sft_architecture(path) -> dict:
    """The hidden sizes and activation of the `il bc` run given as --sft (π_RL inherits them)."""
    from il_cli.runs import open_policy_run

    config = open_policy_run(path, None, ("bc",)).meta["config"]
    return {"hidden": tuple(config["hidden"]), "activation": config.get("activation", "tanh")}


def check_inputs(cfg) -> dict:
    """What a new run reads from outside that needs no JAX, checked before JAX starts: its
    datasets (returned by path), the expert, a person's rankings."""
    from il_cli.interop import load_any
    from il_cli.runs import open_policy_run

    datasets = {path: load_any(path, cfg.env) for path in (getattr(cfg, "demos", None),
                                                               getattr(cfg, "pretrain_data", None)) if path}
    if getattr(cfg, "expert", None):
        open_policy_run(cfg.expert, cfg.env)
    if getattr(cfg, "reward", None):
        open_policy_run(cfg.reward, cfg.env, ("airl", "gail"))
    if getattr(cfg, "minari", None):  # a Minari dataset to write: the extra installed, the id free
        from il_cli.interop import check_export_target

        check_export_target(cfg.minari)
    if getattr(cfg, "rankings", None) and Path(cfg.rankings).exists():  # a person's, to rank or reuse
        from il_cli.text.human import check_rankings

        check_rankings(cfg.rankings, cfg.num_prompts, cfg.k, cfg.human)
    return datasets


def check_against_env(cfg, datasets: dict):
    """The checks that need the environment (so JAX, after `--distributed` has joined): the
    datasets' shapes, a --vary-eval grid, a preference file. Returns the env spec (None for
    the text task, which has no environment)."""
    from il_cli.data import check_fits
    from il_cli.envs import make_env

    if getattr(cfg, "task", None) == config_lib.TEXT_TASK:
        return None
    spec = make_env(cfg.env)[2]
    for path, data in datasets.items():
        check_fits(data, path, spec)
    from il_cli.envs import check_grid

    for field, flag in (("vary_eval", "--vary-eval"), ("env_param", "--env-param")):  # environment parameters
        if getattr(cfg, field, ()):
            check_grid(cfg.env, getattr(cfg, field), flag)
    if getattr(cfg, "prefs_file", None):
        from il_cli.data import load_preferences

        load_preferences(cfg.prefs_file, spec.env_id, spec.obs_shape, spec.discrete, spec.action_dim, given=True)
    return spec


def open_or_start(command: Command, flags: dict, ui, ctx: dict, *, recipe=None, resume=None, run_dir=None,
                  name=None, distributed: tuple | None = None):
    """(config, run): a run to resume with its saved config, or a new config (validated, its
    inputs checked before JAX is imported) and a new run directory.

    A resumed run that already finished is returned as it is (its `summary` is set): the
    command reprints that summary instead of training. `distributed` = (coordinator,
    num_processes, process_id) joins a multi-process run (il_cli.loop.init_distributed):
    process 0 creates and writes the run directory, the others compute and stay quiet."""
    from il_cli.runs import Run

    if distributed is not None and flags.get("human"):
        raise UserError("--human: one person ranks in one terminal; not with --distributed")
    cls = choose_config(command, flags, resume)
    if resume:
        run, saved = open_resumed(resume, command.name)
        cfg = recipe_lib.from_json(cls, saved)
        if run.summary is not None:
            ui.header(command.name, cfg.env, run.path, run.summary.get("device", ""))
            ui.print(f"{run.path} already finished: nothing to resume; its summary:")
            return cfg, run
        if distributed is None:
            run.lock()
    else:
        if flags.get("sft"):  # π_RL starts from π_SFT, so it has its architecture
            architecture = sft_architecture(flags["sft"])
            if flags.get("hidden") is not None and tuple(flags["hidden"]) != architecture["hidden"]:
                raise UserError(f"--hidden {','.join(map(str, flags['hidden']))} differs from the --sft run's "
                                f"{architecture['hidden']}: π_RL starts from π_SFT, so it has its architecture")
            flags = {**flags, **architecture}
        if recipe is None and command.env_recipe:
            recipe = recipe_lib.env_recipe(command.name, flags.get("env"))
        cfg = recipe_lib.build_config(cls, command.name, recipe, **flags)
        datasets = check_inputs(cfg)
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
    resume_line = f"il {command.name} --resume {{}}" if command.resumable else None
    if not resume:
        spec = check_against_env(cfg, datasets)
        config_json = recipe_lib.to_json(cfg)
        create = lambda: Run.create(runs_root(), command.name, cfg.env, name, config_json,
                                    {"task": cfg.task} if spec is None else spec.to_json(),
                                    members(cfg.seed, getattr(cfg, "seeds", 1), grid),
                                    run_dir=str(run_dir) if run_dir else None, programs=programs(grid),
                                    policy_path=command.policy_path(config_json))
        if distributed is None:
            with signals.uninterrupted():  # a Ctrl-C while the run is made is answered with its --resume
                run = ctx["run"] = ctx["root"] = create()
                if resume_line:
                    ctx["resume"] = resume_line.format(run.path)
        else:
            run = shared_run(create)
    elif distributed is not None:
        run = shared_run(lambda: (run.lock(), run)[1])
    ctx["run"] = ctx["root"] = run
    if resume_line:
        ctx["resume"] = resume_line.format(run.path)
    ui.header(command.name, cfg.env, run.path, device_description())
    if resume:
        ui.print(f"resuming from step {run.latest_step() or 0}")
    return cfg, run


def vary_after_training(ui, cfg, run, summary: dict) -> dict:
    """--vary-eval: the trained run evaluated over the grid too (il_cli.jobs.vary), its table
    printed and vary.json/vary.png named in the summary; once, also across --resume."""
    if not getattr(cfg, "vary_eval", ()) or "vary_eval" in summary:
        return summary
    from il_cli.jobs.vary import run_vary
    from il_cli.results import vary_table

    result = run_vary([str(run.path)], cfg.vary_eval, None, None, None, None, ui)
    ui.grid("return over the --vary-eval grid (* the training value)", *vary_table(result))
    summary = {**summary, "vary_eval": {"plot": result["plot"], "json": result["json"],
                                        "grid": result["results"][0]["grid"]}}
    run.write_summary(summary)
    return summary


def run_command(command: Command, flags: dict, ui, ctx: dict, **where) -> tuple[dict, "object"]:
    """(summary, run) of `command` with `flags` (config fields; None: not given) and `where`
    (recipe, resume, run_dir, name, distributed): trained, or a finished run's summary."""
    cfg, run = open_or_start(command, dict(flags), ui, ctx, **where)
    summary = run.summary
    if summary is None:
        from il_cli.programs import run_programs

        summary = run_programs(command.load_job(), cfg, run, ui, ctx)
        if command.after:
            summary = command.load_after()(cfg, run, summary, ui)
    summary = vary_after_training(ui, cfg, run, summary)
    run.close()
    return summary, run


def run(command: str, *, recipe: str | None = None, resume: str | None = None, run_dir: str | None = None,
        name: str | None = None, quiet: bool = False, **options) -> dict:
    """Run `il COMMAND` from Python and return its summary (the run's summary.json):
    `run("bc", env="CartPole", seeds=4)`. Options are the config's fields with Python values
    (hidden=(64, 64), sweep=("lr=1e-3,3e-4",)); the same validation, run directory and
    summary as the command line. A mistake raises il_cli.errors.UserError."""
    from il_cli import registry
    from il_cli.ui import UI

    ui = UI(quiet=quiet)
    ctx = {}
    entry = registry.get(command)
    flags = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    with signals.handled():
        try:
            summary, _ = run_command(entry, flags, ui, ctx, recipe=recipe, resume=resume, run_dir=run_dir, name=name)
        except BaseException:
            if "run" in ctx:  # a checkpoint being written is finished, the run unlocked
                ctx["run"].close()
            raise
    return summary
