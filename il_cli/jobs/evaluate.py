"""`il eval`: evaluate any run's saved policy; optionally render an episode as a GIF."""

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp

from il_cli import networks
from il_cli.config import EvalConfig
from il_cli.envs import env_param_values, make_env
from il_cli.errors import UserError
from il_cli.evaluation import check_member, eval_key, evaluate, load_policy, stack
from il_cli.loop import device_description
from il_cli.runs import Run
from il_cli.summaries import run_summary


def run_eval(cfg: EvalConfig, ui) -> dict:
    """Every member of the run (or `cfg.member`), as the run evaluated it unless told otherwise."""
    started = time.time()
    run = Run.open(cfg.run)
    meta = run.meta
    if not meta.get("policy_path"):
        raise UserError(f"{cfg.run} is an il {meta['command']} run, which has no policy to evaluate")
    if "programs" in meta:
        return programs_eval(cfg, run, started, ui)
    if meta["config"].get("task") == "text":
        return text_eval(cfg, run, started, ui)
    spec, actor, params = load_policy(run, member=None, stage=cfg.stage)
    members = run.members
    if cfg.member is not None:
        check_member(cfg.run, cfg.member, len(members))
        members = [members[cfg.member]]
        params = jax.tree.map(lambda x: x[cfg.member : cfg.member + 1], params)
    own = meta["config"]
    seed = own["seed"] if cfg.seed is None else cfg.seed
    episodes = own.get("eval_episodes", 100) if cfg.episodes is None else cfg.episodes
    policy = own.get("eval_policy", "mode") if cfg.eval_policy is None else cfg.eval_policy
    ui.header("eval", spec.env_id, run.path, device_description())
    differs = [f"{what} {mine} (the run used {theirs})" for what, mine, theirs in (
        ("seed", seed, own["seed"]), ("episodes", episodes, own.get("eval_episodes", 100)),
        ("policy", policy, own.get("eval_policy", "mode"))) if mine != theirs]
    if differs:
        ui.print(f"evaluating with {', '.join(differs)}: the figure will not be the run's own")
    seeds = [m["seed"] - own["seed"] + seed for m in members]  # member k: the base seed + its offset
    evals = evaluate(spec.env_id, actor, params, stack([eval_key(s) for s in seeds]), episodes, policy,
                     env_param_values(own.get("env_param", ())))
    summary = run_summary("eval", spec.env_id, seeds[0] if len(seeds) == 1 else seed, run, started,
                          [{"eval": e} for e in evals], [{**m, "seed": s} for m, s in zip(members, seeds)])
    if cfg.member is not None:
        summary.update(member=cfg.member, hyper=members[0]["hyper"])
    summary["evaluated"] = meta["command"] + (f" ({cfg.stage} stage)" if cfg.stage else "")
    if cfg.gif:
        first = jax.tree.map(lambda x: x[0], params)
        summary["gif"] = render_gif(spec, actor, first, jax.random.fold_in(eval_key(seeds[0]), 1), cfg.gif,
                                    cfg.gif_frames)
    with open(run.path / "evals.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    return summary


def programs_eval(cfg: EvalConfig, run: Run, started: float, ui) -> dict:
    """A sweep over a count or shape (il_cli.programs): each program's run evaluated, its
    members numbered as the parent's (`cfg.member` is the parent's numbering)."""
    from il_cli.programs import member_blocks

    members = run.members
    check_member(cfg.run, cfg.member, len(members))
    programs = run.programs
    if len(programs) < len(run.meta["programs"]):
        raise UserError(f"{cfg.run} did not finish; resume it with `il {run.meta['command']} --resume {cfg.run}`")
    size = len(members) // len(programs)
    picked = range(len(programs)) if cfg.member is None else [cfg.member // size]
    blocks, gif = [], None
    for i in picked:  # a GIF of the first member evaluated
        local = None if cfg.member is None else cfg.member % size
        summary = run_eval(dataclasses.replace(cfg, run=str(programs[i][1].path), member=local,
                                               gif=None if blocks else cfg.gif), ui)
        gif = gif or summary.get("gif")
        blocks += [{"eval": b["eval"]} for b in member_blocks(summary)]
    members = members if cfg.member is None else [members[cfg.member]]
    summary = run_summary("eval", run.meta["env"], members[0]["seed"], run, started, blocks, members)
    if cfg.member is not None:
        summary.update(member=cfg.member, hyper=members[0]["hyper"])
    summary["evaluated"] = run.meta["command"] + (f" ({cfg.stage} stage)" if cfg.stage else "")
    if gif:
        summary["gif"] = gif
    with open(run.path / "evals.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    return summary


def text_eval(cfg: EvalConfig, run: Run, started: float, ui) -> dict:
    """An `il rlhf --task text` run: its held-out prompts' gold score, KL to π_SFT and corpus
    log-likelihood, on the run's own keys (episodes, seeds and GIFs are the control tasks')."""
    from il_cli.text.rlhf import evaluate_run

    given = [name for name, value in (("--episodes", cfg.episodes), ("--seed", cfg.seed),
                                      ("--eval-policy", cfg.eval_policy), ("--gif", cfg.gif)) if value is not None]
    if given:
        raise UserError(f"{', '.join(given)}: not for a text run (it is evaluated on its own held-out prompts)")
    ui.header("eval", run.meta["env"], run.path, device_description())
    figures = evaluate_run(run, cfg.stage)
    members = run.members
    if cfg.member is not None:
        check_member(cfg.run, cfg.member, len(members))
        figures, members = [figures[cfg.member]], [members[cfg.member]]
    blocks = [{"eval": {"return_mean": f["gold"], **f}} for f in figures]
    summary = run_summary("eval", run.meta["env"], members[0]["seed"], run, started, blocks, members)
    summary["evaluated"] = "rlhf --task text" + (f" ({cfg.stage} stage)" if cfg.stage else "")
    with open(run.path / "evals.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    return summary


def render_gif(spec, actor, params, key, path, max_frames: int) -> str:
    """The first `max_frames` steps of one deterministic episode, rendered by gymnax's
    Visualizer (needs `pip install il-cli[render]`; about 6 frames/s for classic control)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import matplotlib

        matplotlib.use("Agg")
        if spec.env_id in ("Acrobot-v1", "CartPole-v1", "Pendulum-v1", "MountainCar-v0",
                           "MountainCarContinuous-v0"):
            import pygame  # noqa: F401  (gymnax renders classic control through pygame)
        from gymnax.visualize import Visualizer
    except ImportError as exc:
        raise UserError(f"--gif needs the render extra ({exc.name} is missing): "
                        f"pip install -e '.[render]'") from None
    env, env_params, _ = make_env(spec.env_id)

    def step(carry, t):
        obs, state, alive = carry
        action = networks.clip_action(spec, networks.mode(spec.discrete, actor.apply(params, obs[None]))[0])
        obs, next_state, reward, terminated, truncated, _ = env.step(
            jax.random.fold_in(key, t), state, action, env_params)
        return (obs, next_state, alive & ~(terminated | truncated)), (state, reward, alive)

    obs, state = env.reset(key, env_params)
    _, (states, rewards, alive) = jax.jit(
        lambda o, s: jax.lax.scan(step, (o, s, jnp.array(True)), jnp.arange(spec.max_steps)))(obs, state)
    length = min(int(alive.sum()), max_frames)
    seq = [jax.tree.map(lambda x: x[t], states) for t in range(length)]
    try:
        Visualizer(env, env_params, seq, jnp.cumsum(rewards)[:length]).animate(str(path))
    except Exception as exc:
        raise UserError(f"gymnax cannot render {spec.env_id}: {exc}") from None
    return str(path)
