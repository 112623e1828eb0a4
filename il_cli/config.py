"""Frozen, keyword-only configs, one per command.

Sources, lowest to highest priority: defaults < `--recipe` < command-line flags. A recipe
is TOML: top-level keys apply to every command, a `[bc]`/`[expert]`/... table to that
command only. The merged config is written to `config.json` and reproduces the run.
This module does not import JAX.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from il_cli.envs import CONTINUOUS_ENV_IDS, resolve_env_id
from il_cli.errors import UserError, suggest

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


def _options_of(cls) -> frozenset | None:
    """The parameters of the command whose config is `cls` (None if no command has it)."""
    import inspect

    from il_cli.cli import app

    command = "rlhf" if cls is TextRLHFConfig else "eval" if cls is EvalConfig else next(
        (name for name, c in COMMANDS.items() if c is cls), None)
    for info in app.registered_commands:
        if (info.name or info.callback.__name__) == command:
            return frozenset(inspect.signature(info.callback).parameters)
    return None


def option(cfg, name: str) -> str:
    """How a user sets the field `name` of `cfg` (a config or its class): its command's option
    (--num-steps), or, for a field no option sets (a recipe key, a --sweep key), its name
    (num_epochs)."""
    options = _options_of(cfg if isinstance(cfg, type) else type(cfg))
    return f"--{name.replace('_', '-')}" if options is None or name in options else name


def _positive(cfg, *names):
    for name in names:
        value = getattr(cfg, name)
        if not 0 < value < float("inf"):  # NaN fails too
            raise UserError(f"{option(cfg, name)} must be positive and finite, got {value}")


def _non_negative(cfg, *names):
    for name in names:
        if not getattr(cfg, name) >= 0:  # NaN fails too
            raise UserError(f"{option(cfg, name)} must be non-negative, got {getattr(cfg, name)}")


def _sizes(cfg, *names):
    """Layer sizes (hidden, rm_hidden): each positive, from a flag, a recipe, a sweep or a
    resumed config alike (a zero-width layer trains and then cannot be checkpointed)."""
    for name in names:
        values = getattr(cfg, name)
        if not all(v > 0 for v in values):
            raise UserError(f"{option(cfg, name)} sizes must be positive, got '{','.join(map(str, values))}'")


def _in_unit_interval(cfg, *names, open_right=False):
    for name in names:
        value = getattr(cfg, name)
        if not (0 <= value < 1 if open_right else 0 <= value <= 1):
            bound = "[0, 1)" if open_right else "[0, 1]"
            raise UserError(f"{option(cfg, name)} must be in {bound}, got {value}")


def _eval_policy(cfg):
    if cfg.eval_policy not in ("mode", "sample"):
        raise UserError(f"--eval-policy must be mode (greedy actions) or sample (actions drawn "
                        f"from π̂), got '{cfg.eval_policy}'{suggest(cfg.eval_policy, ('mode', 'sample'))}")


MAX_MEMBERS = 65_536  # members of one run (seeds × sweep cells)


def _members(cfg, command: str):
    """Validate `seeds` and normalise `sweep` to ((key, (v1, v2, ...)), ...); a recipe may
    give it as a list of "key=v1,v2" strings, like the command line."""
    from il_cli.sweep import parse_sweep, spec, split_grid

    _positive(cfg, "seeds")
    if cfg.seeds > MAX_MEMBERS:
        raise UserError(f"--seeds {cfg.seeds}: at most {MAX_MEMBERS} members in one run")
    if not 0 <= cfg.seed < 2**31 or cfg.seed + cfg.seeds > 2**31:
        raise UserError(f"--seed must be in [0, 2^31 − seeds), got {cfg.seed}")
    grid = parse_sweep([item if isinstance(item, str) else spec(*item) for item in cfg.sweep], command,
                       fields_of(type(cfg)))
    if len({key for key, _ in grid}) < len(grid):
        raise UserError("--sweep names a hyperparameter twice; put all its values in one list")
    object.__setattr__(cfg, "sweep", tuple(grid))
    members = cfg.seeds * math.prod(len(values) for _, values in grid)
    if members > MAX_MEMBERS:
        raise UserError(f"--seeds × the sweep's cells is {members} members; at most {MAX_MEMBERS} in one run")
    if grid:
        _check_cells(cfg, grid)
    if getattr(cfg, "vary_eval", ()) and split_grid(grid)[0]:
        raise UserError("--vary-eval evaluates one program; with a sweep over a count or shape, evaluate "
                        "each program's run: il eval RUN/cells/<cell> --vary ...")


def _check_cells(cfg, grid):
    """Each cell of the sweep validates as a config of its own (a member's, or a program's),
    so a value no option would take is refused now, naming it: `--sweep hidden=0: ...`."""
    from il_cli.sweep import describe, members

    def error(hyper) -> UserError | None:
        try:
            dataclasses.replace(cfg, seeds=1, sweep=(), **hyper)
        except UserError as exc:
            return exc
        return None

    for cell in members(cfg.seed, 1, grid):
        if error(cell["hyper"]) is None:
            continue
        if (own := error({})) is not None:  # the options without the sweep are wrong themselves
            raise own
        culprit = next(({k: v} for k, v in cell["hyper"].items() if error({k: v}) is not None), cell["hyper"])
        raise UserError(f"--sweep {describe(culprit, ' ')}: {error(culprit)}")


def member_configs(cfg) -> list:
    """One single-run config per member (see il_cli.sweep): seed s+i, the cell's values."""
    from il_cli.sweep import members

    return [dataclasses.replace(cfg, seed=m["seed"], seeds=1, sweep=(), **m["hyper"])
            for m in members(cfg.seed, cfg.seeds, cfg.sweep)]


def _tensorboard(cfg):
    if cfg.tensorboard:
        from il_cli.tb import require

        require()


def _activation(cfg):
    if cfg.activation not in ("tanh", "relu"):
        raise UserError(f"{option(cfg, 'activation')} must be tanh or relu, got '{cfg.activation}'"
                        f"{suggest(str(cfg.activation), ('tanh', 'relu'))}")


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """PPO (clipped objective, GAE, value loss, entropy bonus) for experts."""

    env: str = "CartPole-v1"
    seed: int = 0
    num_envs: int = 32
    num_steps: int = 64  # rollout length per update
    total_timesteps: int = 262_144
    num_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 3e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    reward_scale: float = 1.0
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    eval_episodes: int = 100
    eval_policy: str = "mode"  # evaluate greedy (mode) or sampled actions
    num_chunks: int = 8
    seeds: int = 1  # members with seeds seed … seed+seeds−1, one vmapped program
    sweep: tuple = ()  # ((hyperparameter, (values...)), ...): a grid of members
    tensorboard: bool = False  # mirror metrics.jsonl into TensorBoard event files (RUN_DIR/tb)

    def __post_init__(self):
        _activation(self)
        _eval_policy(self)
        _tensorboard(self)
        _members(self, "expert")
        _positive(self, "num_envs", "num_steps", "total_timesteps", "num_epochs",
                  "num_minibatches", "lr", "eval_episodes", "num_chunks", "reward_scale")
        _sizes(self, "hidden")
        _in_unit_interval(self, "gamma", "gae_lambda", "clip_eps")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise UserError(f"num_envs*num_steps ({self.num_envs * self.num_steps}) must be "
                            f"divisible by num_minibatches ({self.num_minibatches})")

    @property
    def num_updates(self) -> int:
        return max(1, self.total_timesteps // (self.num_envs * self.num_steps))


TEACHERS = ("oracle", "noisy", "mistake", "skip", "skip-ties", "equal")
STATE_SOURCES = ("expert", "uniform-mix")
PREF_PARAMS = ("q", "policy")
TEACHER_HYPER = ("teacher_beta", "mistake_rate", "teacher_threshold", "teacher_skip_score")


def _choice(cfg, name, choices):
    value = getattr(cfg, name)
    if value not in choices:
        raise UserError(f"{option(cfg, name)} must be one of {', '.join(choices)}, "
                        f"got '{value}'{suggest(str(value), choices)}")


def _teacher(cfg):
    """The simulated teacher's options (il_cli.algos.prefs.teach)."""
    _choice(cfg, "teacher", TEACHERS)
    _choice(cfg, "state_source", STATE_SOURCES)
    _non_negative(cfg, "teacher_beta", "teacher_threshold")
    _in_unit_interval(cfg, "mistake_rate")


@dataclass(frozen=True, kw_only=True)
class CollectConfig:
    """Expert demonstrations, or with `prefs` a preference dataset, on vectorized environments."""

    env: str = "CartPole-v1"
    seed: int = 0
    episodes: int = 100
    num_envs: int = 1024
    expert: str | None = None
    prefs: int = 0  # > 0: write this many preference pairs instead of demonstrations
    state_source: str = "uniform-mix"
    teacher: str = "oracle"
    teacher_beta: float = 1.0
    mistake_rate: float = 0.1
    teacher_threshold: float = 0.1
    teacher_skip_score: float = -3.0

    def __post_init__(self):
        _positive(self, "episodes", "num_envs")
        _teacher(self)
        _non_negative(self, "prefs")


@dataclass(frozen=True, kw_only=True)
class PrefsConfig:
    """Learning from state-action preferences: Q by eq. 24.11, π ∝ exp(Q/α)."""

    env: str = "CartPole-v1"
    seed: int = 0
    expert: str | None = None
    prefs_file: str | None = None  # a preference dataset; otherwise a simulated teacher
    num_prefs: int = 5000
    state_source: str = "uniform-mix"  # states from expert rollouts alone leave the learner no way back
    teacher: str = "oracle"
    teacher_beta: float = 1.0  # noisy: p(a ≻ b) = σ(β(score a − score b))
    mistake_rate: float = 0.1  # mistake: fraction of flipped labels
    teacher_threshold: float = 0.1  # skip-ties / equal: score gap (nats) below which a pair is a tie
    teacher_skip_score: float = -3.0  # skip (B-Pref's): a pair whose actions both score below this is not asked
    param: str = "q"  # q: Q(s, a) and π ∝ exp(Q/α); policy: log π directly (CPL / DPO-style)
    temperature: float = 1.0  # α
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    lr: float = 1e-3
    batch_size: int = 256
    num_steps: int = 4000
    holdout_frac: float = 0.1  # fraction of whole environment streams held out
    eval_episodes: int = 100
    eval_policy: str = "mode"
    num_chunks: int = 8
    seeds: int = 1
    sweep: tuple = ()
    tensorboard: bool = False  # mirror metrics.jsonl into TensorBoard event files (RUN_DIR/tb)

    def __post_init__(self):
        _activation(self)
        _eval_policy(self)
        _tensorboard(self)
        _teacher(self)
        _choice(self, "param", PREF_PARAMS)
        _members(self, "prefs")
        _positive(self, "num_prefs", "temperature", "lr", "batch_size", "num_steps", "eval_episodes",
                  "num_chunks")
        _sizes(self, "hidden")
        _in_unit_interval(self, "holdout_frac", open_right=True)
        swept = [key for key, _ in self.sweep if key in TEACHER_HYPER]
        if self.prefs_file and swept:
            raise UserError(f"--sweep {swept[0]}: the labels come from --prefs-file, so there is "
                            f"no simulated teacher to vary")


@dataclass(frozen=True, kw_only=True)
class BCConfig:
    """Behavioral cloning by maximum likelihood (eq. 24.2)."""

    env: str = "CartPole-v1"
    seed: int = 0
    demos: str | None = None  # a dataset file; otherwise `episodes` are collected
    episodes: int = 20
    expert: str | None = None
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    lr: float = 1e-3
    batch_size: int = 256
    num_steps: int = 4000
    holdout_frac: float = 0.1  # fraction of whole demonstration episodes held out
    eval_episodes: int = 100
    eval_policy: str = "mode"
    num_chunks: int = 8
    seeds: int = 1
    sweep: tuple = ()
    tensorboard: bool = False  # mirror metrics.jsonl into TensorBoard event files (RUN_DIR/tb)
    vary_eval: tuple = ()  # ((name, values), ...): also evaluate over this grid of env parameters at the end

    def __post_init__(self):
        object.__setattr__(self, "vary_eval", parse_vary(self.vary_eval, "--vary-eval"))
        _activation(self)
        _eval_policy(self)
        _tensorboard(self)
        _members(self, "bc")
        _positive(self, "episodes", "lr", "batch_size", "num_steps", "eval_episodes", "num_chunks")
        _sizes(self, "hidden")
        _in_unit_interval(self, "holdout_frac", open_right=True)


@dataclass(frozen=True, kw_only=True)
class DAggerConfig:
    """DAgger (Algorithm 1): N rounds of m visited states, each labelled by the expert."""

    env: str = "CartPole-v1"
    seed: int = 0
    expert: str | None = None
    demos: str | None = None  # optional dataset seeding D
    episodes: int = 0  # or expert episodes collected to seed D
    num_rounds: int | None = None  # default 10, or the length of an explicit schedule
    steps_per_round: int = 2000
    num_envs: int = 8
    beta_schedule: str = "linear"
    beta_decay: float = 0.5
    beta: float = 0.5
    train_steps: int = 500  # gradient steps after each round
    retrain_from_scratch: bool = False
    label_noise: float = 0.0
    expert_budget: int | None = None
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    lr: float = 1e-3
    batch_size: int = 256
    eval_episodes: int = 100
    eval_policy: str = "mode"
    seeds: int = 1
    sweep: tuple = ()
    tensorboard: bool = False  # mirror metrics.jsonl into TensorBoard event files (RUN_DIR/tb)
    vary_eval: tuple = ()  # ((name, values), ...): also evaluate over this grid of env parameters at the end

    def __post_init__(self):
        object.__setattr__(self, "vary_eval", parse_vary(self.vary_eval, "--vary-eval"))
        _activation(self)
        _eval_policy(self)
        _tensorboard(self)
        _members(self, "dagger")
        _positive(self, "steps_per_round", "num_envs", "train_steps", "lr", "batch_size", "eval_episodes")
        _sizes(self, "hidden")
        _non_negative(self, "episodes", "label_noise")
        if self.expert_budget is not None and self.expert_budget <= 0:
            raise UserError(f"--expert-budget must be positive, got {self.expert_budget}")
        if self.label_noise > 1 and self.env not in CONTINUOUS_ENV_IDS:
            raise UserError(f"--label-noise is the fraction of random labels for {self.env}'s "
                            f"discrete actions, so it must be in [0, 1]; got {self.label_noise}")
        if self.steps_per_round % self.num_envs:
            raise UserError(f"--steps-per-round ({self.steps_per_round}) must be a multiple of "
                            f"--num-envs ({self.num_envs})")
        self.betas  # validates the schedule

    @property
    def betas(self) -> list[float]:
        from il_cli.schedules import beta_schedule

        return beta_schedule(self.beta_schedule, self.num_rounds, self.beta_decay, self.beta)

    @property
    def rounds(self) -> int:
        return len(self.betas)


RLHF_METHODS = ("ppo", "dpo")


@dataclass(frozen=True, kw_only=True)
class RLHFConfig:
    """RLHF's three steps on a control task: SFT, a reward model from K-way rankings
    (eq. 24.12), PPO with a KL penalty to SFT and a pretraining term (eq. 24.13–24.14)."""

    env: str = "CartPole-v1"
    seed: int = 0
    expert: str | None = None  # the demonstrator, made imperfect by demo_noise
    sft: str | None = None  # an existing bc run to use as π_SFT (stage 1 skipped)
    method: str = "ppo"  # ppo: a reward model, then PPO-ptx against it; dpo: the policy fitted to the rankings
    pretrain_data: str | None = None  # D_pretrain of the ptx term (default: the SFT demonstrations)
    demo_episodes: int = 5
    demo_noise: float = 0.3  # the demonstrator takes a uniformly random action with this probability
    sft_steps: int = 2000
    sft_lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    batch_size: int = 256
    num_prompts: int = 512  # start states x, each with k responses
    k: int = 4
    segment_length: int = 100  # L steps per response
    human_beta: float = 1.0  # Plackett–Luce rationality of the simulated human (per unit of return)
    human_error: float = 0.0  # probability that a ranking is a random order
    holdout_frac: float = 0.1  # fraction of prompts held out to measure ranking accuracy
    rm_hidden: tuple[int, ...] = (64, 64)
    rm_steps: int = 500
    rm_lr: float = 1e-3
    rm_batch: int = 32  # rankings per step
    kl_coef: float = 0.02  # β of the KL penalty (PPO, its initial value under kl_target) or of DPO's loss
    kl_target: float = 0.0  # > 0: Ziegler et al.'s adaptive β, steering the KL to this value
    ptx_coef: float = 0.0  # γ of the pretraining term
    iterations: int = 1  # rank the current policy's responses and refit this many times
    dpo_steps: int = 2000  # --method dpo: Adam steps on the rankings
    num_envs: int = 32
    num_steps: int = 64
    total_timesteps: int = 131_072
    num_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    eval_episodes: int = 100
    eval_policy: str = "sample"  # RLHF policies are stochastic; the KL is to a stochastic π_SFT
    num_chunks: int = 8
    seeds: int = 1
    sweep: tuple = ()
    tensorboard: bool = False

    def __post_init__(self):
        _activation(self)
        _eval_policy(self)
        _tensorboard(self)
        _members(self, "rlhf")
        _positive(self, "demo_episodes", "sft_steps", "sft_lr", "batch_size", "num_prompts", "segment_length",
                  "rm_steps", "rm_lr", "rm_batch", "num_envs", "num_steps", "total_timesteps", "num_epochs",
                  "num_minibatches", "lr", "eval_episodes", "num_chunks")
        _positive(self, "iterations", "dpo_steps")
        _sizes(self, "hidden", "rm_hidden")
        if self.method not in RLHF_METHODS:
            raise UserError(f"--method must be one of {', '.join(RLHF_METHODS)}, got '{self.method}'")
        if self.k < 2:
            raise UserError(f"--k must be at least 2 (a ranking of K responses), got {self.k}")
        if self.steps % self.iterations:
            raise UserError(f"--iterations {self.iterations} must divide the {self.steps} "
                            f"{'PPO updates' if self.method == 'ppo' else 'DPO steps'}")
        if self.method == "dpo" and self.kl_coef <= 0:
            raise UserError("--kl-coef (DPO's β) must be positive with --method dpo")
        _non_negative(self, "kl_coef", "kl_target", "ptx_coef", "human_beta")
        _in_unit_interval(self, "demo_noise", "human_error", "gamma", "gae_lambda", "clip_eps")
        _in_unit_interval(self, "holdout_frac", open_right=True)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise UserError(f"num_envs*num_steps ({self.num_envs * self.num_steps}) must be "
                            f"divisible by num_minibatches ({self.num_minibatches})")

    @property
    def steps(self) -> int:
        """Stage 3's steps: PPO updates, or DPO's Adam steps."""
        return self.ppo().num_updates if self.method == "ppo" else self.dpo_steps

    def ppo(self) -> PPOConfig:
        """The PPO of stage 3, with this run's architecture and PPO options."""
        names = ("env", "seed", "num_envs", "num_steps", "total_timesteps", "num_epochs", "num_minibatches",
                 "lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm", "hidden",
                 "activation", "eval_episodes", "eval_policy", "num_chunks")
        return PPOConfig(anneal_lr=False, seeds=1, **{n: getattr(self, n) for n in names})


TEXT_TASK = "text"  # the `env` of `il rlhf --task text` runs: il_cli.text.task's language task


@dataclass(frozen=True, kw_only=True)
class TextRLHFConfig:
    """InstructGPT in miniature (`il rlhf --task text`): a tiny transformer pretrained on a
    corpus, SFT on a noisy writer's answers, a reward model from K-way rankings (eq. 24.12) and
    PPO on the tokens with the per-token KL penalty and the ptx term (eq. 24.13–24.14), or DPO."""

    env: str = TEXT_TASK
    task: str = "text"
    seed: int = 0
    method: str = "ppo"
    num_layers: int = 2
    d_model: int = 64
    num_heads: int = 4
    rm_d_model: int = 64  # the reward model's (and value function's) width; small: over-optimisation
    corpus_size: int = 8192  # rows of D_pretrain
    pretrain_steps: int = 1500
    pretrain_lr: float = 3e-3
    batch_size: int = 64
    sft_examples: int = 1024  # demonstrations by the noisy writer
    demo_noise: float = 0.5  # probability that a demonstrated answer has a mistake
    sft_steps: int = 300
    sft_lr: float = 1e-3
    num_prompts: int = 256  # prompts whose k answers are ranked
    k: int = 4
    human: bool = False  # a person ranks the answers in the terminal
    rankings: str | None = None  # --human: the .npz the person's rankings are saved to (and resumed from)
    human_beta: float = 5.0  # Plackett–Luce rationality of the simulated ranker, per unit of gold score
    human_error: float = 0.0
    holdout_frac: float = 0.1
    rm_steps: int = 500
    rm_lr: float = 1e-3
    rm_batch: int = 32
    kl_coef: float = 0.1
    ptx_coef: float = 0.5
    dpo_steps: int = 100  # --method dpo: Adam steps on the rankings (more overfit them: KL 5.5 and no gain at 500)
    updates: int = 120  # PPO updates
    rollout_prompts: int = 64  # answers sampled per PPO update
    num_epochs: int = 4
    num_minibatches: int = 2
    lr: float = 1e-4
    clip_eps: float = 0.2
    vf_coef: float = 0.5
    gae_lambda: float = 0.95
    max_grad_norm: float = 1.0
    eval_prompts: int = 512  # held-out prompts
    num_chunks: int = 6
    seeds: int = 1
    sweep: tuple = ()
    tensorboard: bool = False

    def __post_init__(self):
        _tensorboard(self)
        _members(self, "rlhf-text")
        _positive(self, "num_layers", "d_model", "num_heads", "rm_d_model", "corpus_size", "pretrain_steps",
                  "pretrain_lr", "batch_size", "sft_examples", "sft_steps", "sft_lr", "num_prompts", "rm_steps",
                  "rm_lr", "rm_batch", "dpo_steps", "updates", "rollout_prompts", "num_epochs", "num_minibatches",
                  "lr", "vf_coef", "max_grad_norm", "eval_prompts", "num_chunks")
        if self.method not in RLHF_METHODS:
            raise UserError(f"--method must be one of {', '.join(RLHF_METHODS)}, got '{self.method}'")
        if self.k < 2:
            raise UserError(f"--k must be at least 2 (a ranking of K answers), got {self.k}")
        if self.human and self.k > 9:
            raise UserError(f"--k {self.k}: a person ranks 2 to 9 answers per prompt (one digit each)")
        for width in ("d_model", "rm_d_model"):
            if getattr(self, width) % self.num_heads:
                raise UserError(f"{option(self, width)} {getattr(self, width)} must be a multiple of "
                                f"{option(self, 'num_heads')} {self.num_heads}")
        if self.rollout_prompts % self.num_minibatches:
            raise UserError(f"{option(self, 'rollout_prompts')} {self.rollout_prompts} must be divisible by "
                            f"{option(self, 'num_minibatches')} ({self.num_minibatches})")
        if self.method == "dpo" and self.kl_coef <= 0:
            raise UserError("--kl-coef (DPO's β) must be positive with --method dpo")
        _non_negative(self, "kl_coef", "ptx_coef", "human_beta")
        _in_unit_interval(self, "demo_noise", "human_error", "gae_lambda", "clip_eps")
        _in_unit_interval(self, "holdout_frac", open_right=True)
        if self.human and self.seeds * math.prod(len(v) for _, v in self.sweep) > 1:
            raise UserError("--human: a person ranks the answers of one member; drop --seeds and --sweep")
        if self.human and not self.rankings:
            raise UserError("--human needs --rankings FILE.npz: every ranking is saved there as it is typed")
        if self.rankings and not self.human and not Path(self.rankings).is_file():
            raise UserError(f"--rankings {self.rankings}: no such file (add --human to rank answers into it)")

    @property
    def steps(self) -> int:
        """Stage 3's steps: PPO updates, or DPO's Adam steps."""
        return self.updates if self.method == "ppo" else self.dpo_steps


@dataclass(frozen=True, kw_only=True)
class CompoundingConfig:
    """Theorem 24.1 measured: BC's and DAgger's return gaps against the horizon H, at equal
    budgets of expert labels, with ε on the expert's and on the learner's states."""

    env: str = "Rail-v0"
    seed: int = 0
    expert: str | None = None
    horizons: tuple[int, ...] = ()  # () = the environment's default (DEFAULT_HORIZONS)
    demo_episodes: tuple[int, ...] = (4,)  # --demos: expert episodes for BC; DAgger gets as many expert labels
    rounds: int = 4  # DAgger rounds, β = 1 in the first and 0 after (Ross et al.'s β_i = I(i = 1))
    train_steps: int = 1000  # BC's gradient steps; DAgger's after each round
    batch_size: int = 128
    lr: float = 3e-3
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    eval_episodes: int = 256
    eval_policy: str = "mode"
    seeds: int = 16
    sweep: tuple = ()

    def __post_init__(self):
        _activation(self)
        _eval_policy(self)
        _members(self, "compounding")
        _positive(self, "rounds", "train_steps", "batch_size", "lr", "eval_episodes")
        _sizes(self, "hidden")
        if not self.horizons:
            object.__setattr__(self, "horizons", DEFAULT_HORIZONS.get(self.env, DEFAULT_HORIZONS[None]))
        if len(self.horizons) < 2 or min(self.horizons) < self.rounds:
            raise UserError(f"--horizons needs at least two horizons of at least --rounds ({self.rounds}) "
                            f"steps to fit a slope, got {','.join(map(str, self.horizons))}")
        if not self.demo_episodes or min(self.demo_episodes) <= 0:
            raise UserError(f"--demos must be positive numbers of episodes, got {','.join(map(str, self.demo_episodes))}")


DEFAULT_HORIZONS = {"Rail-v0": (16, 32, 64, 128, 256), None: (50, 100, 200, 300, 500)}


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Evaluation of a run's saved policy."""

    run: str
    episodes: int | None = None  # None: the run's own eval_episodes
    seed: int | None = None  # None: the run's own seed
    eval_policy: str | None = None  # None: the run's own eval_policy
    stage: str | None = None  # the policy of an earlier stage (rlhf: sft) instead of the final one
    member: int | None = None  # None: every member of the run
    gif: str | None = None
    gif_frames: int = 200
    vary: tuple = ()  # ((name, (v1, v2, ...)), ...): a grid of environment parameters
    others: tuple = ()  # more runs, evaluated with `run` over the --vary grid on the same keys
    out: str | None = None  # where vary.json and vary.png go (default: the first run's directory)

    def __post_init__(self):
        _positive(self, "gif_frames")
        object.__setattr__(self, "vary", parse_vary(self.vary))
        if self.others and not self.vary:
            raise UserError("several runs are compared over a --vary grid; give --vary NAME=v1,v2,... "
                            "or evaluate one run at a time")
        if self.vary and (self.member is not None or self.gif or self.stage):
            raise UserError("--vary evaluates every member's final policy; drop --member, --stage and --gif")
        if self.episodes is not None:
            _positive(self, "episodes")
        if self.eval_policy is not None:
            _eval_policy(self)
        if self.member is not None and self.member < 0:
            raise UserError(f"--member must be non-negative, got {self.member}")


def parse_vary(specs, flag: str = "--vary") -> tuple:
    """(("length", (0.25, 0.5, ...)), ...) from `--vary NAME=v1,v2,...` or `NAME=lo:hi:n` (n
    values from lo to hi, ends included); already parsed pairs pass through. `flag` is the
    option the specs came from (--vary, --vary-eval), as the messages name it."""
    grid = []
    for spec in specs:
        if not isinstance(spec, str):
            grid.append((spec[0], tuple(float(v) for v in spec[1])))
            continue
        name, _, rhs = spec.partition("=")
        try:
            if ":" in rhs:
                lo, hi, n = rhs.split(":")
                if int(n) < 1:
                    raise ValueError
                values = tuple(float(v) for v in np.linspace(float(lo), float(hi), int(n)))
            else:
                values = tuple(float(v) for v in rhs.split(","))
        except ValueError:
            raise UserError(f"{flag} must be NAME=v1,v2,... or NAME=lo:hi:n with numbers, got '{spec}'") from None
        if not name or not all(np.isfinite(values)):
            raise UserError(f"{flag} must be NAME=v1,v2,... or NAME=lo:hi:n with finite numbers, got '{spec}'")
        grid.append((name, values))
    if len({name for name, _ in grid}) < len(grid):
        raise UserError(f"{flag} names a parameter twice; put all its values in one list")
    return tuple(grid)


def fields_of(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def _coerce(cls, name, value):
    """Turn TOML/JSON values into the field's type (lists into tuples)."""
    if isinstance(value, list):
        return tuple(value)
    f = fields_of(cls)[name]
    if f.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_type(cls, name: str, value, where: str):
    """UserError unless a recipe's `value` has the type of `cls`'s field `name` (an int for a
    float is fine; tables, booleans for numbers and strings for numbers are not)."""
    import types
    import typing

    def fits(kind, v) -> bool:
        if kind is float:
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        if kind is int:
            return isinstance(v, int) and not isinstance(v, bool)
        if kind in (str, bool):
            return isinstance(v, kind)
        if kind is tuple:  # sweep / vary lists: "key=v1,v2" strings or [key, [values]] pairs
            return isinstance(v, list) and all(
                isinstance(x, str) or (isinstance(x, list) and len(x) == 2 and isinstance(x[0], str)
                                       and isinstance(x[1], list) and all(fits(float, y) for y in x[1])) for x in v)
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if origin in (typing.Union, types.UnionType):
            return any(fits(a, v) for a in args if a is not type(None))
        if origin is tuple:
            return isinstance(v, list) and all(fits(args[0], x) for x in v)
        return True

    kind = fields_of(cls)[name].type
    if not fits(kind, value):
        shown = getattr(kind, "__name__", str(kind))
        raise UserError(f"{where}: '{name}' must be of type {shown}, got {value!r}")


def resolve_recipe_path(recipe: str) -> Path:
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = RECIPE_DIR / f"{recipe.removesuffix('.toml')}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))
    raise UserError(f"recipe '{recipe}' not found{suggest(path.stem, names)}; "
                    f"shipped recipes: {', '.join(names)}")


def load_recipe(recipe: str, command: str, cls) -> dict:
    """The keys of a recipe that apply to `command`; unknown keys are a UserError."""
    path = resolve_recipe_path(recipe)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe {path} is not valid TOML: {exc}") from None
    known = fields_of(cls)
    values = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in COMMANDS:
                raise UserError(f"recipe {path}: unknown section [{key}]{suggest(key, COMMANDS)}")
            if key == command:
                for sub_key, sub_value in value.items():
                    name = sub_key.replace("-", "_")
                    if name not in known:
                        raise UserError(f"recipe {path}: unknown key '{sub_key}' in [{key}]"
                                        f"{suggest(name, known)}")
                    _check_type(cls, name, sub_value, f"recipe {path} [{key}]")
                    values[name] = _coerce(cls, name, sub_value)
            continue
        name = key.replace("-", "_")
        if name in known:
            _check_type(cls, name, value, f"recipe {path}")
            values[name] = _coerce(cls, name, value)
        elif not any(name in fields_of(c) for c in COMMANDS.values()):
            all_keys = set().union(*(fields_of(c) for c in COMMANDS.values()))
            raise UserError(f"recipe {path}: unknown key '{key}'{suggest(name, all_keys)}")
    return values


def build_config(cls, command: str, recipe: str | None = None, **flags):
    """defaults < recipe < flags (flags that are None were not given)."""
    values = load_recipe(recipe, command, cls) if recipe else {}
    values.update({k: _coerce(cls, k, v) for k, v in flags.items() if v is not None})
    for name, value in values.items():  # counts beyond int32 only overflow (or hang) later
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**31:
                raise UserError(f"{option(cls, name)} must be below 2^31, got {v}")
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"{option(cls, name)} must be a finite number, got {v}")
    if "env" in values:
        values["env"] = resolve_env_id(values["env"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise UserError(str(exc)) from None


def to_json(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_json(cls, data: dict):
    known = fields_of(cls)
    return cls(**{k: _coerce(cls, k, v) for k, v in data.items() if k in known})


INT_LIST_EXAMPLES = {"hidden": "64,64", "horizons": "50,100,200", "demos": "1,2,5,10"}


def parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """'64,64' -> (64, 64)."""
    if text is None:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        example = INT_LIST_EXAMPLES.get(what, "1,2,3")
        raise UserError(f"--{what} must be comma-separated integers like {example}, got '{text}'") from None
    if any(v <= 0 for v in values):
        raise UserError(f"--{what} sizes must be positive, got '{text}'")
    return values


COMMANDS = {"expert": PPOConfig, "collect": CollectConfig, "bc": BCConfig, "dagger": DAggerConfig,
            "prefs": PrefsConfig, "rlhf": RLHFConfig, "compounding": CompoundingConfig}
