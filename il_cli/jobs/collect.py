"""`il collect`: expert demonstrations on vectorized environments, saved as a dataset."""

import time

import jax
import numpy as np

from il_cli.data import save_dataset
from il_cli.demos import collect_demos
from il_cli.evaluation import root_key
from il_cli.runs import Run
from il_cli.summaries import base_summary


def run_collect_prefs(cfg, run: Run, expert: Run, started) -> dict:
    """`il collect --prefs N`: the preference dataset `il prefs --seed s` would generate."""
    from il_cli.data import save_preferences
    from il_cli.demos import generate_preferences

    t0 = time.perf_counter()
    key = jax.random.split(root_key(cfg.seed), 3)[0][None]
    [prefs] = generate_preferences([cfg], expert, cfg.prefs, key)
    generate_s = time.perf_counter() - t0
    path = run.data_dir / "prefs.npz"
    header = save_preferences(path, prefs)
    summary = base_summary("collect", cfg.env, run, cfg.seed, started)
    label = prefs.label[prefs.asked]
    summary["dataset"] = {"path": str(path), "kind": "preferences", "pairs": header["pairs"],
                          "count": header["count"], "teacher": header["teacher"],
                          "state_source": header["state_source"],
                          "ties": int(np.sum(label == 0.5)), "streams": int(len(prefs.episode_lengths))}
    summary["collect"] = {"generate_s": generate_s}
    summary["expert"] = {"run": str(expert.path), **expert.member_summary()["eval"]}
    run.write_summary(summary)
    return summary


def run_collect(cfg, run: Run, ui) -> dict:
    """`il collect`: demonstrations of the expert (the cached one unless --expert), or with
    --prefs a preference dataset."""
    from il_cli.experts import get_expert

    started = time.time()
    expert = get_expert(cfg.env, cfg.expert, ui)
    if cfg.prefs:
        return run_collect_prefs(cfg, run, expert, started)
    data, stats = collect_demos(expert, cfg.episodes, cfg.num_envs, root_key(cfg.seed))
    path = run.data_dir / "demos.npz"
    header = save_dataset(path, data)
    summary = base_summary("collect", cfg.env, run, cfg.seed, started)
    summary["dataset"] = {"path": str(path), **{k: header[k] for k in ("count", "episodes", "return_mean")},
                          "terminated": int(data.terminated.sum())}
    if cfg.minari:
        from il_cli.interop import export_minari

        summary["dataset"]["minari"] = export_minari(str(path), cfg.minari, None, None)
    summary["collect"] = stats
    summary["expert"] = {"run": str(expert.path), **expert.member_summary()["eval"]}
    run.write_summary(summary)
    return summary
