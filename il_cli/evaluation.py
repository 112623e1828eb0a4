"""Keys, policies and evaluation, for every job and `il eval`: the keys of a seed (evaluation
keys are never training keys), any run's saved policy, and members evaluated on vectorized
environments (alone, or paired with the expert on the same keys)."""

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from il_cli import networks, rollout
from il_cli.envs import EnvSpec, make_env, with_params
from il_cli.errors import UserError
from il_cli.loop import host, jit_members, replicate
from il_cli.runs import Run

EVAL_STREAM = 0xE7A1  # evaluation keys are never training keys


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
    `stage`'s (il_cli.registry)."""
    from il_cli.registry import COMMANDS

    meta = run.meta
    path = meta["policy_path"]
    if stage is not None:
        stages = COMMANDS[meta["command"]].stages if meta["command"] in COMMANDS else {}
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
    an earlier `stage` of the run (il_cli.registry) if given."""
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
def _evaluator(env_id: str, actor, num_episodes: int, policy: str, env_param: tuple):
    env, env_params, spec = make_env(env_id)
    env_params = with_params(env_id, env_params, dict(env_param))
    return jit_members(jax.vmap(rollout.make_episodes(env, env_params, spec, num_episodes,
                                                  rollout.make_policy_act(spec, actor, policy))))


def evaluate(env_id: str, actor, params, keys, num_episodes: int, policy: str = "mode",
             env_param: tuple = ()) -> list[dict]:
    """Each member's `eval` block: one episode in each of `num_episodes` envs, acting with
    the mode or sampled action, under the environment's parameters changed by `env_param`
    (((name, value), ...)). `params` and `keys` have a leading member axis."""
    episodes = host(_evaluator(env_id, actor, num_episodes, policy, tuple(env_param))(params, keys))
    return [episode_stats(e, policy) for e in unstack(episodes, len(keys))]


def uniform_act(spec: EnvSpec):
    """act(params, obs, key): a uniformly random action (ignores params)."""

    def act(params, obs, key):
        if spec.discrete:
            return jax.random.randint(key, obs.shape[:1], 0, spec.action_dim)
        low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
        return jax.random.uniform(key, (obs.shape[0], spec.action_dim), minval=low, maxval=high)

    return act


@lru_cache(maxsize=None)
def _random_evaluator(env_id: str, num_episodes: int, env_param: tuple = ()):
    env, env_params, spec = make_env(env_id)
    env_params = with_params(env_id, env_params, dict(env_param))
    episodes = rollout.make_episodes(env, env_params, spec, num_episodes, uniform_act(spec))

    def random_episodes(params, key):  # (its own name among the compiled programs)
        return episodes(params, key)

    return jax.jit(jax.vmap(random_episodes, in_axes=(None, 0)))


def normalize(blocks: list[dict], env_id: str, keys, num_episodes: int, env_param: tuple = ()) -> list[dict]:
    """Each member's block with `random` (a uniform random policy's return on the member's keys
    and episodes, as its `eval` and paired `expert` were measured) and `normalized_return`
    (J − J_random) / (J_expert − J_random): 1 is the expert, 0 chance."""
    randoms = unstack(host(_random_evaluator(env_id, num_episodes, tuple(env_param))(None, keys)), len(keys))
    out = []
    for block, episodes in zip(blocks, randoms):
        j_random = episode_stats(episodes, "uniform")["return_mean"]
        gap = block["expert"]["return_mean"] - j_random
        score = (block["eval"]["return_mean"] - j_random) / gap if gap else None
        out.append({**block, "random": {"return_mean": j_random}, "normalized_return": score})
    return out


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
