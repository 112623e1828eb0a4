"""`il rlhf`: eq. 24.12 by hand, the exact KL, the PPO-ptx objective's limits, end to end."""

import itertools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import OPTIMIZED, assert_user_error, il, il_here, il_json, il_json_optimized

from il_cli import networks
from il_cli.algos.ppo import Transition, ppo_loss
from il_cli.algos.rlhf import KL_GAIN, RLHFObjective, dpo_rewards, kl_exact, kway_loss, rank, ranking_accuracy
from il_cli.envs import EnvSpec
from il_cli.runs import Run

DISCRETE = EnvSpec("Test", (3,), True, 2)
TINY = ("rlhf", "--demo-episodes", "2", "--demo-noise", "0.5", "--sft-steps", "300", "--num-prompts", "128",
        "--rm-steps", "500", "--total-timesteps", "16384", "--eval-episodes", "20")


def log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def test_kway_loss_is_the_mean_of_the_pairwise_losses_by_hand():
    r = np.array([2.0, -1.0, 0.5, 3.0])  # rewards of 4 responses, best first
    by_hand = -np.mean([log_sigmoid(r[i] - r[j]) for i, j in itertools.combinations(range(4), 2)])
    np.testing.assert_allclose(kway_loss(jnp.asarray(r)), by_hand, rtol=1e-6)
    assert ranking_accuracy(jnp.asarray(r)) == pytest.approx(2 / 6)  # only (0,1) and (0,2) agree
    np.testing.assert_allclose(kway_loss(jnp.array([[1.0, 0.0], [0.0, 1.0]])),
                               [-log_sigmoid(1.0), -log_sigmoid(-1.0)], rtol=1e-6)


def test_kl_is_exact():
    p, q = jnp.array([[1.0, -0.5, 0.2]]), jnp.array([[0.0, 0.3, -1.0]])
    pp, qq = np.exp(p) / np.exp(p).sum(), np.exp(q) / np.exp(q).sum()
    np.testing.assert_allclose(kl_exact(True, p, q), [np.sum(pp * np.log(pp / qq))], rtol=1e-5)
    # Gaussian: against a Monte Carlo estimate E_p[log p(x) − log q(x)] with many samples
    out_p, out_q = jnp.array([[0.3, -0.2, np.log(0.5), np.log(1.2)]]), jnp.array([[0.0, 0.1, np.log(0.8), np.log(0.9)]])
    x = networks.sample(False, jnp.broadcast_to(out_p, (400_000, 4)), jax.random.PRNGKey(0))
    mc = jnp.mean(networks.log_prob(False, out_p, x) - networks.log_prob(False, out_q, x))
    np.testing.assert_allclose(kl_exact(False, out_p, out_q), [mc], atol=3e-3)
    assert float(kl_exact(False, out_p, out_p)[0]) == pytest.approx(0.0, abs=1e-6)


def test_plackett_luce_rankings_follow_the_returns():
    gold = jnp.array([10.0, 30.0, 20.0, 0.0])
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    exact = jax.vmap(rank, in_axes=(0, None, None, None))(keys, gold, 100.0, 0.0)
    assert np.all(np.asarray(exact) == [1, 2, 0, 3])
    noisy = jax.vmap(rank, in_axes=(0, None, None, None))(keys, gold, 0.05, 0.0)
    # P(best first) under Plackett–Luce = exp(βR_best) / Σ exp(βR)
    w = np.exp(0.05 * np.asarray(gold))
    assert abs(np.mean(np.asarray(noisy)[:, 0] == 1) - w[1] / w.sum()) < 0.03
    errors = jax.vmap(rank, in_axes=(0, None, None, None))(keys, gold, 100.0, 0.5)
    assert 0.4 < np.mean(np.any(np.asarray(errors) != [1, 2, 0, 3], axis=1)) < 0.55  # ½ × (1 − 1/24)


def test_with_beta_and_gamma_zero_the_objective_is_plain_ppo():
    actor, critic = networks.make_actor(DISCRETE, (8,)), networks.make_critic(DISCRETE, (8,))
    model = networks.make_state_action(DISCRETE, (8,))
    key = jax.random.PRNGKey(0)
    obs = jax.random.normal(key, (16, 3))
    params = {"actor": actor.init(key, obs), "critic": critic.init(key, obs)}
    action = jnp.arange(16) % 2
    out = actor.apply(params["actor"], obs)
    log_prob = networks.log_prob(True, out, action)
    tr = Transition(obs, action, log_prob - 0.1, jnp.zeros(16), jnp.ones(16), jnp.zeros(16), jnp.zeros(16), jnp.zeros(16))
    batch = (tr, jax.random.normal(key, (16,)), jnp.ones(16))
    hyper = {"sft": actor.init(jax.random.PRNGKey(3), obs), "rm": model.init(key, obs, action), "rm_scale": 2.0,
             "kl_coef": 0.0, "ptx_coef": 0.0, "pretrain": (obs, action, 16)}
    objective = RLHFObjective(DISCRETE, actor, model, 8)
    plain, _ = ppo_loss(params, batch, actor, critic, True, 0.2, 0.5, 0.01)
    rlhf, figures = ppo_loss(params, batch, actor, critic, True, 0.2, 0.5, 0.01,
                             lambda p: objective.extra_loss(p, hyper, key))
    assert float(rlhf) == float(plain) and "ptx_log_likelihood" in figures
    reward, fig = objective.step_reward(hyper, obs, action, out, log_prob)
    np.testing.assert_allclose(reward, 2.0 * model.apply(hyper["rm"], obs, action), rtol=1e-6)
    penalised, _ = objective.step_reward({**hyper, "kl_coef": 0.5}, obs, action, out, log_prob)
    sft_logp = networks.log_prob(True, actor.apply(hyper["sft"], obs), action)
    np.testing.assert_allclose(reward - penalised, 0.5 * (log_prob - sft_logp), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fig["kl"], kl_exact(True, out, actor.apply(hyper["sft"], obs)), rtol=1e-6)


def test_dpo_loss_by_hand():
    """−log σ(β[log π(y+|x)/π_SFT(y+|x) − log π(y−|x)/π_SFT(y−|x)]), with log π(y|x) the sum of
    the live steps' log π(a_t|s_t), averaged over a ranking's C(K,2) pairs."""
    actor = networks.make_actor(DISCRETE, (8,))
    key = jax.random.PRNGKey(1)
    params, sft = actor.init(key, jnp.zeros((1, 3))), actor.init(jax.random.PRNGKey(2), jnp.zeros((1, 3)))
    obs = jax.random.normal(key, (3, 5, 3))  # K = 3 responses of L = 5 steps, best first
    actions = jnp.array([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]])
    alive = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)

    def logp(p, y):  # log π(y|x) by hand
        probs = np.exp(np.asarray(jax.nn.log_softmax(actor.apply(p, obs[y]))))
        return sum(np.log(probs[t, actions[y, t]]) for t in range(5) if alive[y, t])

    beta = 0.3
    implicit = [beta * (logp(params, y) - logp(sft, y)) for y in range(3)]
    by_hand = np.mean([-log_sigmoid(implicit[w] - implicit[l]) for w, l in itertools.combinations(range(3), 2)])
    scores = dpo_rewards(DISCRETE, actor)(params, obs, actions, alive, sft, beta)
    np.testing.assert_allclose(scores, implicit, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(kway_loss(scores), by_hand, rtol=1e-5)
    assert float(kway_loss(dpo_rewards(DISCRETE, actor)(sft, obs, actions, alive, sft, beta))) == pytest.approx(np.log(2))


def test_adaptive_kl_controller():
    """Ziegler et al.: β ← β(1 + K_β clip(KL/target − 1, ±0.2)); β fixed without a target."""
    objective = RLHFObjective(DISCRETE, None, None, 8)
    state = objective.init({"kl_coef": 0.1})
    for kl, target, factor in [(0.11, 0.1, 1 + KL_GAIN * 0.1), (1.0, 0.1, 1 + KL_GAIN * 0.2),
                               (0.0, 0.1, 1 - KL_GAIN * 0.2), (5.0, 0.0, 1.0)]:
        new = objective.adapt(state, {"kl_target": target}, {"kl": jnp.float32(kl)})
        assert float(new["kl_coef"]) == pytest.approx(0.1 * factor, rel=1e-6)


def test_the_dpo_kl_probe_has_its_own_keys():
    """The KL a DPO run logs is measured on responses drawn with evaluation keys of its own,
    never with a key of DPO's training stream (whose step t draws fold_in(key, t))."""
    from il_cli.evaluation import eval_key, root_key
    from il_cli.jobs.rlhf import kl_probe_keys

    dpo_key = jax.random.split(jax.random.split(root_key(0), 3)[0], 3)[2]  # as il_cli.jobs.rlhf.run_rlhf draws it
    training = {tuple(np.asarray(jax.random.fold_in(dpo_key, t)).tolist()) for t in range(4000)}
    probes = [tuple(np.asarray(kl_probe_keys(eval_key(0)[None], step)[0]).tolist()) for step in range(0, 4000, 250)]
    assert not training & set(probes) and len(set(probes)) == len(probes)


def test_rlhf_improves_on_sft_and_a_huge_kl_coef_keeps_sft(cartpole_expert, tmp_runs):
    summary = il_json_optimized(*TINY, "--expert", cartpole_expert, "--sweep", "kl_coef=0,100")
    free, pinned = members = summary["members"]  # the same seed: the same SFT policy and reward model
    assert [m["hyper"]["kl_coef"] for m in members] == [0, 100]
    assert free["gold_gain"] > 30  # PPO against r_θ beats SFT on the true return
    assert pinned["rl"]["kl"] < min(0.05, free["rl"]["kl"] / 5)  # β = 100: π_RL stays at π_SFT
    assert pinned["gold_gain"] < free["gold_gain"]  # (CartPole's return is steep in π: 0.007 nats a step
    # from π_SFT can double it, so how much the pinned policy gains is not itself a check)
    for m in members:
        rm = m["reward_model"]
        assert rm["gold_pair_accuracy"] >= 0.8 and rm["holdout"] == {"prompts": 13}
    rows = Run(summary["run_dir"]).metrics(member=0)
    assert {"gold_pair_accuracy", "ranking_accuracy", "kl", "proxy_reward"} <= set(rows[-1])
    assert members[0]["rl"]["kl_unit"].startswith("nats per step")
    assert Path(summary["plot"]).name == "rlhf.png" and Path(summary["plot"]).is_file()
    again = il_json_optimized("eval", summary["run_dir"], "--member", "1")  # (as the run: sampled episodes
    # follow the last bits of π, which depend on XLA's optimisation level)
    assert again["eval"] == members[1]["eval"]
    sft = il_json_optimized("eval", summary["run_dir"], "--member", "1", "--stage", "sft")
    assert sft["eval"] == members[1]["sft"]["eval"] and sft["evaluated"] == "rlhf (sft stage)"


@pytest.mark.slow  # a second PPO program (one member); the default run checks this for bc, dagger, expert and prefs
def test_rlhf_member_k_is_the_run_with_seed_s_plus_k(cartpole_expert, tmp_runs):
    sweep = il_json_optimized(*TINY, "--expert", cartpole_expert, "--seeds", "2", "--kl-coef", "0")
    one = il_json_optimized(*TINY, "--expert", cartpole_expert, "--seed", "1", "--kl-coef", "0")
    member = sweep["members"][1]
    assert member["seed"] == 1 and one["eval"] == member["eval"]
    for name, value in one["reward_model"].items():  # (float sums in another order: last bits)
        assert member["reward_model"][name] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value)


def test_dpo_on_the_same_rankings_iterated(cartpole_expert, tmp_runs):
    """--method dpo: no reward model, the policy fitted to two rounds of rankings; its implicit
    reward orders the responses as the true returns do, and the gold return rises. Nothing held
    out: the figures say they are measured on training prompts."""
    summary = il_json_optimized(*TINY[:-4], "--expert", cartpole_expert, "--method", "dpo", "--kl-coef", "0.1",
                                "--iterations", "2", "--dpo-steps", "400", "--eval-episodes", "20",
                                "--holdout-frac", "0")
    rm, rl = summary["reward_model"], summary["rl"]
    assert rl["method"] == "dpo" and rm["model"] == "implicit" and rm["rankings"] == 2 * 128
    assert summary["gold_gain"] > 30 and rm["gold_pair_accuracy"] > 0.6 and 0 < rl["kl"] < 1
    assert "π_SFT's responses" in rm["measured_on"] and "iteration 2's responses" in rm["last_iteration"]["measured_on"]
    assert rm["holdout"] == "none — measured on training data" and "training prompts (none held out)" in rm["measured_on"]
    assert Path(summary["plot"]).is_file()
    assert il_json_optimized("eval", summary["run_dir"])["eval"] == summary["eval"]


@pytest.mark.slow  # a PPO-ptx run of two members (the objective and the controller: the unit tests above)
def test_ptx_with_given_pretraining_data_and_an_adaptive_kl_coef(cartpole_expert, tmp_runs, tmp_path):
    demos = il_json("collect", "--expert", cartpole_expert, "--episodes", "2", "--run-dir", tmp_path / "demos")
    proc = il(*TINY, "--expert", cartpole_expert, "--pretrain-data", demos["dataset"]["path"], "--ptx-coef", "1",
              "--sweep", "kl_target=0.0001,10", "--total-timesteps", "8192", "--holdout-frac", "0", "--json",
              env=OPTIMIZED)
    low, high = json.loads(proc.stdout)["members"]
    assert low["rl"]["pretrain_data"] == demos["dataset"]["path"]
    # the adaptive β rises while the KL is above its target, and falls while below
    assert low["rl"]["kl"] > 0.0001 and low["rl"]["final_kl_coef"] > low["rl"]["kl_coef"]
    assert high["rl"]["kl"] < 10 and high["rl"]["final_kl_coef"] < high["rl"]["kl_coef"]


def test_bad_rlhf_options(tmp_path):
    assert_user_error(il_here("rlhf", "--k", "1"), "--k must be at least 2")
    assert_user_error(il_here("rlhf", "--kl-coef", "-1"), "--kl-coef must be non-negative")
    assert_user_error(il_here("rlhf", "--sweep", "method=ppo,dpo"), "--sweep method: a choice, not a number", "kl_coef")
    assert_user_error(il_here("rlhf", "--sft", tmp_path), "not a run directory")
    assert_user_error(il_here("rlhf", "--method", "ddpo"), "--method must be one of ppo, dpo")
    assert_user_error(il_here("rlhf", "--iterations", "3"), "--iterations 3 must divide the 64 PPO updates")
    assert_user_error(il_here("rlhf", "--pretrain-data", tmp_path / "no.npz"), "does not exist")
    assert_user_error(il_here("eval", tmp_path, "--stage", "sft"), "not a run directory")
