"""`il benchmark`: algorithms × environments, each cell one `--seeds N` run of an existing
command, scored as a paper reports it (Agarwal et al. 2021, rliable): per member the normalised
return (J − J_random) / (J_expert − J_random), with the expert and a uniform random policy on the
member's evaluation keys (il_cli.evaluation.normalize); per cell the interquartile mean over
seeds with a 95% stratified-bootstrap CI; per algorithm the IQM over every run of every
environment and the probability of improvement over BC. No JAX here (the cells import it).
"""

import csv
import json
import time
from pathlib import Path

import numpy as np
import tomllib

from il_cli import recipe as recipe_lib
from il_cli.envs import resolve_env_id
from il_cli.errors import UserError, suggest
from il_cli.options import settable
from il_cli.registry import COMMANDS

SUITE_DIR = recipe_lib.RECIPE_DIR / "suites"
PLAN = "plan.json"
REPS = 2000  # bootstrap resamples (rliable's default is 50 000; the CIs' third digit moves at 2 000)
BASELINE = "bc"
ALGOS = tuple(name for name, c in COMMANDS.items() if c.benchmarked)  # bc, dagger, prefs (il_cli.registry)


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.toml"))


def load_suite(name: str) -> dict:
    """A suite file (a shipped name or a path): algos, envs, seeds and per-algorithm settings,
    `[bc]`, with per-environment overrides, `[bc.Pendulum]`."""
    path = Path(name) if Path(name).is_file() else SUITE_DIR / f"{name.removesuffix('.toml')}.toml"
    if not path.is_file():
        raise UserError(f"no suite '{name}'{suggest(name, suite_names())}; shipped suites: {', '.join(suite_names())}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"suite {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"algos", "envs", "seeds", *ALGOS})
    if unknown:
        raise UserError(f"suite {path}: unknown key '{unknown[0]}'{suggest(unknown[0], ['algos', 'envs', 'seeds', *ALGOS])}")
    return {"suite": path.stem, "algos": list(data.get("algos", ALGOS)), "envs": list(data.get("envs", ())),
            "seeds": data.get("seeds", 5), "settings": {a: data[a] for a in ALGOS if a in data}}


def make_plan(suite: str | None, algos: list | None, envs: list | None, seeds: int | None) -> dict:
    """The cells to run, every name and setting checked (a config built per cell) before anything runs."""
    plan = load_suite(suite) if suite else {"suite": "custom", "algos": list(ALGOS), "envs": [], "seeds": 5,
                                             "settings": {}}
    plan["algos"] = list(algos or plan["algos"])
    plan["envs"] = [resolve_env_id(e) for e in (envs or plan["envs"])]
    plan["seeds"] = int(plan["seeds"] if seeds is None else seeds)
    if not plan["envs"]:
        raise UserError("no environments: give --envs (e.g. CartPole,Acrobot) or a --suite")
    if plan["seeds"] < 1:
        raise UserError(f"--seeds must be at least 1, got {plan['seeds']}")
    for algo in plan["algos"]:
        if algo not in ALGOS:
            raise UserError(f"--algos: no benchmarked algorithm '{algo}'{suggest(algo, ALGOS)}; these are: "
                            f"{', '.join(ALGOS)}")
    if len(set(plan["algos"])) < len(plan["algos"]) or len(set(plan["envs"])) < len(plan["envs"]):
        raise UserError("--algos and --envs name each algorithm and environment once")
    plan["cells"] = [{"algo": a, "env": e, "options": cell_options(plan, a, e)} for a in plan["algos"]
                     for e in plan["envs"]]
    for cell in plan["cells"]:
        cls = COMMANDS[cell["algo"]].config()
        known = settable(cls)
        for key in cell["options"]:
            if key not in known:
                raise UserError(f"suite {plan['suite']}: il {cell['algo']} has no setting '{key}'{suggest(key, known)}")
        recipe_lib.build_config(cls, cell["algo"], None, **cell["options"])
    return plan


def cell_options(plan: dict, algo: str, env_id: str) -> dict:
    """The config fields of one cell: the suite's settings for `algo`, then its overrides for
    the environment (by id or short name)."""
    settings = dict(plan["settings"].get(algo, {}))
    overrides = {k: settings.pop(k) for k in list(settings) if isinstance(settings[k], dict)}
    for key, values in overrides.items():
        if resolve_env_id(key) == env_id:
            settings.update(values)
    options = {k.replace("-", "_"): tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return {**options, "env": env_id, "seeds": plan["seeds"]}


def member_scores(summary: dict) -> list[dict]:
    """Per member: the normalised return and the returns it is made of."""
    blocks = summary.get("members") or [summary]
    return [{"normalized": b["normalized_return"], "return": b["eval"]["return_mean"],
             "expert": b["expert"]["return_mean"], "random": b["random"]["return_mean"],
             "expert_below_reference": bool(b["expert"].get("below_reference"))} for b in blocks]


def _estimate(scores, func, seed: int):
    """rliable's point estimate and 95% stratified-bootstrap CI of `func` on `scores`, the same
    on every call: its stratified bootstrap draws from NumPy's global generator (seeded here,
    then restored) and its independent one from the RandomState passed in."""
    import warnings

    from rliable import library as rly

    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch's notice that random_state will be renamed
            warnings.simplefilter("ignore", FutureWarning)
            point, ci = rly.get_interval_estimates({"x": scores}, func, reps=REPS,
                                                   random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)
    return point["x"], ci["x"]


def iqm_interval(scores: np.ndarray, seed: int = 0) -> dict:
    """IQM of a (runs × tasks) score matrix with its 95% stratified-bootstrap CI (rliable)."""
    from rliable import metrics

    point, ci = _estimate(np.asarray(scores, np.float64), lambda x: np.array([metrics.aggregate_iqm(x)]), seed)
    return {"iqm": float(point[0]), "ci95": [float(ci[0, 0]), float(ci[1, 0])]}


def improvement(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """P(X > Y): the probability that a run of X on a task beats a run of Y on it (Mann-Whitney U),
    averaged over tasks, with its 95% stratified-bootstrap CI (rliable)."""
    from rliable import metrics

    point, ci = _estimate([np.asarray(x, np.float64), np.asarray(y, np.float64)],
                          metrics.probability_of_improvement, seed)
    ci = np.ravel(ci)
    return {"p": float(point), "ci95": [float(ci[0]), float(ci[1])]}


def aggregate(plan: dict, results: dict) -> dict:
    """Per algorithm, over the environments whose cells all finished: the IQM of every run's
    normalised return with its CI, and the probability of improvement over BC."""
    done = [e for e in plan["envs"] if all("members" in results.get(f"{a}/{e}", {}) for a in plan["algos"])]
    matrix = {a: np.array([[m["normalized"] for m in results[f"{a}/{e}"]["members"]] for e in done]).T
              for a in plan["algos"]} if done else {}
    out = {"envs": done}
    for algo in plan["algos"]:
        entry = iqm_interval(matrix[algo]) if done else {}
        if done and algo != BASELINE and BASELINE in matrix:
            entry["improvement_over_bc"] = improvement(matrix[algo], matrix[BASELINE])
        out[algo] = entry
    return out


def score_cell(summary: dict) -> dict:
    members = member_scores(summary)
    if any(m["normalized"] is None for m in members):  # J_expert = J_random on a member's keys
        raise UserError(f"{summary['run_dir']}: no normalised return (the expert's return equals a uniform random "
                        f"policy's on the same keys: the expert does not solve the task)")
    scores = np.array([[m["normalized"]] for m in members])
    return {"run_dir": summary["run_dir"], "members": members, **iqm_interval(scores),
            "return_mean": float(np.mean([m["return"] for m in members])),
            "expert_return": float(np.mean([m["expert"] for m in members])),
            "random_return": float(np.mean([m["random"] for m in members])),
            "expert_below_reference": any(m["expert_below_reference"] for m in members),
            "wall_s": summary["wall_s"]}


def run_cells(plan: dict, out: Path, ui) -> dict:
    """Every cell, in order: a finished one read back, an interrupted one resumed, a failed one
    reported and skipped; a line per cell with the time left. Returns the results by cell."""
    from il_cli.launch import run
    from il_cli.paths import runs_root
    from il_cli.runs import CONFIG, SUMMARY

    results, took = {}, []
    for i, cell in enumerate(plan["cells"]):
        key = f"{cell['algo']}/{cell['env']}"
        link = out / "cells" / f"{cell['algo']}-{cell['env']}"
        run_dir = runs_root() / f"{out.name}-{cell['algo']}-{cell['env']}"
        started = time.time()
        try:
            if (run_dir / SUMMARY).is_file():
                summary = json.loads((run_dir / SUMMARY).read_text())
                how = "finished before"
            elif (run_dir / CONFIG).is_file():
                summary, how = run(cell["algo"], resume=str(run_dir), quiet=True), "resumed"
            else:
                summary, how = run(cell["algo"], run_dir=str(run_dir), quiet=True, **cell["options"]), "ran"
                took.append(time.time() - started)
            results[key] = score_cell(summary)
        except Exception as exc:  # noqa: BLE001 (a cell that fails is reported; the others go on)
            message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            results[key] = {"error": " ".join(message.splitlines()), "run_dir": str(run_dir)}
            how = "failed"
        if run_dir.is_dir() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(run_dir.resolve(), target_is_directory=True)
        left = len(plan["cells"]) - i - 1
        eta = f"; about {_duration(np.mean(took) * left)} left" if took and left else ""
        r = results[key]
        figure = (f"normalised IQM {r['iqm']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if "iqm" in r
                  else f"error: {r['error']}")
        ui.print(f"[{i + 1}/{len(plan['cells'])}] {cell['algo']} · {cell['env']}: {figure} ({how}, "
                 f"{time.time() - started:.0f} s{eta})")
    return results


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def start(out: Path | None, plan: dict) -> Path:
    """A new benchmark directory holding its plan."""
    from il_cli.paths import runs_root

    out = Path(out) if out else runs_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-benchmark-{plan['suite']}"
    if (out / PLAN).exists():
        raise UserError(f"{out} holds a benchmark already: continue it with `il benchmark --resume {out}`")
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN).write_text(json.dumps(plan, indent=1))
    return out


def reopen(out: Path) -> dict:
    if not (Path(out) / PLAN).is_file():
        raise UserError(f"{out} is not a benchmark directory (no {PLAN}); start one with `il benchmark --suite ...`")
    return json.loads((Path(out) / PLAN).read_text())


def write_outputs(plan: dict, results: dict, totals: dict, out: Path, wall_s: float) -> dict:
    """benchmark.json, .csv, .md and .png; returns the JSON's content."""
    report = {"suite": plan["suite"], "algos": plan["algos"], "envs": plan["envs"], "seeds": plan["seeds"],
              "normalization": "(J - J_random) / (J_expert - J_random), expert and uniform random policy on each "
                               "member's evaluation keys",
              "statistics": f"IQM with 95% stratified bootstrap CIs ({REPS} resamples, rliable)",
              "cells": results, "aggregate": totals, "wall_s": round(wall_s, 1), "dir": str(out)}
    (out / "benchmark.json").write_text(json.dumps(report, indent=1))
    with open(out / "benchmark.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["algo", "env", "seeds", "iqm", "ci_low", "ci_high", "return_mean", "expert_return",
                         "random_return", "expert_below_reference", "wall_s", "run_dir", "error"])
        for cell in plan["cells"]:
            r = results.get(f"{cell['algo']}/{cell['env']}", {})
            writer.writerow([cell["algo"], cell["env"], plan["seeds"], r.get("iqm"), *(r.get("ci95") or [None, None]),
                             r.get("return_mean"), r.get("expert_return"), r.get("random_return"),
                             r.get("expert_below_reference"), r.get("wall_s"), r.get("run_dir"), r.get("error")])
    columns, rows = table(plan, results, totals)
    lines = [f"Normalised return, IQM [95% CI] over {plan['seeds']} seeds ({plan['suite']} suite; "
             f"1 = the expert, 0 = uniform random)", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    if any(r.get("expert_below_reference") for r in results.values()):
        lines += ["", "† the expert is more than 20% under its environment's published PPO return: the scores are "
                      "relative to a weaker expert"]
    (out / "benchmark.md").write_text("\n".join(lines) + "\n")
    draw(plan, results, totals, out / "benchmark.png")
    return report


def table(plan: dict, results: dict, totals: dict) -> tuple[list, list]:
    """The paper's table: an environment per row (expert and random returns beside it), an
    algorithm per column; then the aggregate IQM and the probability of improvement over BC."""
    def cell_text(r):
        if "error" in r:
            return "failed"
        mark = " †" if r.get("expert_below_reference") else ""
        return f"{r['iqm']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]{mark}" if r else "—"

    columns = ["environment", "expert", "random", *plan["algos"]]
    rows = []
    for env in plan["envs"]:
        first = next((results[f"{a}/{env}"] for a in plan["algos"] if "iqm" in results.get(f"{a}/{env}", {})), {})
        rows.append([env, f"{first['expert_return']:.1f}" if first else "—",
                     f"{first['random_return']:.1f}" if first else "—",
                     *(cell_text(results.get(f"{a}/{env}", {})) for a in plan["algos"])])
    shared = f"IQM, {len(totals['envs'])} envs" if totals["envs"] else "IQM (no env finished)"
    rows.append([shared, "", "", *(f"{totals[a]['iqm']:.2f} [{totals[a]['ci95'][0]:.2f}, {totals[a]['ci95'][1]:.2f}]"
                                   if totals[a] else "—" for a in plan["algos"])])
    if BASELINE in plan["algos"] and len(plan["algos"]) > 1:
        rows.append(["P(improvement over bc)", "", "", *(
            f"{totals[a]['improvement_over_bc']['p']:.2f} [{totals[a]['improvement_over_bc']['ci95'][0]:.2f}, "
            f"{totals[a]['improvement_over_bc']['ci95'][1]:.2f}]" if "improvement_over_bc" in totals[a] else "—"
            for a in plan["algos"])])
    return columns, rows


def draw(plan: dict, results: dict, totals: dict, path: Path):
    """Per environment, a bar per algorithm (IQM, 95% CI whiskers); a last panel the aggregate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(env, [results.get(f"{a}/{env}", {}) for a in plan["algos"]]) for env in plan["envs"]]
    panels.append((f"aggregate ({len(totals['envs'])} envs)", [totals[a] for a in plan["algos"]]))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3), sharey=True, squeeze=False)
    for ax, (title, entries) in zip(axes[0], panels):
        for i, r in enumerate(entries):
            if "iqm" in r:
                ax.bar(i, r["iqm"], color=f"C{i}")
                ax.errorbar(i, r["iqm"], yerr=[[r["iqm"] - r["ci95"][0]], [r["ci95"][1] - r["iqm"]]], color="k",
                            capsize=3)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(plan["algos"])), plan["algos"])
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("normalised return (IQM, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
