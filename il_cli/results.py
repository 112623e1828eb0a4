"""What a finished run reports: its summary as the rows of a result table (and, for a text
RLHF run, its answers side by side). No JAX, no Typer."""

from pathlib import Path

import numpy as np

from il_cli.config import ADVERSARIAL_REWARDS
from il_cli.sweep import describe

TEXT_TASK = "text"  # il_cli.config.TEXT_TASK: the env of `il rlhf --task text` runs


def report(ui, command, summary: dict, run_dir):
    """Print the result table of a run of `command` (il_cli.registry.Command) from its summary:
    its rows of one member, or of several (per sweep cell)."""
    several = "members" in summary
    title, single, cells = command.title, command.rows, command.cell_rows or command.rows
    if summary.get("env") == TEXT_TASK:
        title, single, cells = "RLHF on text", text_rows, text_cell_rows
        if not several:
            ui.grid("held-out prompts, greedy answers", ["prompt", "SFT", "gold", "RLHF", "gold"],
                    [[e["prompt"], e["sft"], e["sft_gold"], e["rlhf"], e["rlhf_gold"]] for e in summary["examples"]])
    ui.results(title, cells(summary) if several else single(summary), run_dir)


def ppo_expert_rows(summary: dict) -> list[tuple]:
    ex = summary["expert"]
    how = [("policy", f"written down, not trained: {ex['exact']}")] if ex.get("exact") else [("timesteps", ex["timesteps"])]
    learned = []
    if "reward" in summary:  # PPO on a learned reward (il expert --reward)
        r = summary["reward"]
        learned = [("reward", f"learned by il {r['method']}: {r['run']} (its policy returned {r['imitation_return']:.2f})")]
        if "imitated" in summary:
            learned += [("imitated expert's return", f"{summary['imitated']['return_mean']:.2f}  (same keys and episodes)"),
                        ("normalized return", f"{summary['normalized_return']:.3f}  ((J − J_random) / (J_expert − J_random), "
                                              f"J_random {summary['random']['return_mean']:.2f})")]
    changed = [("dynamics", "changed: " + ", ".join(f"{k}={v:g}" for k, v in ex["env_params"].items()))] \
        if ex.get("env_params") else []
    return eval_rows(summary) + reference_rows(ex) + changed + learned + how + [("wall time (s)", summary["wall_s"])]


def reference_rows(expert: dict) -> list[tuple]:
    """The published PPO return beside an expert's, flagged when the expert falls short of it."""
    if "reference_return" not in expert:
        return []
    verdict = ("BELOW IT: this expert fails the task, and what imitates it inherits that"
               if expert["below_reference"] else "reached")
    return [("published PPO return", f"{expert['reference_return']:g}  ({verdict})")]


def collect_rows(summary: dict) -> list[tuple]:
    c, d = summary["collect"], summary["dataset"]
    if d.get("kind") == "preferences":
        return [("preference file", d["path"]), ("pairs", d["pairs"]), ("teacher queries", d["count"]),
                ("teacher", teacher_text(d["teacher"])), ("states from", d["state_source"]),
                ("labelled ½ (ties)", d["ties"]), ("wall time (s)", summary["wall_s"])]
    minari = [("Minari dataset", f"{d['minari']['dataset_id']} ({d['minari']['path']})")] if "minari" in d else []
    return [("dataset", d["path"]), *minari, ("transitions", d["count"]), ("episodes", d["episodes"]),
            ("demo return", d["return_mean"]), ("transitions / s", f"{c['transitions_per_s']:,.0f}"),
            ("compile (s)", c["compile_s"]), ("wall time (s)", summary["wall_s"])]


def eval_report_rows(summary: dict) -> list[tuple]:
    """`il eval`'s table: per member (a sweep), the held-out text figures, or the return."""
    if "members" in summary:
        rows = sweep_rows(summary)
    elif "gold" in summary["eval"]:
        ev = summary["eval"]
        rows = [("gold score, held-out prompts", f"{ev['gold']:.3f} sampled, {ev['gold_greedy']:.3f} greedy "
                                                 f"({ev['exact']:.0%} exactly right)"),
                ("KL(π ‖ π_SFT) per answer, exact", ev["kl"]),
                ("corpus log-likelihood per token", ev["corpus_log_likelihood"]), ("seed", summary["seed"])]
    else:
        rows = eval_rows(summary) + [("seed", summary["seed"])]
    return rows + ([("gif", summary["gif"])] if "gif" in summary else [])


def eval_rows(summary: dict) -> list[tuple]:
    ev = summary["eval"]
    policy = {"mode": "greedy", "sample": "sampled"}[ev.get("policy", "mode")]
    return [("return", f"{ev['return_mean']:.2f} ± {ev['return_std']:.2f}  "
                       f"[{ev['return_min']:.1f}, {ev['return_max']:.1f}]  "
                       f"({ev['episodes']} episodes, {policy} actions)"),
            ("episode length", ev["length_mean"])]


def expert_rows(summary: dict) -> list[tuple]:
    """The paired expert return and the gap (or the dataset's figure when not paired)."""
    ex = summary["expert"]
    paired = "same keys and episodes" if ex.get("paired") else "recorded in the dataset, not paired"
    rows = [("expert return", f"{ex['return_mean']:.2f}  ({paired})")] + reference_rows(ex)
    rows.append(("return gap J(π*) − J(π̂)", summary["return_gap"]))
    if summary.get("normalized_return") is not None:
        rows.append(("normalized return", f"{summary['normalized_return']:.3f}  ((J − J_random) / (J_expert − J_random), "
                                          f"J_random {summary['random']['return_mean']:.2f})"))
    return rows


def sweep_rows(summary: dict) -> list[tuple]:
    """Result rows of a run of several members: per sweep cell, the return's interquartile
    mean with its 95% bootstrap CI, and mean ± std over the cell's seeds."""
    out = []
    for cell in summary["cells"]:
        name = describe(cell["hyper"]) or "all members"
        r = cell["return"]
        out.append((f"return, {name}", f"IQM {r['iqm']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]  "
                                       f"mean {r['mean']:.2f} ± {r['std']:.2f}  ({r['n']} seed{'s' * (r['n'] > 1)})"))
        if "normalized_return" in cell:
            n = cell["normalized_return"]
            out.append((f"normalized return, {name}", f"IQM {n['iqm']:.3f} [{n['ci95'][0]:.3f}, {n['ci95'][1]:.3f}]"))
    flagged = [m["expert"] for m in summary["members"] if m.get("expert", {}).get("below_reference")]
    if flagged:  # a member's expert (or, for il expert, a member) under the published return
        out.append(("published PPO return", f"{flagged[0]['reference_return']:g}  (an expert is BELOW IT: it fails "
                                            f"the task, and what imitates it inherits that)"))
    return out + [("members", len(summary["members"])), ("wall time (s)", summary["wall_s"])]


def bc_rows(summary: dict) -> list[tuple]:
    b = summary["bc"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    held = b.get("holdout")
    holdout = held if not isinstance(held, dict) else (
        f"{held['episodes']} episodes, {held['transitions']} transitions")
    out = eval_rows(summary) + expert_rows(summary) + [
        (f"ε = TV(π̂, π*) on held-out expert states ({policy})", b["tv_expert_states"]),
        ("ε of the stochastic π̂ on held-out expert states", b.get("tv_expert_states_stochastic"))]
    if "tv_learner_states" in b:
        out.append((f"ε on the learner's own states ({policy})", b["tv_learner_states"]))
    out += [("held-out greedy action accuracy", b["action_accuracy"])] if "action_accuracy" in b else [
        ("held-out greedy action MSE", b["action_mse"])]
    return out + [
        ("held-out log-likelihood", b["holdout_log_likelihood"]), ("held out", holdout),
        ("train loss", b["train_loss"]),
        ("demonstrations (expert queries)", f"{b['demos']} transitions, {b['demo_episodes']} episodes"),
        ("samples / s", f"{b['samples_per_s']:,.0f}" if b.get("samples_per_s") else None), ("wall time (s)", summary["wall_s"])]


def adversarial_rows(summary: dict) -> list[tuple]:
    """GAIL's and AIRL's table: the return against the expert's and the untrained policy's on
    the same keys, ε, and the discriminator's figures."""
    a = summary.get("gail") or summary["airl"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    init = summary["initial"]
    reward = ADVERSARIAL_REWARDS[a["reward_transform"]][0]
    return eval_rows(summary) + expert_rows(summary) + [
        ("untrained policy's return", f"{init['return_mean']:.2f} (same keys)"),
        (f"ε on the expert's states ({policy})", a["tv_expert_states"]),
        (f"ε on the learner's own states ({policy})", a.get("tv_learner_states")),
        ("policy reward", reward + (", absorbing state" if a["absorbing"] else ", no absorbing state (survival bias)")),
        ("discriminator accuracy", f"{a['disc_expert_accuracy']:.2f} on expert, {a['disc_learner_accuracy']:.2f} on "
                                   f"policy (logits {a['disc_expert_logit']:.2f}, {a['disc_learner_logit']:.2f})"),
        ("reward", f"{a['disc_reward_mean']:.3f} ± {a['disc_reward_std']:.3f}, s_abs {a['absorbing_reward']:.3f}"),
        ("demonstrations (expert queries)", f"{a['demos']} transitions, {a['demo_episodes']} episodes"),
        ("environment steps", a["env_steps"]),
        ("steps / s", f"{a['steps_per_s']:,.0f}" if a.get("steps_per_s") else None), ("wall time (s)", summary["wall_s"])]


def dagger_rows(summary: dict) -> list[tuple]:
    d = summary["dagger"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    budget = "" if d.get("expert_budget") is None else f" of a budget of {d['expert_budget']}"
    return eval_rows(summary) + expert_rows(summary) + [
        ("rounds", d["rounds"]), ("β schedule", ", ".join(f"{b:.3g}" for b in d["betas"])),
        ("β in effect (budget)", ", ".join(f"{b:.3g}" for b in d.get("betas_effective", []))),
        ("expert queries", f"{d['expert_queries']}{budget} ({d['demo_labels']} demonstrations)"),
        ("labels in D", d["dataset_size"]), ("steps the expert controlled", d["expert_steps"]),
        (f"ε on the learner's states ({policy})", d["tv_learner_states"]),
        (f"ε on the expert's states ({policy})", d["tv_expert_states"]),
        ("train loss", d["train_loss"]), ("wall time (s)", summary["wall_s"])]


def teacher_text(teacher) -> str:
    if not isinstance(teacher, dict):
        return str(teacher)
    extra = {"noisy": "teacher_beta", "mistake": "mistake_rate", "skip": "teacher_skip_score",
             "skip-ties": "teacher_threshold", "equal": "teacher_threshold"}.get(teacher["name"])
    return teacher["name"] + (f" ({extra.split('_', 1)[1].replace('_', ' ')} {teacher[extra]:g})"
                              if extra and extra in teacher else "")


def prefs_rows(summary: dict) -> list[tuple]:
    p = summary["prefs"]
    policy = "greedy" if summary["eval"].get("policy", "mode") == "mode" else "sampled"
    held = p["holdout"]
    holdout = held if not isinstance(held, dict) else (
        f"{held['streams']} stream{'s' * (held['streams'] > 1)}, {held['pairs']} pairs")
    return eval_rows(summary) + expert_rows(summary) + [
        ("held-out preference accuracy (vs the expert)", p["preference_accuracy"]),
        ("held-out accuracy on the teacher's labels", p["label_accuracy"]),
        (f"ε = TV(π, π*) on the expert's states ({policy})", p["tv_expert_states"]),
        (f"ε on the learner's own states ({policy})", p["tv_learner_states"]),
        (f"ε on the held-out states ({policy})", p["tv_holdout_states"]),
        ("policy entropy on held-out states", p["entropy"]), ("held out", holdout),
        ("train loss / held-out loss", f"{p['train_loss']:.4f} / {p['holdout_loss']:.4f}"),
        ("parameterisation", f"{p['param']} (α = {p['temperature']:g})"),
        ("teacher", f"{teacher_text(p['teacher'])}, states from {p['state_source'] or 'the file'}"),
        ("teacher queries", f"{p['teacher_queries']} of {p['pairs']} pairs ({p['train_pairs']} trained on)"),
        ("samples / s", f"{p['samples_per_s']:,.0f}" if p.get("samples_per_s") else None),
        ("wall time (s)", summary["wall_s"])]


def rlhf_rows(summary: dict) -> list[tuple]:
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


def rlhf_cell_rows(summary: dict) -> list[tuple]:
    """Per sweep cell: the gold return, its gain over SFT (IQM, 95% CI) and the mean KL to SFT."""
    out = sweep_rows(summary)
    for cell in summary["cells"]:
        name = describe(cell["hyper"]) or "all members"
        g = cell["gold_gain"]
        kl = [m["rl"]["kl"] for m in summary["members"] if m["cell"] == cell["cell"]]
        out.insert(-2, (f"gold gain over SFT, {name}", f"IQM {g['iqm']:.2f} [{g['ci95'][0]:.2f}, {g['ci95'][1]:.2f}]  "
                                                        f"mean {g['mean']:.2f}; KL to SFT {sum(kl) / len(kl):.4f}"))
    return out


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


def compounding_rows(summary: dict) -> list[tuple]:
    """Per (demos, H): BC's and DAgger's gap ± s.e., ε on the expert's and own states, H²ε and
    gap/(H²ε); then the fitted slopes and the bound check."""
    out = []
    for r in summary["table"]:
        cell = "".join(f", {k}={v:g}" for k, v in r["hyper"].items())
        ratio = "–" if r["gap_over_h2_eps"] is None else f"{r['gap_over_h2_eps']:.3f}"
        own = "–" if r.get("gap_over_h_eps_own") is None else f"{r['gap_over_h_eps_own']:.2f}"
        out.append((f"{'BC' if r['algo'] == 'bc' else 'DAgger'}, {r['demos']} demos{cell}, H={r['horizon']}",
                    f"gap {r['gap']:.2f} ± {r['gap_se']:.2f}  ε {r['eps_expert_states']:.4f} (own states "
                    f"{r['eps_own_states']:.4f})  H²ε {r['bound']:.1f}  gap/H²ε {ratio}  gap/Hε_own {own}"))
    for s in summary["slopes"]:
        cell = "".join(f", {k}={v:g}" for k, v in s["hyper"].items())
        ci = "" if not s.get("ci95") else f"  [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}] 95% CI over seeds"
        out.append((f"growth exponent p of the gap ≈ c·H^p, {'BC' if s['algo'] == 'bc' else 'DAgger'}, "
                    f"{s['demos']} demos{cell}", "– (no positive gap)" if s["slope"] is None else f"{s['slope']:.2f}{ci}"))
    out += [("gap ≤ H²ε for every seed and H", "yes" if summary["bound_holds"] else "NO"),
            ("seeds", summary["seeds"]), ("table", summary["csv"]), ("plot", summary["plot"]),
            ("wall time (s)", summary["wall_s"])]
    return out


def vary_table(summary: dict) -> tuple[list[str], list[list]]:
    """(columns, rows): a row per grid point (the training value marked *), a column per run."""
    defaults = summary["defaults"]
    columns = [", ".join(summary["vary"])] + [f"{r['command']} {Path(r['run']).name}" for r in summary["results"]]
    rows = []
    for g, point in enumerate(summary["results"][0]["grid"]):
        label = ", ".join(f"{k}={v:g}" + ("*" if np.isclose(v, defaults[k]) else "") for k, v in point["point"].items())
        rows.append([label] + [f"{r['grid'][g]['mean']:.1f} [{r['grid'][g]['ci95'][0]:.1f}, {r['grid'][g]['ci95'][1]:.1f}]"
                               for r in summary["results"]])
    return columns, rows

