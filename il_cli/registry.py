"""The commands that make runs, one entry each: its configs, its job, its report and where
its policy lives. The command line (il_cli.cli), the Python entry point (il_cli.run), run
directories, `il eval` and `il runs` read this table instead of naming commands. A new
algorithm is a config, an algos module, a job and one entry here. No JAX, no Typer.
"""

from dataclasses import dataclass, field
from typing import Callable

from il_cli import config as C
from il_cli import results as R
from il_cli.errors import UserError


@dataclass(frozen=True)
class Command:
    name: str
    help: str  # the first line of `il NAME --help`
    configs: dict  # task -> config class; the first is the default (one task: {None: cls})
    job: str  # "module:function", job(cfg, run, ui) -> summary
    title: str  # the result table's title
    rows: Callable  # summary -> the result table's rows (il_cli.results)
    cell_rows: Callable | None = R.sweep_rows  # the rows of a run of several members (None: `rows`)
    policy: tuple = ()  # where a checkpoint keeps the final policy, or () for none
    methods: dict = field(default_factory=dict)  # config "method" -> its policy's path, where it differs
    tasks: dict = field(default_factory=dict)  # config "task" -> its policy's path, where it differs
    stages: dict = field(default_factory=dict)  # earlier stages' policies, by name (`il eval --stage`)
    step_unit: str = "step"  # what a logged step counts
    resumable: bool = True
    after: str | None = None  # "module:function", after(cfg, run, summary, ui) -> summary, once the job is done
    benchmarked: bool = False  # imitates the cached expert and reports normalized_return: a column of il benchmark
    env_recipe: bool = False  # without --recipe, the environment's shipped recipe's [name] table applies

    def config(self, task: str | None = None):
        return self.configs[task if task in self.configs else next(iter(self.configs))]

    def policy_path(self, config: dict) -> list | None:
        """Where the checkpoint of a run of this command with `config` keeps its final policy."""
        path = self.methods.get(config.get("method")) or self.tasks.get(config.get("task")) or self.policy
        return list(path) or None

    def load_job(self):
        return _load(self.job)

    def load_after(self):
        return _load(self.after) if self.after else None


def _load(where: str):
    import importlib

    module, function = where.split(":")
    return getattr(importlib.import_module(module), function)


COMMANDS = {c.name: c for c in (
    Command("expert", "Train a PPO expert (GAE, clipped objective, truncation bootstrapping) and save it as a run.",
            {None: C.PPOConfig}, "il_cli.experts:train_expert", "expert", R.ppo_expert_rows,
            policy=("params", "actor"),
            step_unit="PPO updates", after="il_cli.experts:offer_to_cache"),
    Command("collect", "Record expert demonstrations on vectorized environments into run/data/demos.npz (or, with "
                       "--prefs, a teacher's preferences into run/data/prefs.npz).",
            {None: C.CollectConfig}, "il_cli.jobs.collect:run_collect", "collect", R.collect_rows,
            resumable=False),
    Command("bc", "Behavioral cloning: maximum likelihood of the expert's actions (eq. 24.2), then evaluation.",
            {None: C.BCConfig}, "il_cli.jobs.bc:run_bc", "behavioral cloning", R.bc_rows, policy=("params",),
            step_unit="gradient steps", benchmarked=True),
    Command("dagger", "DAgger: roll out β_i·expert + (1-β_i)·learner, label every visited state with the expert, "
                      "aggregate, retrain.",
            {None: C.DAggerConfig}, "il_cli.jobs.dagger:run_dagger", "DAgger", R.dagger_rows,
            policy=("learner", "params"),
            step_unit="DAgger rounds", benchmarked=True),
    Command("prefs", "Learning from preferences: Q fitted to p(a ≻ b | s) = σ(Q(s,a) − Q(s,b)) (eq. 24.11), acting "
                     "with π ∝ exp(Q/α).",
            {None: C.PrefsConfig}, "il_cli.jobs.prefs:run_prefs", "learning from preferences", R.prefs_rows,
            policy=("params",),
            step_unit="gradient steps", benchmarked=True),
    Command("rlhf", "RLHF: SFT, a reward model from K-way rankings (eq. 24.12), PPO with a KL penalty and a "
                    "pretraining term (eq. 24.13–24.14), or DPO; on a control task or on text.",
            {"control": C.RLHFConfig, "text": C.TextRLHFConfig}, "il_cli.jobs.rlhf:run_rlhf", "RLHF",
            R.rlhf_rows, R.rlhf_cell_rows, ("ppo", "params", "actor"), methods={"dpo": ("dpo", "params")},
            tasks={"text": ("ppo", "params", "policy")}, stages={"sft": ["sft"]}, step_unit="PPO updates"),
    Command("gail", "GAIL: PPO on the reward −log(1 − D(s,a)) of a discriminator of expert vs policy transitions, "
                    "with DAC's absorbing state. Without --recipe, the environment's shipped recipe's [gail] table "
                    "applies (recipes/ENV.toml; Acrobot, Pendulum).",
            {None: C.GAILConfig}, "il_cli.jobs.adversarial:run_adversarial", "GAIL", R.adversarial_rows,
            policy=("params", "actor"), step_unit="PPO updates", benchmarked=True, env_recipe=True),
    Command("airl", "AIRL: D = exp f / (exp f + π), f = g(s) + γh(s') − h(s); PPO on f − log π; g is a reward that "
                    "transfers (il expert --reward). Without --recipe, the environment's shipped recipe's [airl] table "
                    "applies (recipes/ENV.toml; Acrobot, Pendulum).",
            {None: C.AIRLConfig}, "il_cli.jobs.adversarial:run_adversarial", "AIRL", R.adversarial_rows,
            policy=("params", "actor"), step_unit="PPO updates", benchmarked=True, env_recipe=True),
    Command("compounding", "Theorem 24.1 measured: BC's and DAgger's return gaps against H at equal expert labels, "
                           "with ε, H²ε and fitted growth exponents.",
            {None: C.CompoundingConfig}, "il_cli.jobs.compounding:run_compounding",
            "compounding error (Theorem 24.1)", R.compounding_rows, None),
)}

TASKS = {"control": "an environment's episodes are the responses",
         "text": "a tiny transformer's answers to prompts (InstructGPT in miniature)"}


def get(name: str) -> Command:
    from il_cli.errors import suggest

    if name not in COMMANDS:
        raise UserError(f"no command '{name}'{suggest(name, COMMANDS)}; the commands that make runs are "
                        f"{', '.join(COMMANDS)}")
    return COMMANDS[name]
