"""Pieces every job uses: keys, policy loading, evaluation, the summary's common block."""

import time
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.envs import EnvSpec, make_env
from il_cli.errors import UserError
from il_cli.loop import (COMPILE_STATS, PROGRAMS, chunk_length, device_description, host, jit_members, replicate,
                          run_chunks)
from il_cli.runs import Run

EVAL_STREAM = 0xE7A1  # evaluation keys are never training keys
NO_HOLDOUT = "none — measured on training data"  # a held-out figure's block when nothing was held out


def root_key(seed: int):
    return jax.random.PRNGKey(seed)


def eval_key(seed: int):
    """The evaluation key of a run with this seed (`il eval` uses the same one)."""
    return jax.random.fold_in(root_key(seed), EVAL_STREAM)


def stack(trees):
    """One pytree with a leading member axis from a list of per-member pytrees."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, num: int) -> list:
    return [jax.tree.map(lambda x: x[k], tree) for k in range(num)]


def spec_from_json(d: dict) -> EnvSpec:
    return EnvSpec(d["env_id"], tuple(d["obs_shape"]), d["discrete"], d["action_dim"],
                   tuple(d["action_low"]), tuple(d["action_high"]), d["max_steps"])


def read_checkpoint(run: Run):
    """The run's latest checkpoint as nested dicts; one line (UserError) if it cannot be read."""
    try:
        return run.restore_raw()
    except UserError:
        raise
    except Exception as exc:
        run.close()  # no checkpoint threads left to complain at exit
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
        raise UserError(f"cannot read the checkpoint of {run.path}: {first}") from None


def policy_tree(run: Run, tree, stage: str | None):
    """The part of a checkpoint `tree` that holds the run's final policy, or an earlier
    `stage`'s (il_cli.runs.STAGE_PATHS)."""
    from il_cli.runs import STAGE_PATHS

    meta = run.meta
    path = meta["policy_path"]
    if stage is not None:
        stages = STAGE_PATHS.get(meta["command"], {})
        if stage not in stages:
            raise UserError(f"{run.path} is an il {meta['command']} run, whose stages are "
                            f"{', '.join(stages) or 'none (only its final policy)'}, not '{stage}'")
        path = stages[stage]
    for part in path:
        tree = tree[part]
    return tree


def load_policy(run: Run, member: int | None = 0, stage: str | None = None):
    """(spec, actor, actor_params) of any run with a saved policy: member `member`'s
    parameters, or with member=None every member's, stacked on a leading axis; the policy of
    an earlier `stage` of the run (il_cli.runs.STAGE_PATHS) if given."""
    meta = run.meta
    spec = spec_from_json(meta["spec"])
    config = meta["config"]
    if meta["command"] == "prefs":  # π ∝ exp(Q/α), or the preference-trained policy
        from il_cli.algos.prefs import make_policy

        actor = make_policy(spec, config["param"], config["hidden"], config["activation"])
    else:
        actor = networks.make_actor(spec, config["hidden"], config.get("activation", "tanh"))
    tree = jax.tree.map(jnp.asarray, policy_tree(run, read_checkpoint(run), stage))
    if "members" not in meta:  # written before runs had a member axis
        tree = jax.tree.map(lambda x: x[None], tree)
    num = jax.tree.leaves(tree)[0].shape[0]
    check_member(run.path, member, num)
    return spec, actor, tree if member is None else jax.tree.map(lambda x: x[member], tree)


def check_member(path, member: int | None, num: int):
    """UserError unless `member` (--member; None: all) is one of a run's `num` members."""
    if member is not None and not 0 <= member < num:
        raise UserError(f"{path} has one member (0), not {member}" if num == 1 else
                        f"{path} has members 0 to {num - 1}, not {member}")


@lru_cache(maxsize=8)
def load_expert(path: str):
    """`load_policy` of a finished expert run, read once per process."""
    return load_policy(Run(path))


def episode_stats(episodes, policy: str) -> dict:
    """The `eval` block: return statistics over the episodes, and which policy acted."""
    returns = np.asarray(jax.device_get(episodes.returns), np.float64)
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "length_mean": float(np.mean(jax.device_get(episodes.lengths))),
            "episodes": int(len(returns)), "policy": policy}


@lru_cache(maxsize=None)
def _evaluator(env_id: str, actor, num_episodes: int, policy: str):
    env, env_params, spec = make_env(env_id)
    return jit_members(jax.vmap(rollout.make_episodes(env, env_params, spec, num_episodes,
                                                  rollout.make_policy_act(spec, actor, policy))))


def evaluate(env_id: str, actor, params, keys, num_episodes: int, policy: str = "mode") -> list[dict]:
    """Each member's `eval` block: one episode in each of `num_episodes` envs, acting with
    the mode or sampled action. `params` and `keys` have a leading member axis."""
    episodes = host(_evaluator(env_id, actor, num_episodes, policy)(params, keys))
    return [episode_stats(e, policy) for e in unstack(episodes, len(keys))]


def evaluate_against_expert(env, env_params, spec, learner, learner_params, expert_run: Run,
                            keys, num_episodes: int, policy: str) -> list[tuple[dict, dict]]:
    """Per member, (expert block, ε figures): the expert evaluated with the member's key and
    episode count (a paired return gap), and ε = TV(π̂, π*) on the learner's and the expert's
    states. `learner_params` and `keys` have a leading member axis."""
    _, expert, expert_params = load_expert(str(expert_run.path))
    expert_params = replicate(expert_params)
    paired = jit_members(jax.vmap(
        rollout.make_paired_episodes(env, env_params, spec, learner, expert, num_episodes, policy),
        in_axes=((0, None), 0)))
    on_learner, on_expert = host(paired((learner_params, expert_params), keys))
    out = []
    for lrn, exp in zip(unstack(on_learner, len(keys)), unstack(on_expert, len(keys))):
        out.append(({"run": str(expert_run.path), **episode_stats(exp, "mode"), "paired": True},
                    {k: float(v) for k, v in rollout.tv_figures(lrn, exp).items()}))
    return out


def fit_members(cfg, run: Run, ui, policy, state, train_chunk, train_data, keys):
    """The chunked fit of every member's policy on a fixed dataset (BC's eq. 24.2, the
    preference loss of `il prefs`): from the run's latest checkpoint, `cfg.num_steps` steps of
    `train_chunk`, logging per chunk each member's mean loss, its return (evaluated with
    `keys`) and the program's samples/s. Returns (state, compile seconds)."""
    state, start = run.continue_from_checkpoint(state)
    chunk = chunk_length(cfg.num_steps, cfg.num_chunks)
    t0 = time.perf_counter()
    compiled = jit_members(jax.vmap(lambda s, d: train_chunk(s, d, chunk))).lower(state, train_data).compile()
    compile_s = time.perf_counter() - t0

    def train(state):
        t0 = time.perf_counter()
        state, losses = jax.block_until_ready(compiled(state, train_data))
        return state, (losses, time.perf_counter() - t0)

    def summarize(step, out, state):
        losses, train_s = out
        returns = evaluate(cfg.env, policy, state.params, keys, cfg.eval_episodes, cfg.eval_policy)
        rate = len(returns) * chunk * cfg.batch_size / train_s  # the program's: all members
        return [{"loss": float(np.mean(losses[k])), "return": ret["return_mean"], "samples_per_s": rate}
                for k, ret in enumerate(returns)]

    with ui.progress(cfg.num_steps, "step") as progress:
        state, _ = run_chunks(state, train, total=cfg.num_steps, chunk=chunk, start=start,
                              run=run, progress=progress, summarize=summarize, members=run.members)
    run.wait()
    return state, compile_s


def throughput(rows: list[dict]) -> float | None:
    """Samples per second over every logged chunk (equal-sized chunks: the harmonic mean of
    the per-chunk rates), so a resumed run reports its whole training, not the last part."""
    rates = [r["samples_per_s"] for r in rows if r.get("samples_per_s")]
    return len(rates) / sum(1 / r for r in rates) if rates else None


def versions() -> dict:
    from importlib.metadata import version

    import il_cli

    out = {"il": il_cli.__version__}
    for package in ("jax", "flax", "optax", "gymnax", "orbax-checkpoint"):
        out[package] = version(package)
    return out


def base_summary(command: str, env_id: str, run: Run, seed: int, started: float) -> dict:
    return {"command": command, "env": env_id, "run_dir": str(run.path), "seed": seed,
            "wall_s": round(time.time() - started, 3), "device": device_description(),
            "versions": versions(),
            "compile": {**{k: round(v, 3) for k, v in COMPILE_STATS.items()},
                        "programs": dict(sorted(PROGRAMS.items()))}}


def run_summary(command: str, env_id: str, seed: int, run: Run, started: float, blocks: list[dict],
                members: list[dict]) -> dict:
    """The summary of a run. With one member its figures (`blocks[0]`: `eval`, `expert`, the
    command's own block, ...) are at the top level. With several, `members` lists each
    member's, `cells` gives per sweep cell the mean, std, interquartile mean and 95%
    bootstrap CI over its seeds of the return (and the return gap, or RLHF's gain), and
    `eval` summarises the members' mean returns. `members` are the il_cli.sweep entries of
    `blocks`."""
    from il_cli.sweep import aggregate

    summary = base_summary(command, env_id, run, seed, started)
    if len(blocks) == 1:
        return {**summary, **blocks[0]}
    summary["members"] = [{**m, **b} for m, b in zip(members, blocks)]
    cells = {}
    for m, b in zip(members, blocks):
        cells.setdefault(m["cell"], []).append((m, b))
    summary["cells"] = []
    for cell, rows in cells.items():
        entry = {"cell": cell, "hyper": rows[0][0]["hyper"], "seeds": [m["seed"] for m, _ in rows],
                 "return": aggregate([b["eval"]["return_mean"] for _, b in rows])}
        for figure in ("return_gap", "gold_gain"):  # against the expert; RLHF's over its SFT policy
            if figure in rows[0][1]:
                entry[figure] = aggregate([b[figure] for _, b in rows])
        summary["cells"].append(entry)
    returns = np.array([b["eval"]["return_mean"] for b in blocks])
    summary["eval"] = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                       "return_min": float(returns.min()), "return_max": float(returns.max()),
                       "over": f"the mean returns of {len(blocks)} members"}
    first = blocks[0]["eval"]
    if "length_mean" in first:  # episodes of a control task (a text task has prompts)
        summary["eval"].update(length_mean=float(np.mean([b["eval"]["length_mean"] for b in blocks])),
                               episodes=first["episodes"], policy=first["policy"])
    return summary
