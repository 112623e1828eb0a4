"""il rlhf: SFT, a reward model from rankings, PPO with a KL penalty and a pretraining term."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from il_cli.commands.common import (Coordinator, Distributed, Env, EvalEpisodes, Expert, Hidden, Json,
                                    Name, NumProcesses, ProcessId, Recipe, Resume, RunDir, Seed, Seeds, Sweep,
                                    TensorBoard, eval_rows, open_or_start, sweep_rows, user_errors)
from il_cli.config import RLHFConfig, build_config, parse_ints
from il_cli.errors import UserError
from il_cli.sweep import describe
from il_cli.ui import UI


def rlhf(
    task: Annotated[Optional[str], typer.Option(help="control: an environment's episodes are the responses; text: a tiny transformer's answers to prompts (InstructGPT in miniature).", show_default="control")] = None,
    env: Env = None, seed: Seed = None, seeds: Seeds = None, sweep: Sweep = None, recipe: Recipe = None,
    expert: Expert = None,
    sft: Annotated[Optional[str], typer.Option(help="An `il bc` run to use as π_SFT (stage 1 skipped).")] = None,
    method: Annotated[Optional[str], typer.Option(help="ppo: a reward model, then PPO with the KL penalty and ptx term; dpo: the policy fitted to the rankings (no reward model).", show_default="ppo")] = None,
    demo_episodes: Annotated[Optional[int], typer.Option(help="Demonstration episodes for SFT.", show_default="5")] = None,
    demo_noise: Annotated[Optional[float], typer.Option(help="Probability that the demonstrator acts at random (an imperfect SFT).", show_default="0.3; text 0.5")] = None,
    sft_steps: Annotated[Optional[int], typer.Option(help="SFT gradient steps.", show_default="2000; text 300")] = None,
    num_prompts: Annotated[Optional[int], typer.Option(help="Prompts (start states, or instructions with --task text) ranked.", show_default="512; text 256")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Responses ranked per prompt (K).", show_default="4")] = None,
    segment_length: Annotated[Optional[int], typer.Option(help="Steps L per response.", show_default="100")] = None,
    human_beta: Annotated[Optional[float], typer.Option(help="Plackett–Luce rationality of the simulated human, per unit of return (of gold score with --task text).", show_default="1; text 5")] = None,
    human_error: Annotated[Optional[float], typer.Option(help="Probability that a ranking is a random order.", show_default="0")] = None,
    holdout_frac: Annotated[Optional[float], typer.Option(help="Fraction of the ranked prompts held out to measure the reward model's (or DPO's) ranking accuracy (0: none, measured on training data).", show_default="0.1")] = None,
    rm_steps: Annotated[Optional[int], typer.Option(help="Reward-model gradient steps.", show_default="500")] = None,
    kl_coef: Annotated[Optional[float], typer.Option(help="β: weight of the KL penalty β log(π_RL/π_SFT), paid per step (per token with --task text); its start value under --kl-target; DPO's β with --method dpo.", show_default="0.02; text 0.1")] = None,
    kl_target: Annotated[Optional[float], typer.Option(help="Adapt β after every PPO update to steer KL(π_RL ‖ π_SFT), in nats per step (the mean over the policy's states), to this value (Ziegler et al.); 0: β fixed.", show_default="0")] = None,
    ptx_coef: Annotated[Optional[float], typer.Option(help="γ: weight of the pretraining log-likelihood (of the SFT demonstrations unless --pretrain-data; of the corpus with --task text).", show_default="0; text 0.5")] = None,
    pretrain_data: Annotated[Optional[str], typer.Option(help="A dataset (`il collect`) to use as D_pretrain of the ptx term.")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Rank the current policy's responses and refit the reward model (or DPO) this many times in all.", show_default="1")] = None,
    dpo_steps: Annotated[Optional[int], typer.Option(help="--method dpo: Adam steps on the rankings.", show_default="2000; text 100")] = None,
    total_timesteps: Annotated[Optional[int], typer.Option(help="PPO environment steps.", show_default="131072")] = None,
    lr: Annotated[Optional[float], typer.Option(help="PPO learning rate.", show_default="3e-4; text 1e-4")] = None,
    human: Annotated[bool, typer.Option("--human", help="--task text: you rank the answers in the terminal (saved to --rankings after each).")] = False,
    rankings: Annotated[Optional[str], typer.Option(help="--task text: a rankings .npz of a person's (written by --human, resumed from, or reused).")] = None,
    updates: Annotated[Optional[int], typer.Option(help="--task text: PPO updates.", show_default="120")] = None,
    pretrain_steps: Annotated[Optional[int], typer.Option(help="--task text: pretraining steps on the corpus.", show_default="1500")] = None,
    num_layers: Annotated[Optional[int], typer.Option(help="--task text: transformer blocks of the policy and of the reward model.", show_default="2")] = None,
    d_model: Annotated[Optional[int], typer.Option(help="--task text: the policy transformer's width.", show_default="64")] = None,
    rm_d_model: Annotated[Optional[int], typer.Option(help="--task text: the reward model's width (small: watch it be over-optimised).", show_default="64")] = None,
    hidden: Hidden = None, eval_episodes: EvalEpisodes = None,
    eval_policy: Annotated[Optional[str], typer.Option("--eval-policy", help="Evaluate greedy actions (mode) or actions sampled from π (sample): RLHF's policies are stochastic, and the KL is to a stochastic π_SFT.", show_default="sample")] = None,
    run_dir: RunDir = None, name: Name = None, resume: Resume = None, tensorboard: TensorBoard = None,
    json: Json = False, distributed: Distributed = False, coordinator: Coordinator = None,
    num_processes: NumProcesses = None, process_id: ProcessId = None,
):
    """RLHF: SFT, a reward model from K-way rankings (eq. 24.12), PPO with a KL penalty and a pretraining term (eq. 24.13–24.14)."""
    ui = UI(json)
    with user_errors(ui) as ctx:
        if task not in (None, "control", "text"):
            raise UserError(f"--task must be control or text, got '{task}'")
        if distributed and human:
            raise UserError("--human: one person ranks in one terminal; not with --distributed")
        joined = (coordinator, num_processes, process_id) if distributed else None
        text_only = dict(human=human or None, rankings=str(Path(rankings).absolute()) if rankings else None,
                         updates=updates, pretrain_steps=pretrain_steps, num_layers=num_layers, d_model=d_model,
                         rm_d_model=rm_d_model)
        if resume:  # a run resumes as the task it was started with
            saved = saved_task(resume)
            if saved is not None and task not in (None, saved):
                raise UserError(f"{resume} is a --task {saved} run; resume it without --task {task}")
            task = saved
        if task == "text":
            control = dict(env=env, expert=expert, sft=sft, demo_episodes=demo_episodes, segment_length=segment_length,
                           kl_target=kl_target, pretrain_data=pretrain_data, iterations=iterations,
                           total_timesteps=total_timesteps, hidden=hidden, eval_episodes=eval_episodes,
                           eval_policy=eval_policy)
            given = [k for k, v in control.items() if v is not None]
            if given:
                raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in given)}: not an option of "
                                f"--task text (see il rlhf --help)")
            text_rlhf(ui, ctx, resume, recipe, run_dir, name, joined, **text_only, **dict(
                seed=seed, seeds=seeds, sweep=tuple(sweep) if sweep else None, method=method, demo_noise=demo_noise,
                sft_steps=sft_steps, num_prompts=num_prompts, k=k, human_beta=human_beta, human_error=human_error,
                rm_steps=rm_steps, kl_coef=kl_coef, ptx_coef=ptx_coef, dpo_steps=dpo_steps, lr=lr, holdout_frac=holdout_frac,
                tensorboard=tensorboard))
            return
        if any(v is not None for v in text_only.values()):
            given = ", ".join("--" + k.replace("_", "-") for k, v in text_only.items() if v is not None)
            raise UserError(f"{given}: only with --task text")
        architecture = sft_architecture(sft) if sft and not resume else {}
        if architecture and hidden is not None and parse_ints(hidden, "hidden") != architecture["hidden"]:
            raise UserError(f"--hidden {hidden} differs from the --sft run's {architecture['hidden']}: "
                            f"π_RL starts from π_SFT, so it has its architecture")
        cfg, run = open_or_start(ui, ctx, "rlhf", RLHFConfig, resume, lambda: build_config(
            RLHFConfig, "rlhf", recipe, env=env, seed=seed, seeds=seeds, tensorboard=tensorboard,
            sweep=tuple(sweep) if sweep else None, expert=expert, sft=sft, method=method,
            pretrain_data=pretrain_data, iterations=iterations, dpo_steps=dpo_steps, kl_target=kl_target,
            demo_episodes=demo_episodes,
            demo_noise=demo_noise, sft_steps=sft_steps, num_prompts=num_prompts, k=k,
            segment_length=segment_length, human_beta=human_beta, human_error=human_error, rm_steps=rm_steps,
            holdout_frac=holdout_frac,
            kl_coef=kl_coef, ptx_coef=ptx_coef, total_timesteps=total_timesteps, lr=lr,
            eval_episodes=eval_episodes, eval_policy=eval_policy,
            **{"hidden": parse_ints(hidden, "hidden"), **architecture}), run_dir, name, distributed=joined)
        summary = run.summary
        if summary is None:
            from il_cli.jobs.rlhf import run_rlhf
            from il_cli.jobs.programs import run_programs

            summary = run_programs(run_rlhf, cfg, run, ui, ctx)
        run.close()
        ui.results("RLHF", cell_rows(summary) if "members" in summary else rows(summary), run.path)
        ui.emit_json(summary)


def saved_task(path) -> str | None:
    """The --task of an `il rlhf` run; None for another command's run (its --resume says so)."""
    from il_cli.runs import Run

    meta = Run.open(path).meta
    return meta["config"].get("task", "control") if meta["command"] == "rlhf" else None


def text_rlhf(ui: UI, ctx: dict, resume, recipe, run_dir, name, distributed, **flags):
    """`il rlhf --task text`: InstructGPT in miniature (il_cli.jobs.text_rlhf)."""
    from il_cli.config import TextRLHFConfig

    cfg, run = open_or_start(ui, ctx, "rlhf", TextRLHFConfig, resume, lambda: build_config(
        TextRLHFConfig, "rlhf", recipe, **flags), run_dir, name, distributed=distributed)
    summary = run.summary
    if summary is None:
        from il_cli.jobs.text_rlhf import run_text_rlhf
        from il_cli.jobs.programs import run_programs

        summary = run_programs(run_text_rlhf, cfg, run, ui, ctx)
    run.close()
    if "members" not in summary:
        ui.grid("held-out prompts, greedy answers", ["prompt", "SFT", "gold", "RLHF", "gold"],
                [[e["prompt"], e["sft"], e["sft_gold"], e["rlhf"], e["rlhf_gold"]] for e in summary["examples"]])
    ui.results("RLHF on text", text_cell_rows(summary) if "members" in summary else text_rows(summary), run.path)
    ui.emit_json(summary)


def text_rows(summary: dict) -> list[tuple]:
    pre, sft, rm, rl = summary["pretrained"], summary["sft"], summary["reward_model"], summary["rl"]
    ppo = rl["method"] == "ppo"
    scorer = "r_θ" if ppo else "DPO's implicit reward β log(π/π_SFT)"
    held = "held-out" if isinstance(rm.get("holdout", {}), dict) else "training-data (none held out)"
    fig = lambda block: (f"{block['gold']:.3f} sampled, {block['gold_greedy']:.3f} greedy "
                         f"({block['exact']:.0%} exactly right)")
    return [row for row in [
        ("gold score, held-out prompts: RLHF", fig(rl)),
        ("  SFT (same prompts and keys)", fig(sft)),
        ("  pretrained only", fig(pre)),
        ("gold gain over SFT (sampled)", summary["gold_gain"]),
        ("KL(π_RL ‖ π_SFT), exact, nats per answer (sum over its tokens)", rl["kl"]),
        ("corpus log-likelihood per token: RLHF / SFT / pretrained",
         f"{rl['corpus_log_likelihood']:.4f} / {sft['corpus_log_likelihood']:.4f} / {pre['corpus_log_likelihood']:.4f}"),
        ("proxy reward r_θ (normalised)", rl.get("proxy_reward")),
        ("β (kl_coef) / γ (ptx_coef)", f"{rl['kl_coef']:g} / {rl['ptx_coef']:g}" if ppo else None),
        ("DPO's β (kl_coef)", None if ppo else f"{rl['kl_coef']:g}"),
        (f"{held} accuracy of {scorer} on the ranker's pairs", rm.get("ranking_accuracy")),
        ("  on the pairs the gold score orders", rm.get("gold_pair_accuracy")),
        ("rankings", f"{rm['rankings']} of K={rm['k']} ({rm['ranker']}), {rm['held_out_rankings']} held out"),
        ("SFT demonstrations' gold (noise)", f"{sft['demo_gold']:.3f} ({sft['demo_noise']:g})"),
        ("PPO answers / s" if ppo else None, f"{rl['answers_per_s']:,.0f}" if ppo else None),
        ("wall time (s)", summary["wall_s"])] if row[0] is not None and row[1] is not None]


def text_cell_rows(summary: dict) -> list[tuple]:
    out = sweep_rows(summary)
    for cell in summary["cells"]:
        name = describe(cell["hyper"]) or "all members"
        g = cell["gold_gain"]
        members = [m for m in summary["members"] if m["cell"] == cell["cell"]]
        mean = lambda f: sum(f(m) for m in members) / len(members)
        out.insert(-2, (f"gold gain over SFT, {name}",
                        f"IQM {g['iqm']:.3f} [{g['ci95'][0]:.3f}, {g['ci95'][1]:.3f}]  mean {g['mean']:.3f}; "
                        f"KL {mean(lambda m: m['rl']['kl']):.3f}; corpus log-lik "
                        f"{mean(lambda m: m['rl']['corpus_log_likelihood']):.4f} (SFT "
                        f"{mean(lambda m: m['sft']['corpus_log_likelihood']):.4f})"))
    return out


def sft_architecture(path) -> dict:
    """The hidden sizes and activation of the `il bc` run given as --sft (π_RL inherits them)."""
    from il_cli.runs import open_policy_run

    config = open_policy_run(path, None, ("bc",)).meta["config"]
    return {"hidden": tuple(config["hidden"]), "activation": config.get("activation", "tanh")}


def cell_rows(summary: dict) -> list[tuple]:
    """Per sweep cell: the gold return, its gain over SFT (IQM, 95% CI) and the mean KL to SFT."""
    out = sweep_rows(summary)
    for cell in summary["cells"]:
        name = describe(cell["hyper"]) or "all members"
        g = cell["gold_gain"]
        kl = [m["rl"]["kl"] for m in summary["members"] if m["cell"] == cell["cell"]]
        out.insert(-2, (f"gold gain over SFT, {name}", f"IQM {g['iqm']:.2f} [{g['ci95'][0]:.2f}, {g['ci95'][1]:.2f}]  "
                                                        f"mean {g['mean']:.2f}; KL to SFT {sum(kl) / len(kl):.4f}"))
    return out


def rows(summary: dict) -> list[tuple]:
    sft, rm, rl = summary["sft"], summary["reward_model"], summary["rl"]
    ppo = rl["method"] == "ppo"
    beta = (f"{rl['kl_coef']:g} → {rl['final_kl_coef']:.4g} (target KL {rl['kl_target']:g})" if ppo and rl["kl_target"]
            else f"{rl['kl_coef']:g}")
    scorer = "r_θ" if ppo else "DPO's implicit reward β log(π/π_SFT)"
    held = "held-out" if isinstance(rm.get("holdout", {}), dict) else "training-data (none held out)"
    return eval_rows(summary) + [row for row in [
        ("SFT gold return (same keys)", sft["eval"]["return_mean"]),
        ("gold gain over SFT", summary["gold_gain"]),
        ("KL(π_RL ‖ π_SFT), exact, nats per step (mean over states)", rl["kl"]),
        ("proxy reward r_θ per step", rl["proxy_reward"] if ppo else None),
        ("ptx log-likelihood of D_pretrain", rl["ptx_log_likelihood"] if ppo else None),
        ("β (kl_coef) / γ (ptx_coef)", f"{beta} / {rl['ptx_coef']:g}" if ppo else None),
        ("DPO's β (kl_coef)", None if ppo else beta),
        (f"{held} accuracy of {scorer} on the pairs the true returns order", rm["gold_pair_accuracy"]),
        (f"{held} accuracy of {scorer} on the human's rankings (all pairs)", rm["ranking_accuracy"]),
        ("labels", f"{rm['rankings']} rankings of K={rm['k']} ({rm['labels']} pairs), "
                   f"{rm['held_out_prompts']} prompts held out" + (f", {rl['iterations']} iterations" if rl["iterations"] > 1 else "")),
        ("SFT demonstrations", None if sft["demo_transitions"] is None else
         f"{sft['demo_episodes']} episodes, {sft['demo_transitions']} steps, noise {sft['demo_noise']:g}, "
         f"return {sft['demo_return']:.1f}"),
        ("PPO env steps / s" if ppo else "DPO steps / s", f"{rl['steps_per_s']:,.0f}" if rl.get("steps_per_s") else None),
        ("wall time (s)", summary["wall_s"])] if row[1] is not None]
