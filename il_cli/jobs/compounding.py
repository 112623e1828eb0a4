"""`il compounding`: Theorem 24.1 measured, BC's return gap against DAgger's as H grows.

Theorem 24.1: with per-step rewards in [0, 1], if ε = E_{s∼d_π*} TV(π̂(·|s), π*(·|s)) then
J(π*) − J(π̂) ≤ H²ε. BC's gap can grow like H²ε (a mistake leads to states it never saw);
DAgger, trained on its own states, is bounded by about Hε where mistakes are recoverable.
"""

import csv
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import files, networks, rollout
from il_cli.algos.bc import make_bc
from il_cli.algos.dagger import hyper_of, make_dagger
from il_cli.config import CompoundingConfig, DAggerConfig, member_configs
from il_cli.envs import make_env
from il_cli.evaluation import load_expert, root_key, stack
from il_cli.experts import get_expert
from il_cli.loop import host, jit_members, replicate, shard_members
from il_cli.runs import Run
from il_cli.summaries import base_summary

ALGOS = ("bc", "dagger")


def make_cell(cfg: CompoundingConfig, env, env_params, spec, learner, expert, horizon: int, demos: int):
    """cell(key, expert_params, lr) -> {algo: figures} of one seed at horizon H = `horizon`.

    BC trains on `demos` expert episodes (demos·H labels); DAgger (β = 1, then 0) starts from
    nothing, rolls out ⌈demos/rounds⌉ episodes of H steps per round and asks the expert about
    at most as many states (once the budget is spent, nothing more is labelled). Each is then rolled out against
    the expert on the same keys (a paired gap) with ε measured on both one's states."""
    env_params = env_params.replace(max_steps_in_episode=horizon)
    spec = dataclasses.replace(spec, max_steps=horizon)  # episodes end at H
    expert_act = lambda p, obs, key: rollout.expert_action(spec, expert, p, obs)[0]
    episodes = rollout.make_episodes(env, env_params, spec, demos, expert_act, record=True)
    bc_init, _, bc_chunk = make_bc(learner, spec.discrete, cfg.batch_size)
    num_envs = -(-demos // cfg.rounds)  # each round: one episode of H steps in each of these
    dagger_cfg = DAggerConfig(env=cfg.env, num_rounds=cfg.rounds, beta_schedule="step", num_envs=num_envs,
                              steps_per_round=num_envs * horizon, expert_budget=demos * horizon,
                              train_steps=cfg.train_steps, batch_size=cfg.batch_size, hidden=cfg.hidden,
                              activation=cfg.activation, eval_episodes=1, eval_policy=cfg.eval_policy)
    dagger_init, dagger_rounds = make_dagger(dagger_cfg, env, env_params, spec, learner, expert, 0)
    paired = rollout.make_paired_episodes(env, env_params, spec, learner, expert, cfg.eval_episodes,
                                          cfg.eval_policy)

    def cell(key, expert_params, lr):
        demo_key, bc_key, dagger_key, eval_key = jax.random.split(key, 4)
        obs, actions, size = rollout.recorded_rows(episodes(expert_params, demo_key))
        bc, _ = bc_chunk(bc_init(bc_key, networks.dummy_obs(spec), lr), (obs, actions, size), cfg.train_steps)
        empty_obs, empty_actions = obs[:0], actions[:0]
        dagger = dagger_init(dagger_key, empty_obs, empty_actions, 0, lr)
        dagger, _ = dagger_rounds(dagger, hyper_of(dagger_cfg), expert_params, eval_key, cfg.rounds)
        out = {}
        for algo, params, labels in (("bc", bc.params, size),
                                     ("dagger", dagger.learner.params, dagger.queries)):
            on_learner, on_expert = paired((params, expert_params), eval_key)
            out[algo] = {"gap": jnp.mean(on_expert.returns - on_learner.returns),
                         "return": jnp.mean(on_learner.returns), "expert_return": jnp.mean(on_expert.returns),
                         "labels": labels, **rollout.tv_figures(on_learner, on_expert)}
        return out

    return cell


SLOPE_GRID = np.linspace(-2.0, 8.0, 10001)  # exponents p tried by `power_fit`, 0.001 apart
SLOPE_FIT = ("c·H^p by least squares on the mean gaps, on their own scale: every point counts, gaps ≤ 0 "
             "as they are (a log-log fit would have to drop them), the longest horizons weigh most; none "
             "with fewer than two positive gaps")


def power_fit(horizons, gaps):
    """(p, c) of gap ≈ c·H^p fitted by least squares to `gaps` [..., len(horizons)] as they are
    (zero and negative gaps included), p on SLOPE_GRID: for each p the best c is
    Σ g H^p / Σ H^2p, leaving Σ g² − (Σ g H^p)² / Σ H^2p. p is 2 for a gap growing like H², 1
    for one like H; (None, None) where fewer than two gaps are positive (no growth to fit)."""
    g = np.asarray(gaps, np.float64)
    x = np.asarray(horizons, np.float64) / np.max(horizons)  # c is then the gap at the longest H
    powers = x[None, :] ** SLOPE_GRID[:, None]  # [P, H]
    gh, hh = g @ powers.T, (powers**2).sum(axis=1)  # [..., P], [P]
    best = np.argmax(gh**2 / hh, axis=-1)  # the least residual
    p, c = SLOPE_GRID[best], np.take_along_axis(gh, best[..., None], -1)[..., 0] / hh[best]
    grows = np.sum(g > 0, axis=-1) >= 2
    if g.ndim == 1:
        return (float(p), float(c)) if grows else (None, None)
    return np.where(grows, p, np.nan), c


def slope_with_ci(horizons, per_seed_gaps, num_resamples: int = 2000, seed: int = 0) -> dict:
    """The exponent p of `power_fit` to the mean gap over seeds, with a 95% percentile bootstrap
    CI: the seeds (rows of `per_seed_gaps` [seeds, H], one member's gaps at every H) resampled
    with replacement and p refitted to each resample's mean gaps."""
    g = np.asarray(per_seed_gaps, np.float64)
    p, c = power_fit(horizons, g.mean(axis=0))
    ci = None
    if p is not None and len(g) > 1:
        rng = np.random.default_rng(seed)
        means = g[rng.integers(0, len(g), (num_resamples, len(g)))].mean(axis=1)
        distinct, which = np.unique(means, axis=0, return_inverse=True)  # few seeds: few distinct resamples
        blocks = [power_fit(horizons, distinct[i:i + 256])[0] for i in range(0, len(distinct), 256)]  # (one
        # [resamples, SLOPE_GRID] array took seconds to allocate)
        resampled = np.concatenate(blocks)[which.reshape(-1)]
        resampled = resampled[np.isfinite(resampled)]
        ci = [float(np.quantile(resampled, 0.025)), float(np.quantile(resampled, 0.975))] if len(resampled) else None
    return {"slope": p, "ci95": ci, "scale": c, "fit": SLOPE_FIT}


def bound_rows(horizon: int, figures: list[dict]) -> dict:
    """One (H, algorithm) row over seeds: the gap and ε (mean and standard error), the bound
    H²ε, the ratios gap/(Hε) and gap/(H²ε), and the seeds whose gap exceeds their own H²ε."""
    def mean_se(name):
        x = np.array([f[name] for f in figures], float)
        return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0

    gap, gap_se = mean_se("gap")
    eps, eps_se = mean_se("tv_expert_states")
    own, own_se = mean_se("tv_learner_states")
    ratio = lambda denominator: gap / denominator if denominator > 0 else None
    return {"horizon": horizon, "gap": gap, "gap_se": gap_se, "eps_expert_states": eps, "eps_expert_states_se": eps_se,
            "eps_own_states": own, "eps_own_states_se": own_se, "bound": horizon**2 * eps,
            "gap_over_h_eps": ratio(horizon * eps), "gap_over_h2_eps": ratio(horizon**2 * eps),
            "gap_over_h_eps_own": ratio(horizon * own),  # Ross et al.'s DAgger bound is in ε on its own states
            "return": float(np.mean([f["return"] for f in figures])),
            "expert_return": float(np.mean([f["expert_return"] for f in figures])),
            "labels": float(np.mean([f["labels"] for f in figures])),
            "bound_violations": int(sum(f["gap"] > horizon**2 * f["tv_expert_states"] + 1e-6 for f in figures))}


def run_compounding(cfg: CompoundingConfig, run: Run, ui) -> dict:
    started = time.time()
    expert_run = get_expert(cfg.env, cfg.expert, ui)
    spec, expert, expert_params = load_expert(str(expert_run.path))
    env, env_params, _ = make_env(cfg.env)
    learner = networks.make_actor(spec, cfg.hidden, cfg.activation)
    member_cfgs = member_configs(cfg)
    keys = shard_members(stack([root_key(m.seed) for m in member_cfgs]))
    lrs = shard_members(jnp.array([m.lr for m in member_cfgs], jnp.float32))
    done = {(r["demos"], r["horizon"], r["member"]): r for r in run.metrics()}  # cells of an interrupted run
    cells = [(d, h) for d in cfg.demo_episodes for h in cfg.horizons]
    with ui.progress(len(cells), "cell") as progress:
        for i, (demos, horizon) in enumerate(cells):
            if all((demos, horizon, m["member"]) in done for m in run.members):
                continue
            t0 = time.perf_counter()
            cell = jit_members(jax.vmap(make_cell(cfg, env, env_params, spec, learner, expert, horizon, demos),
                                        in_axes=(0, None, 0)))
            figures = host(cell(jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, horizon * 1000 + demos),
                                          replicate(expert_params), lrs))
            for m in run.members:
                row = {"demos": demos, "horizon": horizon, "member": m["member"], "seed": m["seed"], **m["hyper"],
                       **{f"{algo}_{k}": float(v[m["member"]]) for algo in ALGOS for k, v in figures[algo].items()},
                       "wall_s": time.perf_counter() - t0}
                run.log(row)
                done[(demos, horizon, m["member"])] = row
            progress.update(i + 1, {"H": horizon, "demos": demos,
                                    **{f"{a}_gap": float(np.mean(figures[a]["gap"])) for a in ALGOS}})
    return summarize(cfg, run, done, started)


def summarize(cfg: CompoundingConfig, run: Run, done: dict, started: float) -> dict:
    """The table (one row per sweep cell, demos, H and algorithm), the fitted slopes, the
    bound check, compounding.csv/json and compounding.png."""
    from il_cli.plots import plot_compounding

    table, slopes = [], []
    for cell in sorted({m["cell"] for m in run.members}):
        members = [m for m in run.members if m["cell"] == cell]
        for demos in cfg.demo_episodes:
            for algo in ALGOS:
                rows, per_seed = [], []
                for horizon in cfg.horizons:
                    figures = [{k[len(algo) + 1:]: v for k, v in done[(demos, horizon, m["member"])].items()
                                if k.startswith(algo + "_")} for m in members]
                    rows.append({"algo": algo, "demos": demos, "cell": cell, "hyper": members[0]["hyper"],
                                 **bound_rows(horizon, figures)})
                    per_seed.append([f["gap"] for f in figures])
                table += rows
                slopes.append({"algo": algo, "demos": demos, "cell": cell, "hyper": members[0]["hyper"],
                               **slope_with_ci(cfg.horizons, np.array(per_seed).T)})
    summary = base_summary("compounding", cfg.env, run, cfg.seed, started)
    summary.update(seeds=cfg.seeds, horizons=list(cfg.horizons), demos=list(cfg.demo_episodes), table=table, slopes=slopes,
                   bound_holds=all(r["bound_violations"] == 0 for r in table))
    summary["csv"], summary["plot"] = str(run.path / "compounding.csv"), str(run.path / "compounding.png")
    if run.writer:  # process 0 of a --distributed run
        with files.atomic(run.path / "compounding.csv") as f:
            writer = csv.DictWriter(f, fieldnames=[k for k in table[0] if k != "hyper"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table)
        files.write_text(run.path / "compounding.json", json.dumps({"table": table, "slopes": slopes}, indent=1))
        plot_compounding(run.path / "compounding.png", cfg.env, table, slopes)
    run.write_summary(summary)
    return summary
