"""Learning curves from run directories: one line per run (or per sweep cell), the mean
over its seeds, with a 95% bootstrap confidence band. matplotlib, non-interactive. No JAX."""

from pathlib import Path

import numpy as np

from il_cli.errors import UserError, suggest
from il_cli.runs import Run
from il_cli.sweep import describe

X_AXES = {"step": "step", "wall_s": "elapsed_s", "expert_queries": "expert_queries"}


def mean_ci(values, num_resamples: int = 1000, seed: int = 0):
    """(mean, low, high) over seeds, axis 0 of [seeds, points]: the mean and a 95% percentile
    bootstrap interval of it (low = high = mean for a single seed)."""
    values = np.asarray(values, np.float64)
    mean = values.mean(axis=0)
    if len(values) < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (num_resamples, len(values)))].mean(axis=1)
    return mean, np.quantile(means, 0.025, axis=0), np.quantile(means, 0.975, axis=0)


def curves(run: Run, metric: str, x: str) -> list[dict]:
    """Per sweep cell of `run`: {"label", "x", "mean", "low", "high", "seeds"}, from metrics.jsonl."""
    rows = run.metrics()
    if not rows:
        raise UserError(f"{run.path} has no metrics yet")
    known = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
    for name, column in ((metric, metric), (x, X_AXES[x])):
        if column not in known:
            raise UserError(f"{run.path} has no '{name}' in its metrics{suggest(name, known)}; "
                            f"it logs {', '.join(known)}")
    members = run.members
    out = []
    for cell in sorted({m["cell"] for m in members}):
        ids = [m["member"] for m in members if m["cell"] == cell]
        per_member = [[r for r in rows if r.get("member", 0) == k] for k in ids]
        length = min(len(p) for p in per_member)
        ys = np.array([[r[metric] for r in p[:length]] for p in per_member], np.float64)
        xs = np.array([[r[X_AXES[x]] for r in p[:length]] for p in per_member], np.float64).mean(axis=0)
        mean, low, high = mean_ci(ys)
        hyper = next(m["hyper"] for m in members if m["cell"] == cell)
        label = " ".join((run.path.name, describe(hyper, " "))).strip()
        out.append({"label": label, "x": xs, "mean": mean, "low": low, "high": high, "seeds": len(ids)})
    return out


def step_unit(run: Run) -> str:
    """What a run's `step` counts: its command's unit (il_cli.registry), DPO's steps with --method dpo."""
    from il_cli.registry import COMMANDS

    meta = run.meta
    if meta["config"].get("method") == "dpo":
        return "DPO steps"
    return COMMANDS[meta["command"]].step_unit if meta["command"] in COMMANDS else "step"


def references(summary: dict | None) -> list[tuple[str, float]]:
    """The return levels a run's return curve is read against: the paired expert's, or RLHF's
    SFT policy's gold return (the mean over members), from its summary."""
    if not summary:
        return []
    blocks = summary.get("members") or [summary]
    out = []
    if all("return_mean" in b.get("expert", {}) for b in blocks):
        out.append(("expert", float(np.mean([b["expert"]["return_mean"] for b in blocks]))))
    if all("sft" in b for b in blocks):
        sft = [b["sft"]["eval"]["return_mean"] if "eval" in b["sft"] else b["sft"]["gold"] for b in blocks]
        out.append(("SFT", float(np.mean(sft))))
    return out


def readable_limits(ax, values):
    """y limits that do not blow noise up: a span of at least a tenth of the values' magnitude."""
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if not len(values):
        return
    lo, hi = values.min(), values.max()
    span = max(hi - lo, 0.1 * np.abs(values).max(), 1e-6)
    mid = (lo + hi) / 2
    ax.set_ylim(mid - 0.55 * span, mid + 0.55 * span)


def plot(runs: list[Run], metric: str = "return", x: str = "step", out=None, summaries=None) -> Path:
    """Draw `metric` against `x` for every run (one line per sweep cell) and save a PNG, titled
    with what was run, the x-axis named by what a step counts, and (for returns) a dashed line
    at each reference level of the runs' summaries (`summaries`, default their summary.json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = [run.summary for run in runs] if summaries is None else summaries
    lines = [c for run in runs for c in curves(run, metric, x)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    shown = []
    for line in lines:
        seeds = f" ({line['seeds']} seeds)" if line["seeds"] > 1 else ""
        ax.plot(line["x"], line["mean"], label=line["label"] + seeds)
        shown += list(line["mean"])
        if line["seeds"] > 1:
            ax.fill_between(line["x"], line["low"], line["high"], alpha=0.25)
            shown += list(line["low"]) + list(line["high"])
    if metric in ("return", "gold_return"):
        drawn = {}
        for run, summary in zip(runs, summaries):
            for name, value in references(summary):
                label = f"{name} {value:.4g}" + (f" ({run.path.name})" if len(runs) > 1 else "")
                if drawn.setdefault(round(value, 6), label) == label:
                    ax.axhline(value, color="grey", ls="--", lw=1)
                    ax.annotate(label, (1.0, value), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                                fontsize=7, color="dimgrey")
                    shown.append(value)
    readable_limits(ax, shown)
    units = sorted({step_unit(run) for run in runs})
    ax.set_xlabel({"step": " / ".join(units), "wall_s": "wall time (s)", "expert_queries": "expert queries"}[x])
    ax.set_ylabel(metric + (" (mean, 95% CI over seeds)" if any(c["seeds"] > 1 for c in lines) else ""))
    meta = runs[0].meta
    ax.set_title(f"il {meta['command']} · {meta['env']} · {runs[0].path.name}" if len(runs) == 1
                 else f"{metric} of {len(runs)} runs", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out) if out else Path(f"{metric}-by-{x}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_curves(run: Run, summary: dict) -> Path:
    """The run's own curves.png: evaluation return by step, with the summary's references
    (drawn by the run's writer)."""
    path = run.path / "curves.png"
    return plot([run], "return", "step", path, [summary]) if run.writer else path


def plot_discriminator(run: Run) -> Path:
    """discriminator.png of a GAIL or AIRL run: the discriminator's accuracy on the expert's and
    on the policy's transitions, and its mean logits, after each chunk (the mean over members,
    with a 95% bootstrap band), the panels a user of these methods debugs with."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = run.path / "discriminator.png"
    if not run.writer:
        return path
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    for ax, (title, metrics) in zip(axes, (
            ("accuracy", (("disc_expert_accuracy", "on expert"), ("disc_learner_accuracy", "on policy"))),
            ("mean logit log D − log(1 − D)", (("disc_expert_logit", "expert"), ("disc_learner_logit", "policy"))))):
        for metric, label in metrics:
            for line in curves(run, metric, "step"):
                ax.plot(line["x"], line["mean"], label=f"{label} {line['label']}".strip())
                if line["seeds"] > 1:
                    ax.fill_between(line["x"], line["low"], line["high"], alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(step_unit(run))
        ax.legend(fontsize=7)
    axes[0].axhline(0.5, color="grey", ls="--", lw=1)
    fig.suptitle(f"il {run.meta['command']} · {run.meta['env']} · {run.path.name}: the discriminator", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def gao_fit(d, gain):
    """(α, β) of Gao et al.'s (2022) RL form gain(d) = d(α − β log d), d = √KL(π ‖ π_init),
    by least squares over the points with d > 0 (None with fewer than two)."""
    d, gain = np.asarray(d, np.float64), np.asarray(gain, np.float64)
    keep = d > 1e-6
    if keep.sum() < 2:
        return None
    features = np.stack([d[keep], -d[keep] * np.log(d[keep])], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(features, gain[keep], rcond=None)
    return float(alpha), float(beta)


MIN_FIT_POINTS = 4  # points with d > 0 below which no over-optimisation curve is fitted


def over_optimisation_fit(d, gain) -> tuple[tuple[float, float] | None, str]:
    """(α, β) of `gao_fit`, or None, and why: the form describes over-optimisation (the gold gain
    rises with d, then falls) only with α > 0 and β > 0, and needs enough points to say so."""
    d = np.asarray(d, np.float64)
    if (d > 1e-6).sum() < MIN_FIT_POINTS:
        return None, f"no fit: fewer than {MIN_FIT_POINTS} points with KL > 0"
    fit = gao_fit(d, gain)
    if fit is None or fit[0] <= 0 or fit[1] <= 0:
        return None, (f"no fit: d(α − β log d) with α={fit[0]:.3g}, β={fit[1]:.3g} does not rise and fall"
                      if fit else "no fit")
    return fit, f"fit d(α − β log d): α={fit[0]:.3g}, β={fit[1]:.3g}"


def plot_rlhf(run: Run, sft_gold: list[float]) -> Path:
    """rlhf.png: the gold return gained over SFT and the proxy reward (DPO: the held-out accuracy
    of its implicit reward on the pairs the gold score orders) against √KL(π_RL ‖ π_SFT), one
    colour per sweep cell, every logged checkpoint a point; Gao et al.'s fit d(α − β log d)
    drawn over the gold points where it describes over-optimisation (by the run's writer)."""
    path = run.path / "rlhf.png"
    if not run.writer:
        return path
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    members = run.members
    fig, (ax_gold, ax_proxy) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    all_d, all_gain = [], []
    proxy_key = "proxy_reward" if "proxy_reward" in run.metrics(member=0)[0] else "gold_pair_accuracy"
    for cell in sorted({m["cell"] for m in members}):
        ids = [m["member"] for m in members if m["cell"] == cell]
        hyper = next(m["hyper"] for m in members if m["cell"] == cell)
        runs = f"{len(ids)} runs" if len(ids) > 1 else "one run"
        label = f"{describe(hyper) or 'checkpoints'} ({runs})"
        d, gain, proxy_d, proxy = [], [], [], []
        for k in ids:  # π_SFT itself is the point (0, 0)
            rows = run.metrics(member=k)
            d += [0.0] + [r["sqrt_kl"] for r in rows]
            gain += [0.0] + [r["gold_return"] - sft_gold[k] for r in rows]
            proxy_d += [r["sqrt_kl"] for r in rows if r.get(proxy_key) is not None]
            proxy += [r[proxy_key] for r in rows if r.get(proxy_key) is not None]
        color = ax_gold.scatter(d, gain, s=12, label=label).get_facecolor()[0]
        ax_proxy.scatter(proxy_d, proxy, s=12, color=color, label=label)
        all_d += d
        all_gain += gain
    fit, why = over_optimisation_fit(all_d, all_gain)
    trajectory = len(members) == 1
    if fit is not None:
        xs = np.linspace(1e-3, max(all_d) * 1.05, 200)
        ax_gold.plot(xs, xs * (fit[0] - fit[1] * np.log(xs)), "k--",
                     label=why + (" (one run's trajectory)" if trajectory else ""))
    else:
        ax_gold.plot([], [], " ", label=why)
    ax_gold.axhline(0, color="grey", lw=0.8)
    ax_gold.set_xlabel("d = √KL(π_RL ‖ π_SFT) at each logged checkpoint")
    text = run.meta["config"].get("task") == "text"  # a score per answer, r_θ per answer
    ax_gold.set_ylabel("gold score − SFT's (held-out prompts)" if text else "gold return − SFT's")
    ax_proxy.set_xlabel("d = √KL(π_RL ‖ π_SFT) at each logged checkpoint")
    ax_proxy.set_ylabel(f"proxy reward r_θ {'per answer' if text else 'per step'} (normalised)" if proxy_key == "proxy_reward"
                        else "accuracy of β log(π/π_SFT) on the gold-ordered pairs")
    meta = run.meta
    fig.suptitle(f"il rlhf{' --task text' if text else ''} · {meta['config'].get('method', 'ppo')} · "
                 f"{meta['env']} · {run.path.name}", fontsize=9)
    for ax in (ax_gold, ax_proxy):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_compounding(path: Path, env_id: str, table: list[dict], slopes: list[dict]) -> Path:
    """compounding.png: the return gap against H on log-log axes, BC and DAgger, with each one's
    H²ε (dashed) and Hε (dotted) from its measured ε, and the fitted slopes; a panel per
    number of demonstrations (and sweep cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["cell"], r["demos"]) for r in table})
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), dpi=120, squeeze=False)
    for ax, (cell, demos) in zip(axes[0], panels):
        for algo, color in (("bc", "tab:red"), ("dagger", "tab:blue")):
            rows = [r for r in table if r["algo"] == algo and r["cell"] == cell and r["demos"] == demos]
            h = np.array([r["horizon"] for r in rows], float)
            gap, se = np.array([r["gap"] for r in rows]), np.array([r["gap_se"] for r in rows])
            eps = np.array([r["eps_expert_states"] for r in rows])
            fit = next(s for s in slopes if s["algo"] == algo and s["cell"] == cell and s["demos"] == demos)
            label = f"{'BC' if algo == 'bc' else 'DAgger'} gap"
            if fit["slope"] is not None:
                ci = f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]" if fit.get("ci95") else ""
                label += f", ≈ c·H^p with p = {fit['slope']:.2f}{ci}"
            keep = gap > 0  # a log axis shows positive gaps only
            if not keep.all():
                label += f" ({int((~keep).sum())} gaps ≤ 0 not drawn)"
            ax.errorbar(h[keep], gap[keep], yerr=se[keep], fmt="o-", color=color, capsize=3, label=label)
            if fit["slope"] is not None and fit.get("scale", 0) > 0:
                ax.plot(h, fit["scale"] * (h / h.max()) ** fit["slope"], "-", color=color, alpha=0.3, lw=3)
            ax.plot(h, h**2 * eps, "--", color=color, alpha=0.6, label=f"H²ε ({algo})")
            ax.plot(h, h * eps, ":", color=color, alpha=0.6, label=f"Hε ({algo})")
        hyper = next(r["hyper"] for r in table if r["cell"] == cell)
        extra = "".join(f", {k}={v:g}" for k, v in hyper.items())
        ax.set_title(f"il compounding · {env_id}: {demos} demonstrations{extra}", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(h, [f"{x:g}" for x in h], minor=False)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("horizon H")
        ax.set_ylabel("return gap J(π*) − J(π̂)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_vary(path: Path, env_id: str, summary: dict) -> Path:
    """vary.png: for one varied parameter, the return against its value, one line per run with
    its 95% CI band and the training value marked; for two, a heat map of the mean per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, results, defaults = list(summary["vary"]), summary["results"], summary["defaults"]
    label = lambda r: f"{r['command']} {Path(r['run']).name}"
    if len(names) == 1:
        name = names[0]
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        for r in results:
            x = [p["point"][name] for p in r["grid"]]
            mean = [p["mean"] for p in r["grid"]]
            line, = ax.plot(x, mean, "o-", label=label(r))
            ax.fill_between(x, [p["ci95"][0] for p in r["grid"]], [p["ci95"][1] for p in r["grid"]],
                            color=line.get_color(), alpha=0.2)
        ax.axvline(defaults[name], color="grey", ls="--", lw=1, label=f"training value {defaults[name]:g}")
        ax.set_xlabel(name)
        ax.set_ylabel("return (mean, 95% CI)")
        ax.set_title(f"il eval --vary · {env_id}: return under a shifted {name}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    else:
        first, second = names[0], names[1]
        xs, ys = summary["vary"][second], summary["vary"][first]
        fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.0), dpi=120, squeeze=False)
        for ax, r in zip(axes[0], results):
            means = np.array([p["mean"] for p in r["grid"]]).reshape(len(ys), len(xs), -1).mean(axis=-1)
            image = ax.imshow(means, origin="lower", aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
            ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
            ax.set_xlabel(second)
            ax.set_ylabel(first)
            ax.set_title(label(r), fontsize=8)
            fig.colorbar(image, ax=ax, label="mean return")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
