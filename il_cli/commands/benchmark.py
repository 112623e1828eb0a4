"""il benchmark: algorithms × environments × seeds, scored and tabulated as a paper reports it."""

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from il_cli.commands.common import Json, user_errors
from il_cli.ui import UI


def benchmark(
    suite: Annotated[Optional[str], typer.Option(help="A shipped suite (classic, minatar) or a suite file.")] = None,
    algos: Annotated[Optional[str], typer.Option(help="Algorithms, comma-separated (default: the suite's; bc,dagger,prefs).")] = None,
    envs: Annotated[Optional[str], typer.Option(help="Environments, comma-separated (default: the suite's).")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per cell, one vmapped program (default: the suite's, else 5).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Benchmark directory (default runs/<time>-benchmark-<suite>).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue a benchmark directory: finished cells are read back, "
                                                        "an interrupted one resumed.")] = None,
    json: Json = False,
):
    """Run a benchmark: each (algorithm, environment) cell one --seeds N run; normalised returns with IQMs and
    stratified-bootstrap CIs (rliable); benchmark.md/.csv/.json/.png."""
    ui = UI(json)
    with user_errors(ui):
        from il_cli import benchmark as B
        from il_cli.errors import UserError

        split = lambda text: [x.strip() for x in text.split(",") if x.strip()] if text else None  # noqa: E731
        if resume:
            if suite or algos or envs or seeds is not None or out:
                raise UserError("--resume continues the benchmark as it was planned: give no --suite, --algos, "
                                "--envs, --seeds or --out with it")
            plan, where = B.reopen(resume), Path(resume)
        else:
            plan = B.make_plan(suite, split(algos), split(envs), seeds)
            where = B.start(out, plan)
        ui.print(f"il benchmark · {plan['suite']}: {', '.join(plan['algos'])} × {', '.join(plan['envs'])}, "
                 f"{plan['seeds']} seeds · {where}")
        started = time.time()
        try:
            results = B.run_cells(plan, where, ui)
        except KeyboardInterrupt:
            print(f"interrupted: the finished cells and the running one's last checkpoint are kept; continue with "
                  f"`il benchmark --resume {where}`", file=sys.stderr)
            raise typer.Exit(130) from None
        totals = B.aggregate(plan, results)
        report = B.write_outputs(plan, results, totals, where, time.time() - started)
        columns, rows = B.table(plan, results, totals)
        ui.grid(f"normalised return, IQM [95% CI] over {plan['seeds']} seeds (1 = expert, 0 = random; "
                f"† expert below its published return)", columns, rows)
        ui.print(f"benchmark.md, .csv, .json, .png in {where} ({report['wall_s']:.0f} s)")
        ui.emit_json(report)
