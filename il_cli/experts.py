"""`il expert`: train a PPO expert; and the cache of experts that other commands draw on."""

import contextlib
import os
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import PROCESS_START
from il_cli import recipe as recipe_lib
from il_cli.algos.ppo import hyper_of, make_ppo
from il_cli.config import PPOConfig, member_configs
from il_cli.envs import env_param_values, make_env, with_params
from il_cli.errors import UserError
from il_cli.evaluation import eval_key, evaluate, read_checkpoint, root_key, stack
from il_cli.exact import EXACT_EXPERTS
from il_cli.loop import chunk_length, device_description, host, jit_members, run_chunks, shard_members
from il_cli.paths import cache_dir
from il_cli.plots import write_curves
from il_cli.registry import COMMANDS
from il_cli.runs import LOCK, Run, open_policy_run
from il_cli.summaries import run_summary
from il_cli.sweep import members
from il_cli.ui import UI

RAIL = "Rail-v0"  # its expert is always exact (il_cli.exact), not trained


def ppo_members(cfg: PPOConfig):
    """(env, spec, actor, train_chunk, hyper, eval_keys, state): PPO for every member of `cfg`,
    its traced hyperparameters, evaluation keys and initial state, on the member axis."""
    env, env_params, spec = make_env(cfg.env)
    env_params = with_params(cfg.env, env_params, dict(env_param_values(cfg.env_param)))
    objective, learned = learned_reward(cfg.reward, spec) if cfg.reward else (None, {})
    actor, init, train_chunk = make_ppo(cfg, env, env_params, spec, objective)
    member_cfgs = member_configs(cfg)
    hyper = shard_members(stack([{**hyper_of(m), **learned} for m in member_cfgs]))
    keys = shard_members(stack([root_key(m.seed) for m in member_cfgs]))
    eval_keys = shard_members(stack([eval_key(m.seed) for m in member_cfgs]))
    return env, spec, actor, train_chunk, hyper, eval_keys, jit_members(jax.vmap(init))(keys, hyper)


def learned_reward(path: str, spec):
    """(objective, its hyperparameters): member 0's learned reward of the `il airl` or `il gail`
    run at `path` (il_cli.algos.adversarial.LearnedReward), read from its checkpoint."""
    from il_cli.algos.adversarial import Discriminator, LearnedReward

    run = Run(path)
    config, tree = run.meta["config"], read_checkpoint(run)["objective"]
    disc = Discriminator(spec, config["disc_hidden"], run.meta["command"] == "airl", config.get("state_only", True))
    first = lambda tree: jax.tree.map(lambda x: jnp.asarray(x)[0], tree)
    objective = LearnedReward(spec, disc, config["reward_transform"], config["absorbing"])
    return objective, {"reward": first(tree["disc"]), "normalizer": tuple(first(tree["normalizer"]))}


def train_expert(cfg: PPOConfig, run: Run, ui: UI) -> dict:
    """Train PPO per `cfg` in `run` (every member in one vmapped program), continuing from its
    last checkpoint if it has one; the summary. With `exact` (always on Rail) the environment's
    exact expert is written down instead (`exact_expert`)."""
    if cfg.env == RAIL or cfg.exact:
        return exact_expert(cfg, run)
    started = time.time()
    env, spec, actor, train_chunk, hyper, eval_keys, state = ppo_members(cfg)
    chunk = chunk_length(cfg.num_updates, cfg.num_chunks)
    state, start = run.continue_from_checkpoint(state)
    steps_per_update = cfg.num_envs * cfg.num_steps
    chunk_fn = jit_members(jax.vmap(lambda s, h: train_chunk(s, h, chunk)))

    def summarize(step, m, state):
        returns = evaluate(cfg.env, actor, state.params["actor"], eval_keys, cfg.eval_episodes,
                           cfg.eval_policy, env_param_values(cfg.env_param))
        figures = []
        for k, ret in enumerate(returns):
            count = float(m["episodes"][k].sum())
            figures.append({
                "timesteps": step * steps_per_update,
                "train_return": float(m["episode_return_sum"][k].sum() / count) if count else None,
                "return": ret["return_mean"], "loss": float(m["loss"][k].mean()),
                "entropy": float(m["entropy"][k].mean())})
        return figures

    with ui.progress(cfg.num_updates, "update") as progress:
        state, _ = run_chunks(state, lambda s: chunk_fn(s, hyper), total=cfg.num_updates, chunk=chunk,
                              start=start, run=run, progress=progress, summarize=summarize,
                              members=run.members)
    run.wait()
    returns = evaluate(cfg.env, actor, state.params["actor"], eval_keys, cfg.eval_episodes,
                       cfg.eval_policy, env_param_values(cfg.env_param))
    log_std = None if spec.discrete else host(state.params["actor"]["params"]["log_std"])  # every member's
    blocks = []
    for k, ret in enumerate(returns):
        block = {"eval": ret, "expert": {"timesteps": cfg.num_updates * steps_per_update,
                                         "updates": cfg.num_updates}}
        if log_std is not None:
            block["expert"]["action_std"] = np.exp(log_std[k]).tolist()
        if cfg.env_param:  # trained and evaluated under changed dynamics
            block["expert"]["env_params"] = dict(env_param_values(cfg.env_param))
        blocks.append(block)
    if cfg.reward:
        blocks = against_the_imitated_expert(cfg, env, spec, actor, state.params["actor"], eval_keys, blocks)
    summary = run_summary("expert", cfg.env, cfg.seed, run, started, blocks, run.members)
    summary["curves"] = str(write_curves(run, summary))
    run.write_summary(summary)
    return summary


def against_the_imitated_expert(cfg: PPOConfig, env, spec, actor, params, eval_keys, blocks):
    """PPO on a learned reward (--reward): each member's block with `reward` (the run, its
    method), the expert that run imitated evaluated on the member's keys (`imitated`), a
    uniform random policy's return and the normalised return against them."""
    from il_cli.evaluation import evaluate_against_expert, normalize

    reward_run = Run(cfg.reward)
    summary = reward_run.member_summary()
    source = summary["expert"].get("run")
    block = {"run": cfg.reward, "method": reward_run.meta["command"], "imitation_return": summary["eval"]["return_mean"]}
    if not source or not (Path(source) / "summary.json").is_file():
        return [{**b, "reward": block} for b in blocks]
    changed = env_param_values(cfg.env_param)
    env_params = with_params(cfg.env, make_env(cfg.env)[1], dict(changed))
    paired = evaluate_against_expert(env, env_params, spec, actor, params, open_policy_run(source, cfg.env),
                                     eval_keys, cfg.eval_episodes, cfg.eval_policy)
    scored = normalize([{"eval": b["eval"], "expert": p[0]} for b, p in zip(blocks, paired)], cfg.env,
                       host(eval_keys), cfg.eval_episodes, changed)
    return [{**b, "reward": block, "imitated": s["expert"], "random": s["random"],
             "normalized_return": s["normalized_return"]} for b, s in zip(blocks, scored)]


def exact_expert(cfg: PPOConfig, run: Run) -> dict:
    """An expert without PPO: the state `train_expert` saves, at update 0, holding the exact actor
    of il_cli.exact (Rail's a* in every cell, MountainCar's energy pumping) and a zero critic;
    evaluated, logged and summarised like a trained expert."""
    started = time.time()
    env, spec, actor, _, _, eval_keys, state = ppo_members(cfg)
    what, params_of = EXACT_EXPERTS[cfg.env]
    actor_params = shard_members(stack([params_of(env, cfg.hidden, cfg.activation)] * len(run.members)))
    state = state.replace(params={"actor": actor_params,
                                  "critic": jax.tree.map(jnp.zeros_like, state.params["critic"])})
    returns = evaluate(cfg.env, actor, actor_params, eval_keys, cfg.eval_episodes, cfg.eval_policy,
                       env_param_values(cfg.env_param))
    run.truncate_metrics(-1)  # rows of an interrupted attempt
    for member, ret in zip(run.members, returns):
        run.log({"step": 0, "member": member["member"], "seed": member["seed"], **member["hyper"],
                 "timesteps": 0, "return": ret["return_mean"],
                 "elapsed_s": round(time.time() - PROCESS_START, 3)})
    if run.latest_step() is None:
        run.save(0, state)
    run.wait()
    blocks = [{"eval": ret, "expert": {"timesteps": 0, "updates": 0, "exact": what}} for ret in returns]
    if not spec.discrete:  # the Gaussian's std, as a trained expert's summary gives it
        for block, log_std in zip(blocks, host(actor_params["params"]["log_std"])):
            block["expert"]["action_std"] = np.exp(log_std).tolist()
    summary = run_summary("expert", cfg.env, cfg.seed, run, started, blocks, run.members)
    summary["curves"] = str(write_curves(run, summary))
    run.write_summary(summary)
    return summary


def default_expert_config(env_id: str) -> PPOConfig:
    """The shipped recipe for this environment (recipes/<short name>.toml), else defaults."""
    recipe = recipe_lib.shipped_recipe(env_id)
    if recipe:
        return recipe_lib.build_config(PPOConfig, "expert", recipe, env=env_id)
    return PPOConfig(env=env_id)


def cached_path(env_id: str):
    """Where the cached expert of `env_id` lives."""
    return cache_dir() / "experts" / env_id.replace(":", ".")


@contextlib.contextmanager
def cache_lock(env_id: str, ui: UI, waiting_for: str):
    """A file lock around the cache entry of `env_id`: processes that start at once on an empty
    cache train it once (the others wait, then use it)."""
    from filelock import FileLock, Timeout

    cached = cached_path(env_id)
    cached.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cached.parent / f".{cached.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        ui.print(f"waiting for another process to {waiting_for} ({cached})")
        lock.acquire()
    try:
        yield cached
    finally:
        lock.release()


def get_expert(env_id: str, expert: str | None, ui: UI) -> Run:
    """The expert run to imitate: `expert` if given, else the cached one, trained on first use."""
    if expert:
        return open_policy_run(expert, env_id)
    cached = cached_path(env_id)
    if (cached / "summary.json").is_file():
        return Run(cached)
    if jax.process_count() > 1:
        raise UserError(f"--distributed needs {env_id}'s expert trained first: run `il expert --env {env_id}` once "
                        f"without --distributed (it is cached), or give --expert RUN")
    with cache_lock(env_id, ui, f"train the {env_id} expert") as cached:
        if (cached / "summary.json").is_file():
            return Run(cached)
        return _train_cached_expert(env_id, cached, ui)


def _install(source, cached):
    """Put the finished run `source` (a directory) in the cache entry `cached`, replacing any."""
    if cached.exists():
        shutil.rmtree(cached)
    source.rename(cached)


def _train_cached_expert(env_id: str, cached, ui: UI) -> Run:
    cfg = default_expert_config(env_id)
    how = ("writing its exact policy" if env_id == RAIL or cfg.exact
           else f"training one with PPO ({cfg.total_timesteps} steps)")
    ui.print(f"no cached expert for {env_id}: {how} into {cached}")
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run = Run.create(tmp.parent, "expert", env_id, None, recipe_lib.to_json(cfg),
                     make_env(env_id)[2].to_json(), members(cfg.seed, 1, ()), run_dir=str(tmp),
                     policy_path=COMMANDS["expert"].policy_path({}))
    summary = train_expert(cfg, run, ui)
    run.close()
    _install(tmp, cached)
    ui.print(f"expert for {env_id}: return {summary['eval']['return_mean']:.1f} "
             f"(device {device_description()})")
    return Run(cached)


def offer_to_cache(cfg: PPOConfig, run: Run, summary: dict, ui: UI) -> dict:
    """After `il expert`: the run becomes the cached expert of its environment, the one the other
    commands use without --expert, if none is cached (a run of one member), or if --cache asks."""
    if run.members[1:] or cfg.sweep or cfg.reward or cfg.env_param or jax.process_count() > 1:
        return summary
    if not cfg.cache and (cached_path(cfg.env) / "summary.json").is_file():
        return summary
    with cache_lock(cfg.env, ui, f"cache the {cfg.env} expert") as cached:
        if cfg.cache or not (cached / "summary.json").is_file():
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(run.path, tmp, ignore=shutil.ignore_patterns(LOCK))
            _install(tmp, cached)
            summary = {**summary, "cached_as": str(cached)}
            run.write_summary(summary)
            ui.print(f"cached as the {cfg.env} expert, used without --expert: {cached}")
    return summary
