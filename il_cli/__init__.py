"""il: imitation learning experiments as jit-compiled JAX programs on gymnax environments."""

__version__ = "0.1.0"

import time as _time

PROCESS_START = _time.time()  # metrics record seconds since here (`elapsed_s`)


def run(command: str, **options) -> dict:
    """Run `il COMMAND` from a notebook or a script and return its summary (summary.json):

        from il_cli import run
        summary = run("bc", env="CartPole", seeds=4)
        summary = run("dagger", env="Pendulum", beta_schedule="exponential", sweep=["lr=1e-3,3e-4"])

    Options are the config's fields with Python values (hidden=(64, 64)), and recipe, resume,
    run_dir, name and quiet; the same validation, run directory and summary as the command
    line (il_cli.launch.run). A mistake raises il_cli.errors.UserError."""
    from il_cli.launch import run as launch_run

    return launch_run(command, **options)
