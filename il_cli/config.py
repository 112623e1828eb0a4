"""Frozen, keyword-only configs, one per command, composed of shared parts.

Every field is declared once (il_cli.options.opt): default, help, flag, traced or static,
check. il_cli.recipe builds a config from defaults < `--recipe` < command-line flags and
writes and reads it as `config.json`. This module does not import JAX.
"""

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from il_cli.envs import EXACT_ENV_IDS, is_continuous
from il_cli.errors import UserError
from il_cli.options import (
    Config,
    at_least,
    choice,
    flag_of,
    like,
    non_negative,
    opt,
    optional,
    positive,
    sizes,
    unit,
    unit_open,
)

MAX_MEMBERS = 65_536  # members of one run (seeds × sweep cells)
EVAL_POLICIES = {"mode": "greedy actions", "sample": "actions drawn from π̂"}
ACTIVATIONS = ("tanh", "relu")


# --- parts ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Base(Config):
    """The environment and the root seed: every command has them."""

    panel = "Run"  # where --help lists a part's options (a command's own: first, ungrouped)
    command: ClassVar[str]  # the command (and task) the config is for, as messages name it
    program_sweeps: ClassVar[bool] = True  # a sweep over a count or shape runs one program per value

    env: str = opt("CartPole-v1", "gymnax id or alias (CartPole, Pendulum, Breakout, ...).", flag="--env", short="-e")
    seed: int = opt(0, "Root PRNG seed; the same seed gives the same run.")


@dataclass(frozen=True, kw_only=True)
class Members(Base):
    """Seeds and a hyperparameter grid, trained as one run (il_cli.sweep); TensorBoard."""

    panel = "Run"

    seeds: int = opt(1, "Members with seeds seed … seed+N−1, trained as one vmapped program.", check=positive)
    sweep: tuple = opt((), "key=v1,v2,...: a grid over a hyperparameter (repeat for a cartesian product); each "
                           "cell runs --seeds members. Floats (lr=1e-3,3e-4) run in one vmapped program; counts and "
                           "shapes (hidden=64x64,256x256, num_envs=8,32) one program per value, in RUN/cells/.")
    tensorboard: bool = opt(False, "Also write every logged metric as TensorBoard event files in RUN_DIR/tb "
                                   "(needs pip install -e '.[tb]').", flag="--tensorboard/--no-tensorboard")

    def validate(self):
        """Validate `seeds` and normalise `sweep` to ((key, (v1, v2, ...)), ...); a recipe may
        give it as a list of "key=v1,v2" strings, like the command line."""
        from il_cli.sweep import parse_sweep, spec, split_grid

        if self.seeds > MAX_MEMBERS:
            raise UserError(f"--seeds {self.seeds}: at most {MAX_MEMBERS} members in one run")
        if not 0 <= self.seed < 2**31 or self.seed + self.seeds > 2**31:
            raise UserError(f"--seed must be in [0, 2^31 − seeds), got {self.seed}")
        grid = parse_sweep([item if isinstance(item, str) else spec(*item) for item in self.sweep], type(self))
        if len({key for key, _ in grid}) < len(grid):
            raise UserError("--sweep names a hyperparameter twice; put all its values in one list")
        self.set(sweep=tuple(grid))
        members = self.seeds * math.prod(len(values) for _, values in grid)
        if members > MAX_MEMBERS:
            raise UserError(f"--seeds × the sweep's cells is {members} members; at most {MAX_MEMBERS} in one run")
        if grid:
            _check_cells(self, grid)
        if getattr(self, "vary_eval", ()) and split_grid(grid)[0]:
            raise UserError("--vary-eval evaluates one program; with a sweep over a count or shape, evaluate "
                            "each program's run: il eval RUN/cells/<cell> --vary ...")
        if self.tensorboard:
            from il_cli.tb import require

            require()

    @property
    def num_members(self) -> int:
        return self.seeds * math.prod(len(values) for _, values in self.sweep)


@dataclass(frozen=True, kw_only=True)
class Expert(Config):
    panel = "Run"
    expert: str | None = opt(None, "Expert run directory (default: the cached expert, trained on first use).")


@dataclass(frozen=True, kw_only=True)
class Evaluation(Config):
    panel = "Evaluation"
    eval_episodes: int = opt(100, "Evaluation episodes.", check=positive)
    eval_policy: str = opt("mode", "Evaluate greedy actions (mode) or actions sampled from π̂ (sample); ε is "
                                   "reported for that policy.", check=choice(*EVAL_POLICIES, what=EVAL_POLICIES))


@dataclass(frozen=True, kw_only=True)
class Network(Config):
    panel = "Network"
    hidden: tuple[int, ...] = opt((64, 64), "Hidden layer sizes, e.g. 64,64.", check=sizes)
    activation: str = opt("tanh", "Hidden units' activation.", check=choice(*ACTIVATIONS))


@dataclass(frozen=True, kw_only=True)
class Fit(Config):
    """Minibatch Adam on a fixed dataset (il_cli.algos.fit)."""

    panel = "Fit"

    lr: float = opt(1e-3, "Adam learning rate.", traced=True, check=positive)
    batch_size: int = opt(256, "Minibatch size.", check=positive)
    num_steps: int = opt(4000, "Gradient steps.", check=positive)
    num_chunks: int = opt(8, "Chunks the steps are run in: metrics, evaluation and a checkpoint after each.",
                          check=positive)


@dataclass(frozen=True, kw_only=True)
class PPOPart(Config):
    """PPO (clipped objective, GAE, value loss, entropy bonus): il_cli.algos.ppo."""

    panel = "PPO"

    num_envs: int = opt(32, "Environments stepped in parallel.", check=positive)
    num_steps: int = opt(64, "Rollout length per PPO update.", check=positive)
    total_timesteps: int = opt(262_144, "Environment steps of PPO training.", check=positive)
    num_epochs: int = opt(4, "PPO epochs over each rollout.", check=positive)
    num_minibatches: int = opt(4, "Minibatches per PPO epoch.", check=positive)
    lr: float = opt(3e-3, "PPO's Adam learning rate.", traced=True, check=positive)
    gamma: float = opt(0.99, "Discount γ.", traced=True, check=unit)
    gae_lambda: float = opt(0.95, "GAE's λ.", traced=True, check=unit)
    clip_eps: float = opt(0.2, "PPO's clip ε.", traced=True, check=unit)
    ent_coef: float = opt(0.01, "Entropy bonus coefficient.", traced=True)
    vf_coef: float = opt(0.5, "Value loss coefficient.", traced=True)
    max_grad_norm: float = opt(0.5, "Global gradient norm clip.", traced=True)
    num_chunks: int = opt(8, "Chunks the updates are run in: metrics, evaluation and a checkpoint after each.",
                          check=positive)

    def validate(self):
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise UserError(f"--num-envs × --num-steps ({self.num_envs * self.num_steps}) must be divisible by "
                            f"--num-minibatches ({self.num_minibatches})")

    @property
    def num_updates(self) -> int:
        return max(1, self.total_timesteps // (self.num_envs * self.num_steps))


TEACHERS = ("oracle", "noisy", "mistake", "skip", "skip-ties", "equal")
STATE_SOURCES = ("expert", "uniform-mix")
PREF_PARAMS = ("q", "policy")
TEACHER_HYPER = ("teacher_beta", "mistake_rate", "teacher_threshold", "teacher_skip_score")


@dataclass(frozen=True, kw_only=True)
class Teacher(Config):
    """The simulated teacher of preferences (il_cli.algos.prefs.teach)."""

    panel = "Teacher"

    state_source: str = opt("uniform-mix", "States the pairs are asked at: the expert's rollouts (expert), or the "
                                           "expert acting with probability ½ and a random action otherwise "
                                           "(uniform-mix).", check=choice(*STATE_SOURCES))
    teacher: str = opt("oracle", "Simulated teacher, labelling from the expert's score log π*(a|s): oracle (the "
                                 "better-scored action) | noisy (B-Pref's Stoc: Boltzmann, --teacher-beta) | mistake "
                                 "(B-Pref's: --mistake-rate of labels flipped) | skip (B-Pref's: no answer when both "
                                 "actions score below --teacher-skip-score) | skip-ties (no answer when the score gap "
                                 "is under --teacher-threshold) | equal (B-Pref's: ½ for such near-ties).",
                       check=choice(*TEACHERS))
    teacher_beta: float = opt(1.0, "Rationality β of the noisy teacher: p(a ≻ b) = σ(β(log π*(a|s) − log π*(b|s))).",
                              traced=True, check=non_negative)
    mistake_rate: float = opt(0.1, "Fraction of the mistake teacher's labels that are flipped.", traced=True,
                              check=unit)
    teacher_threshold: float = opt(0.1, "Score gap (nats) under which the skip-ties teacher does not answer and the "
                                        "equal teacher says ½.", traced=True, check=non_negative)
    teacher_skip_score: float = opt(-3.0, "The skip teacher does not answer when both actions' scores log π*(a|s) "
                                          "are below this (nats).", traced=True)


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PPOConfig(PPOPart, Network, Evaluation, Members):
    """PPO experts (`il expert`)."""

    command = "expert"
    activation: str = like(Network, "activation", "relu")
    anneal_lr: bool = opt(True, "Anneal the learning rate linearly to 0 over training.",
                          flag="--anneal-lr/--no-anneal-lr")
    reward_scale: float = opt(1.0, "Multiply the environment's rewards by this.", traced=True, check=positive)
    exact: bool = opt(False, f"Write the environment's exact expert instead of training PPO ({', '.join(EXACT_ENV_IDS)}; "
                             "Rail's always is): il_cli.exact.", flag="--exact/--ppo")
    reward: str | None = opt(None, "A finished `il airl` or `il gail` run whose learned reward PPO maximises instead of "
                                   "the environment's: AIRL's g(s), GAIL's −log(1 − D) (member 0's; with the absorbing "
                                   "state's return on terminal steps if the run had one).")
    env_param: tuple = opt((), "NAME=VALUE: train and evaluate with the environment's parameter NAME set to VALUE "
                               "(changed dynamics; the names of `il eval --vary`; repeat for several).",
                           flag="--env-param")
    cache: bool = opt(False, "Make this run the cached expert of its environment, the one `il bc`, `il dagger`, ... "
                             "use without --expert (a finished run of one member becomes it anyway when none is "
                             "cached).", flag="--cache/--no-cache")

    def validate(self):
        if self.exact and self.env not in EXACT_ENV_IDS:
            raise UserError(f"--exact: {self.env} has no exact expert (these do: {', '.join(EXACT_ENV_IDS)})")
        if self.cache and (self.seeds > 1 or self.sweep):
            raise UserError("--cache: the cached expert is one policy; give one member (no --seeds, no --sweep)")
        if self.reward and (self.exact or self.cache):
            raise UserError("--reward trains PPO on a learned reward: not with --exact or --cache")
        grid = parse_vary(self.env_param, "--env-param")
        if any(len(values) != 1 for _, values in grid):
            raise UserError("--env-param takes one value per parameter: NAME=VALUE")
        if grid and self.cache:
            raise UserError("--env-param trains under changed dynamics: not with --cache (the cached expert acts in "
                            "the environment as it is)")
        self.set(env_param=grid)


def ppo_of(cfg, **fixed) -> PPOConfig:
    """The PPO a command runs inside it (RLHF's stage 3, GAIL's and AIRL's policy): one member with
    the command's PPO options, environment, seed, architecture and evaluation, and `fixed`."""
    names = [f.name for f in dataclasses.fields(PPOPart)] + ["env", "seed", "hidden", "activation",
                                                             "eval_episodes", "eval_policy"]
    return PPOConfig(seeds=1, **{n: getattr(cfg, n) for n in names}, **fixed)


ADVERSARIAL_REWARDS = {"gail": ("−log(1 − D)", "Ho & Ermon's: positive on every step"),  # (formula, what it is)
                       "logit": ("log D − log(1 − D)", "AIRL's f − log π, either sign"),
                       "log-d": ("log D", "negative on every step")}


@dataclass(frozen=True, kw_only=True)
class Discriminator(Config):
    """The discriminator of adversarial imitation (il_cli.algos.adversarial)."""

    panel = "Discriminator"

    disc_hidden: tuple[int, ...] = opt((64, 64), "Hidden layer sizes of the discriminator (AIRL: of g and h).",
                                       check=sizes)
    disc_lr: float = opt(1e-3, "The discriminator's Adam learning rate.", traced=True, check=positive)
    disc_steps: int = opt(5, "Discriminator minibatch steps after each PPO rollout.", check=positive)
    disc_batch: int = opt(256, "Expert and learner transitions in each discriminator minibatch (each).",
                          check=positive)
    grad_penalty: float = opt(0.0, "λ of the zero-centred gradient penalty λ E[‖∇_s logit D‖²] on expert and learner "
                                   "states (Mescheder et al. 2018's R1 + R2).", traced=True, check=non_negative)
    reward_transform: str = opt("gail", "The policy's reward from D: " + "; ".join(
        f"{k}: {formula}, {what}" for k, (formula, what) in ADVERSARIAL_REWARDS.items()) + ".",
                                check=choice(*ADVERSARIAL_REWARDS))
    absorbing: bool = opt(True, "DAC's absorbing state (Kostrikov et al. 2019): a terminated episode continues in "
                                "s_abs, which the discriminator also judges, so no reward sign teaches to live "
                                "long or die early (--no-absorbing: the survival bias, for comparison).",
                          flag="--absorbing/--no-absorbing")


@dataclass(frozen=True, kw_only=True)
class GAILConfig(Discriminator, PPOPart, Network, Evaluation, Expert, Members):
    """GAIL (`il gail`): PPO on a discriminator's reward (Ho & Ermon 2016)."""

    command = "gail"
    demos: str | None = opt(None, "Dataset from `il collect` (default: collect --episodes from the expert).")
    episodes: int = opt(10, "Expert episodes to collect when no --demos.", check=positive)
    activation: str = like(Network, "activation", "relu")
    anneal_lr: bool = like(PPOConfig, "anneal_lr", True)

    def ppo(self) -> PPOConfig:
        """The PPO of the policy, with this run's architecture and PPO options."""
        return ppo_of(self, anneal_lr=self.anneal_lr)


@dataclass(frozen=True, kw_only=True)
class AIRLConfig(GAILConfig):
    """AIRL (`il airl`): D = exp f / (exp f + π), f = g + γh(s') − h(s) (Fu, Luo & Levine 2018)."""

    command = "airl"
    reward_transform: str = like(Discriminator, "reward_transform", "logit")
    state_only: bool = opt(True, "g(s), the disentangled reward that transfers to new dynamics (--state-action: "
                                 "g(s, a)).", flag="--state-only/--state-action")


@dataclass(frozen=True, kw_only=True)
class CollectConfig(Teacher, Expert, Base):
    """Expert demonstrations, or with `prefs` a preference dataset, on vectorized environments."""

    command = "collect"
    episodes: int = opt(100, "Episodes to record.", check=positive)
    num_envs: int = opt(1024, "Environments stepped in parallel.", check=positive)
    prefs: int = opt(0, "Write N preference pairs (s, a, b, P(a ≻ b)) judged by a simulated teacher into "
                        "run/data/prefs.npz instead of demonstrations.", check=non_negative)
    minari: str | None = opt(None, "Also write the demonstrations as this Minari dataset (like cartpole/il-expert-v0; "
                                   "as `il data export`).")

    def validate(self):
        if self.minari and self.prefs:
            raise UserError("--minari: preference pairs have no Minari form; it writes demonstrations")


@dataclass(frozen=True, kw_only=True)
class PrefsConfig(Fit, Network, Evaluation, Teacher, Expert, Members):
    """Learning from state-action preferences: Q by eq. 24.11, π ∝ exp(Q/α)."""

    command = "prefs"
    prefs_file: str | None = opt(None, "Preferences from a file (`il collect --prefs`, or your own in its format) "
                                       "instead of a simulated teacher.")
    num_prefs: int = opt(5000, "Preference pairs (s, a, b) put to the teacher.", check=positive)
    param: str = opt("q", "q: learn Q(s,a), act with π ∝ exp(Q/α); policy: learn log π directly (CPL / DPO without "
                          "a reference).", check=choice(*PREF_PARAMS))
    temperature: float = opt(1.0, "α in π ∝ exp(Q/α) (with --param policy: the scale of α log π in the loss).",
                             traced=True, check=positive)
    batch_size: int = like(Fit, "batch_size", 256, "Minibatch size (pairs).")
    holdout_frac: float = opt(0.1, "Fraction of whole environment streams held out to measure accuracy and ε "
                                   "(0: none).", check=unit_open)

    def validate(self):
        swept = [key for key, _ in self.sweep if key in TEACHER_HYPER]
        if self.prefs_file and swept:
            raise UserError(f"--sweep {swept[0]}: the labels come from --prefs-file, so there is "
                            f"no simulated teacher to vary")


VARY_EVAL = ("NAME=v1,v2,... or NAME=lo:hi:n: at the end, also evaluate over this grid of an environment "
             "parameter (as il eval --vary).")


@dataclass(frozen=True, kw_only=True)
class BCConfig(Fit, Network, Evaluation, Expert, Members):
    """Behavioral cloning by maximum likelihood (eq. 24.2)."""

    command = "bc"
    demos: str | None = opt(None, "Dataset from `il collect` (default: collect --episodes).")
    episodes: int = opt(20, "Expert episodes to collect when no --demos.", check=positive)
    holdout_frac: float = opt(0.1, "Fraction of whole demonstration episodes held out to measure ε and accuracy "
                                   "(0: none).", check=unit_open)
    vary_eval: tuple = opt((), VARY_EVAL, flag="--vary-eval")

    def validate(self):
        self.set(vary_eval=parse_vary(self.vary_eval, "--vary-eval"))


@dataclass(frozen=True, kw_only=True)
class DAggerConfig(Network, Evaluation, Expert, Members):
    """DAgger (Algorithm 1): N rounds of m visited states, each labelled by the expert."""

    command = "dagger"
    demos: str | None = opt(None, "Dataset seeding D.")
    episodes: int = opt(0, "Expert episodes collected to seed D.", check=non_negative)
    num_rounds: int | None = opt(None, "Rounds N (default 10, or the length of an explicit schedule).",
                                 flag="--rounds", check=optional(positive))
    steps_per_round: int = opt(2000, "States m visited and labelled per round.", check=positive)
    num_envs: int = opt(8, "Environments stepped in parallel.", check=positive)
    beta_schedule: str = opt("linear", "linear | exponential | step | constant | a list like 1,0.5,0.")
    beta_decay: float = opt(0.5, "p of the exponential schedule β_i = p^(i-1).", traced=True)
    beta: float = opt(0.5, "β of the constant schedule.", traced=True)
    train_steps: int = opt(500, "Gradient steps on D after each round.", check=positive)
    retrain_from_scratch: bool = opt(False, "Refit π̂ from a fresh initialization each round (default: warm "
                                            "start).", flag="--retrain-from-scratch/--warm-start")
    label_noise: float = opt(0.0, "Noisy supervisor: fraction of random labels (discrete) or Gaussian label noise "
                                  "scale (continuous).", traced=True, check=non_negative)
    expert_budget: int | None = opt(None, "Cap on expert queries: every state the expert labels or acts in, "
                                          "demonstrations included. Once spent, β is 0.", check=optional(positive))
    lr: float = like(Fit, "lr", 1e-3)
    batch_size: int = like(Fit, "batch_size", 256)
    vary_eval: tuple = opt((), VARY_EVAL, flag="--vary-eval")

    def validate(self):
        self.set(vary_eval=parse_vary(self.vary_eval, "--vary-eval"))
        if self.label_noise > 1 and not is_continuous(self.env):
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
class Ranking(Config):
    """RLHF's labels and what is fitted to them, in both tasks: SFT, K-way rankings of a
    simulated (or a real) human, the reward model (eq. 24.12), the KL and ptx terms, DPO."""

    panel = "Rankings and the reward model"

    method: str = opt("ppo", "ppo: a reward model, then PPO with the KL penalty and ptx term; dpo: the policy "
                             "fitted to the rankings (no reward model).", check=choice(*RLHF_METHODS))
    demo_noise: float = opt(0.3, "Probability that the demonstrator acts at random (an imperfect SFT).",
                            traced=True, check=unit)
    sft_steps: int = opt(2000, "SFT gradient steps.", check=positive)
    sft_lr: float = opt(1e-3, "SFT's Adam learning rate.", traced=True, check=positive)
    batch_size: int = opt(256, "Minibatch size of SFT (and of the ptx term).", check=positive)
    num_prompts: int = opt(512, "Prompts (start states, or instructions with --task text) ranked.", check=positive)
    k: int = opt(4, "Responses ranked per prompt (K).", flag="--k", check=at_least(2, " (a ranking of K responses)"))
    human_beta: float = opt(1.0, "Plackett–Luce rationality of the simulated human, per unit of return (of gold "
                                 "score with --task text).", traced=True, check=non_negative)
    human_error: float = opt(0.0, "Probability that a ranking is a random order.", traced=True, check=unit)
    holdout_frac: float = opt(0.1, "Fraction of the ranked prompts held out to measure the reward model's (or "
                                   "DPO's) ranking accuracy (0: none, measured on training data).", check=unit_open)
    rm_steps: int = opt(500, "Reward-model gradient steps.", check=positive)
    rm_lr: float = opt(1e-3, "Reward model's Adam learning rate.", traced=True, check=positive)
    rm_batch: int = opt(32, "Rankings per reward-model (or DPO) step.", check=positive)
    kl_coef: float = opt(0.02, "β: weight of the KL penalty β log(π_RL/π_SFT), paid per step (per token with --task "
                               "text); its start value under --kl-target; DPO's β with --method dpo.", traced=True,
                         check=non_negative)
    ptx_coef: float = opt(0.0, "γ: weight of the pretraining log-likelihood (of the SFT demonstrations unless "
                               "--pretrain-data; of the corpus with --task text).", traced=True, check=non_negative)
    dpo_steps: int = opt(2000, "--method dpo: Adam steps on the rankings.", check=positive)

    def validate(self):
        if self.method == "dpo" and self.kl_coef <= 0:
            raise UserError("--kl-coef (DPO's β) must be positive with --method dpo")


@dataclass(frozen=True, kw_only=True)
class RLHFConfig(PPOPart, Network, Evaluation, Ranking, Expert, Members):
    """RLHF's three steps on a control task: SFT, a reward model from K-way rankings
    (eq. 24.12), PPO with a KL penalty to SFT and a pretraining term (eq. 24.13–24.14)."""

    command = "rlhf"
    sft: str | None = opt(None, "An `il bc` run to use as π_SFT (stage 1 skipped).")
    pretrain_data: str | None = opt(None, "A dataset (`il collect`) to use as D_pretrain of the ptx term.")
    demo_episodes: int = opt(5, "Demonstration episodes for SFT.", check=positive)
    segment_length: int = opt(100, "Steps L per response.", check=positive)
    rm_hidden: tuple[int, ...] = opt((64, 64), "Hidden layer sizes of the reward model r_θ(s, a).", check=sizes)
    kl_target: float = opt(0.0, "Adapt β after every PPO update to steer KL(π_RL ‖ π_SFT), in nats per step (the "
                                "mean over the policy's states), to this value (Ziegler et al.); 0: β fixed.",
                           traced=True, check=non_negative)
    iterations: int = opt(1, "Rank the current policy's responses and refit the reward model (or DPO) this many "
                             "times in all.", check=positive)
    total_timesteps: int = like(PPOPart, "total_timesteps", 131_072)
    lr: float = like(PPOPart, "lr", 3e-4, "PPO's learning rate (DPO's with --method dpo).")
    ent_coef: float = like(PPOPart, "ent_coef", 0.0)
    eval_policy: str = like(Evaluation, "eval_policy", "sample",
                            "Evaluate greedy actions (mode) or actions sampled from π (sample): RLHF's policies are "
                            "stochastic, and the KL is to a stochastic π_SFT.")

    def validate(self):
        if self.steps % self.iterations:
            raise UserError(f"--iterations {self.iterations} must divide the {self.steps} "
                            f"{'PPO updates' if self.method == 'ppo' else 'DPO steps'}")

    @property
    def steps(self) -> int:
        """Stage 3's steps: PPO updates, or DPO's Adam steps."""
        return self.num_updates if self.method == "ppo" else self.dpo_steps

    def ppo(self) -> PPOConfig:
        """The PPO of stage 3, with this run's architecture and PPO options."""
        return ppo_of(self, anneal_lr=False)


TEXT_TASK = "text"  # the `env` of `il rlhf --task text` runs: il_cli.text.task's language task


@dataclass(frozen=True, kw_only=True)
class TextRLHFConfig(Ranking, Members):
    """InstructGPT in miniature (`il rlhf --task text`): a tiny transformer pretrained on a
    corpus, SFT on a noisy writer's answers, a reward model from K-way rankings (eq. 24.12) and
    PPO on the tokens with the per-token KL penalty and the ptx term (eq. 24.13–24.14), or DPO."""

    command = "rlhf --task text"
    env: str = opt(TEXT_TASK, "The language task of il_cli.text.task.", cli=False)
    task: str = opt("text", "The task (--task).", cli=False)
    num_layers: int = opt(2, "Transformer blocks of the policy and of the reward model.", check=positive)
    d_model: int = opt(64, "The policy transformer's width.", check=positive)
    num_heads: int = opt(4, "Attention heads of every block.", check=positive)
    rm_d_model: int = opt(64, "The reward model's (and value function's) width (small: watch it be over-optimised).",
                          check=positive)
    corpus_size: int = opt(8192, "Rows of the pretraining corpus D_pretrain.", check=positive)
    pretrain_steps: int = opt(1500, "Pretraining steps on the corpus.", check=positive)
    pretrain_lr: float = opt(3e-3, "Pretraining's Adam learning rate.", traced=True, check=positive)
    batch_size: int = like(Ranking, "batch_size", 64)
    sft_examples: int = opt(1024, "Demonstrated answers by the noisy writer, for SFT.", check=positive)
    demo_noise: float = like(Ranking, "demo_noise", 0.5, "Probability that a demonstrated answer has a mistake.")
    sft_steps: int = like(Ranking, "sft_steps", 300)
    num_prompts: int = like(Ranking, "num_prompts", 256)
    human: bool = opt(False, "You rank the answers in the terminal (saved to --rankings after each).",
                      flag="--human")
    rankings: str | None = opt(None, "A rankings .npz of a person's (written by --human, resumed from, or reused).")
    human_beta: float = like(Ranking, "human_beta", 5.0)
    kl_coef: float = like(Ranking, "kl_coef", 0.1)
    ptx_coef: float = like(Ranking, "ptx_coef", 0.5)
    dpo_steps: int = like(Ranking, "dpo_steps", 100)
    updates: int = opt(120, "PPO updates.", check=positive)
    rollout_prompts: int = opt(64, "Answers sampled per PPO update.", check=positive)
    num_epochs: int = like(PPOPart, "num_epochs", 4)
    num_minibatches: int = like(PPOPart, "num_minibatches", 2)
    lr: float = like(PPOPart, "lr", 1e-4, "PPO's learning rate (DPO's with --method dpo).")
    clip_eps: float = like(PPOPart, "clip_eps", 0.2)
    vf_coef: float = like(PPOPart, "vf_coef", 0.5, "Value loss coefficient.")
    gae_lambda: float = like(PPOPart, "gae_lambda", 0.95)
    max_grad_norm: float = opt(1.0, "Global gradient norm clip of PPO.", check=positive)
    eval_prompts: int = opt(512, "Held-out prompts every evaluation answers.", check=positive)
    num_chunks: int = like(PPOPart, "num_chunks", 6)

    def validate(self):
        if self.human and self.k > 9:
            raise UserError(f"--k {self.k}: a person ranks 2 to 9 answers per prompt (one digit each)")
        for width in ("d_model", "rm_d_model"):
            if getattr(self, width) % self.num_heads:
                raise UserError(f"{flag_of(type(self), width)} {getattr(self, width)} must be a multiple of "
                                f"--num-heads {self.num_heads}")
        if self.rollout_prompts % self.num_minibatches:
            raise UserError(f"--rollout-prompts {self.rollout_prompts} must be divisible by "
                            f"--num-minibatches ({self.num_minibatches})")
        if self.human and self.num_members > 1:
            raise UserError("--human: a person ranks the answers of one member; drop --seeds and --sweep")
        if self.human and not self.rankings:
            raise UserError("--human needs --rankings FILE.npz: every ranking is saved there as it is typed")
        if self.rankings:
            self.set(rankings=str(Path(self.rankings).absolute()))
            if not self.human and not Path(self.rankings).is_file():
                raise UserError(f"--rankings {self.rankings}: no such file (add --human to rank answers into it)")

    @property
    def steps(self) -> int:
        """Stage 3's steps: PPO updates, or DPO's Adam steps."""
        return self.updates if self.method == "ppo" else self.dpo_steps


DEFAULT_HORIZONS = {"Rail-v0": (16, 32, 64, 128, 256), None: (50, 100, 200, 300, 500)}


@dataclass(frozen=True, kw_only=True)
class CompoundingConfig(Network, Evaluation, Expert, Members):
    """Theorem 24.1 measured: BC's and DAgger's return gaps against the horizon H, at equal
    budgets of expert labels, with ε on the expert's and on the learner's states."""

    command = "compounding"
    program_sweeps = False  # its program already is its grid (horizons × demonstrations)
    env: str = like(Base, "env", "Rail-v0", "gymnax id or alias; Rail is the worst case of the theorem.")
    seeds: int = like(Members, "seeds", 16, "Seeds per horizon, trained as one vmapped program.")
    horizons: tuple[int, ...] = opt((), "Horizons H (episodes truncated at H), e.g. 50,100,200 (default: Rail's "
                                        "16,32,64,128,256; others' 50,100,200,300,500).", check=sizes)
    demo_episodes: tuple[int, ...] = opt((4,), "Expert episodes for BC, e.g. 1,2,5,10; DAgger gets as many expert "
                                               "labels.", flag="--demos", check=sizes)
    rounds: int = opt(4, "DAgger rounds (β = 1 in the first, 0 after: Ross et al.'s β_i = I(i = 1)).", check=positive)
    train_steps: int = opt(1000, "BC's gradient steps; DAgger's after each round.", check=positive)
    batch_size: int = like(Fit, "batch_size", 128)
    lr: float = like(Fit, "lr", 3e-3, "Learning rate of BC and DAgger.")
    eval_episodes: int = like(Evaluation, "eval_episodes", 256, "Evaluation episodes per seed and horizon.")

    def validate(self):
        if not self.horizons:
            self.set(horizons=DEFAULT_HORIZONS.get(self.env, DEFAULT_HORIZONS[None]))
        if len(self.horizons) < 2 or min(self.horizons) < self.rounds:
            raise UserError(f"--horizons needs at least two horizons of at least --rounds ({self.rounds}) "
                            f"steps to fit a slope, got {','.join(map(str, self.horizons))}")
        if not self.demo_episodes:
            raise UserError("--demos must be positive numbers of episodes, got none")


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
        positive(self.gif_frames, "--gif-frames")
        object.__setattr__(self, "vary", parse_vary(self.vary))
        if self.others and not self.vary:
            raise UserError("several runs are compared over a --vary grid; give --vary NAME=v1,v2,... "
                            "or evaluate one run at a time")
        if self.vary and (self.member is not None or self.gif or self.stage):
            raise UserError("--vary evaluates every member's final policy; drop --member, --stage and --gif")
        optional(positive)(self.episodes, "--episodes")
        optional(choice(*EVAL_POLICIES, what=EVAL_POLICIES))(self.eval_policy, "--eval-policy")
        optional(non_negative)(self.member, "--member")


# --- sweeps -----------------------------------------------------------------------------


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


CONFIGS = {"expert": PPOConfig, "collect": CollectConfig, "bc": BCConfig, "dagger": DAggerConfig,
           "prefs": PrefsConfig, "rlhf": RLHFConfig, "compounding": CompoundingConfig, "gail": GAILConfig,
           "airl": AIRLConfig}  # the configs by command: their recipe sections (il_cli.recipe)
