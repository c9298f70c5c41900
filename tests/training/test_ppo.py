"""PPO: clipped-loss gradients, rollout/update log-prob consistency, the update, resume, and a sim smoke run."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.test_rl_shared import SAMPLED, fake_trajectories, images, micro_ac, micro_ckpt


@pytest.mark.parametrize("mode", ["joint", "per_dim"])
def test_clipped_loss_gradient_is_zero_outside_the_clip_range(mode):
    import torch

    from vla_gen_bench.training.ppo import clipped_surrogate

    old = torch.zeros(4, 7)
    # per row: ratio above 1+eps with A>0, below 1-eps with A<0 (both clipped: no gradient); inside the range
    # with A>0 and A<0 (gradient)
    shift = torch.tensor([0.5, -0.5, 0.01, -0.01]) / (7 if mode == "joint" else 1)
    new = (old + shift[:, None]).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, clipfrac, _ = clipped_surrogate(new, old, adv, clip=0.2, mode=mode)
    loss.backward()
    g = new.grad
    assert torch.all(g[0] == 0) and torch.all(g[1] == 0)
    assert torch.all(g[2] < 0) and torch.all(g[3] > 0)  # minimising raises log-probs of good actions
    assert float(clipfrac) == pytest.approx(0.5)
    # on the "pessimistic" side the gradient is not clipped: ratio 1.65 with A < 0 still pushes down
    new2 = (old + 0.5 / (7 if mode == "joint" else 1)).requires_grad_(True)
    clipped_surrogate(new2, old, torch.full((4,), -1.0), clip=0.2, mode=mode)[0].backward()
    assert torch.all(new2.grad > 0)


def test_joint_ratio_is_the_product_of_token_ratios():
    import torch

    from vla_gen_bench.training.ppo import clipped_surrogate

    old = torch.zeros(1, 7)
    new = torch.full((1, 7), 0.01)  # each token ratio 1.01 (inside 0.05); joint ratio 1.0725 (outside)
    adv = torch.ones(1)
    joint, _, _ = clipped_surrogate(new, old, adv, clip=0.05, mode="joint")
    per, _, _ = clipped_surrogate(new, old, adv, clip=0.05, mode="per_dim")
    assert float(joint) == pytest.approx(-1.05)
    assert float(per) == pytest.approx(-np.exp(0.01))


def test_rollout_and_update_log_probs_agree():
    """The update's teacher-forced log-probs and values equal the ones recorded during the rollout."""
    import torch

    from vla_gen_bench.training.actor_critic import score
    from vla_gen_bench.training.rollouts import RolloutPolicy

    ac = micro_ac()
    pol = RolloutPolicy(ac, temperature=1.0, seed=3)
    imgs = images(4)
    ins = ["put red cube on plate", "put the bowl on the plate", "put red cube on plate", "push"]
    actions = pol.act_batch(imgs, ins)
    rec = pol.records[0]
    assert actions.shape == (4, 7) and set(np.unique(actions[:, 6])) <= {-1.0, 1.0}
    with torch.no_grad():
        logp, ent, values = score(ac, imgs, ins, rec["tokens"], temperature=1.0)
    np.testing.assert_allclose(logp.numpy(), rec["log_probs"], atol=2e-5)
    np.testing.assert_allclose(values.numpy(), rec["values"], atol=2e-5)
    assert torch.all(ent > 0)
    # the bootstrap value of a final observation is the same critic on the same position
    np.testing.assert_allclose(pol.bootstrap_values(imgs, ins), rec["values"], atol=2e-5)


def test_ppo_update_first_minibatch_is_on_policy_and_moves_lora_and_value_head():
    import torch

    from vla_gen_bench.training.actor_critic import make_optimizer
    from vla_gen_bench.training.ppo import PPOConfig, make_batch, ppo_update

    ac = micro_ac()
    trajs = fake_trajectories(ac, 2, horizon=4, returns=[1.0, 0.0])
    batch = make_batch(trajs, 0.99, 0.95)
    before = ac.trainable_state()
    opt = make_optimizer(ac, 1e-3, 1e-2)
    # one optimizer step at the end: every minibatch is scored with the rollout weights -> ratio 1 exactly
    cfg = PPOConfig(rollout=SAMPLED, minibatch_size=4, grad_accum=100)
    stats = ppo_update(ac, opt, batch, cfg, torch.Generator().manual_seed(0))
    assert stats["approx_kl"] < 1e-6 and stats["clipfrac"] == 0.0
    after = ac.trainable_state()
    assert any(not torch.equal(before["actor"][k], after["actor"][k]) for k in before["actor"])
    assert any(not torch.equal(before["value_head"][k], after["value_head"][k]) for k in before["value_head"])
    # base weights are frozen
    frozen = [p for p in ac.vla.model.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)


def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path):
    """save_state -> fresh learner -> restore_state -> the next update matches the run that never stopped."""
    import torch

    from vla_gen_bench.training.actor_critic import make_optimizer
    from vla_gen_bench.training.ppo import PPOConfig, make_batch, ppo_update
    from vla_gen_bench.training.run_dir import prepare_run_dir, restore_state, save_state

    cfg = PPOConfig(out=tmp_path / "run", rollout=SAMPLED, minibatch_size=4, grad_accum=1)
    ac = micro_ac()
    batch = make_batch(fake_trajectories(ac, 2, horizon=4, returns=[1.0, 0.0]), 0.99, 0.95)
    opt = make_optimizer(ac, 1e-3, 1e-2)
    assert prepare_run_dir(cfg.out, cfg, "ppo") is None
    ppo_update(ac, opt, batch, cfg, torch.Generator().manual_seed(0))
    save_state(cfg.out, "ppo", cfg, ac, opt, iteration=1, env_steps=8)
    ppo_update(ac, opt, batch, cfg, torch.Generator().manual_seed(1))
    uninterrupted = ac.trainable_state()

    ac2 = micro_ac(perturb=0.0)  # a fresh learner (different LoRA values until restored)
    opt2 = make_optimizer(ac2, 1e-3, 1e-2)
    state = prepare_run_dir(cfg.out, cfg, "ppo")
    assert restore_state(state, ac2, opt2) == (1, 8)
    ppo_update(ac2, opt2, batch, cfg, torch.Generator().manual_seed(1))
    resumed = ac2.trainable_state()
    for part in ("actor", "value_head"):
        for k in uninterrupted[part]:
            torch.testing.assert_close(resumed[part][k], uninterrupted[part][k], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="holds a ppo run"):
        prepare_run_dir(cfg.out, cfg, "grpo")


@pytest.mark.sim
@pytest.mark.slow
def test_ppo_smoke_on_the_real_env_and_resume(env, tmp_path):
    """One PPO iteration on VgbPutOnReceptacle-v1 with a micro checkpoint, then a resumed second iteration."""
    import csv

    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.ppo import PPOConfig, train
    from vla_gen_bench.training.rl_config import EvalConfig, ModelConfig, RolloutConfig

    model = ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32")
    cfg = PPOConfig(out=tmp_path / "ppo", model=model, rollout=RolloutConfig(workers=0, horizon=5, camera="default", policy=PolicyOptions(temperature=1.0)),
                    eval=EvalConfig(at_end=False), iterations=1, episodes_per_iter=2, minibatch_size=5, grad_accum=1)  # fmt: skip
    train(cfg, env=env)
    rows = list(csv.DictReader((cfg.out / "metrics.csv").open()))
    assert len(rows) == 1 and int(rows[0]["env_steps"]) == 10 and float(rows[0]["grad_norm"]) > 0
    assert (cfg.out / "state.pt").is_file() and (cfg.out / "config.json").is_file()
    vla = load_openvla(cfg.out / "policy", device="cpu")  # the exported policy is an evaluable checkpoint
    assert vla.network is not None
    from dataclasses import replace

    train(replace(cfg, iterations=2), env=env)  # resumes after iteration 1
    rows = list(csv.DictReader((cfg.out / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2] and int(rows[1]["env_steps"]) == 20


def test_critic_warmup_leaves_the_policy_unchanged():
    import torch

    from vla_gen_bench.training.actor_critic import make_optimizer
    from vla_gen_bench.training.ppo import PPOConfig, make_batch, ppo_update

    ac = micro_ac()
    batch = make_batch(fake_trajectories(ac, 2, horizon=4, returns=[1.0, 0.0]), 0.99, 0.95)
    before = ac.trainable_state()
    ppo_update(ac, make_optimizer(ac, 1e-2, 1e-2), batch, PPOConfig(rollout=SAMPLED, minibatch_size=4, grad_accum=1),
               torch.Generator().manual_seed(0), policy_weight=0.0)  # fmt: skip
    after = ac.trainable_state()
    assert all(torch.equal(before["actor"][k], after["actor"][k]) for k in before["actor"])
    assert any(not torch.equal(before["value_head"][k], after["value_head"][k]) for k in before["value_head"])


def test_ppo_updates_raise_the_log_prob_of_rewarded_actions():
    """A few PPO updates on a batch where one trajectory succeeded and one failed: the successful actions become
    more likely, the failed ones less (the advantage sign is followed)."""
    import torch

    from vla_gen_bench.training.actor_critic import make_optimizer, score
    from vla_gen_bench.training.ppo import PPOConfig, make_batch, ppo_update

    ac = micro_ac()
    trajs = fake_trajectories(ac, 2, horizon=4, returns=[1.0, 0.0])
    batch = make_batch(trajs, 0.99, 0.95)
    opt = make_optimizer(ac, 3e-3, 1e-2)
    # policy gradient alone
    cfg = PPOConfig(rollout=SAMPLED, minibatch_size=8, grad_accum=1, update_epochs=1, vf_coef=0.0)
    for k in range(4):
        ppo_update(ac, opt, batch, cfg, torch.Generator().manual_seed(k))
    with torch.no_grad():
        new = [score(ac, t.images, [t.instruction] * 4, t.tokens, 1.0)[0].sum().item() for t in trajs]
    old = [float(t.log_probs.sum()) for t in trajs]
    assert new[0] > old[0] and new[1] < old[1]


def test_pg_coef_7_is_rl4vla_broadcast_surrogate():
    """RL4VLA stores the joint log-prob of an action in all 7 columns of its buffer and sums the per-column clipped
    surrogates: 7 identical copies of the joint-ratio surrogate. ``pg_coef = 7`` reproduces that loss."""
    import torch

    from vla_gen_bench.training.ppo import clipped_surrogate

    g = torch.Generator().manual_seed(0)
    new, old = -torch.rand(6, 7, generator=g), -torch.rand(6, 7, generator=g)  # per-token log-probs
    adv = torch.randn(6, generator=g)
    # RL4VLA's layout: new joint log-prob (m, 1); old joint broadcast into (m, 7); advantages (m, 1)
    ratio = (
        new.sum(-1, keepdim=True) - old.sum(-1, keepdim=True).expand(6, 7)
    ).exp()  # (m, 7), equal columns
    a = adv[:, None]
    theirs = -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).sum(-1).mean()
    ours, _, _ = clipped_surrogate(new, old, adv, clip=0.2, mode="joint")
    torch.testing.assert_close(7 * ours, theirs)
    assert ((ratio - 1).abs() > 0.2).any() and ((ratio - 1).abs() < 0.2).any()  # both branches exercised


def test_pg_coef_scales_the_policy_gradient_of_the_update():
    """In ppo_update the policy gradient is pg_coef x the joint one (the gradient norm before clipping, with the
    value loss off and lr 0 so both runs see the same weights)."""
    import torch

    from vla_gen_bench.training.actor_critic import make_optimizer
    from vla_gen_bench.training.ppo import PPOConfig, make_batch, ppo_update

    ac = micro_ac()
    batch = make_batch(fake_trajectories(ac, 2, horizon=3, returns=[1.0, 0.0]), 0.99, 0.95, "terminal")
    norms = []
    for coef in (1.0, 7.0):
        cfg = PPOConfig(
            rollout=SAMPLED, minibatch_size=6, grad_accum=10, vf_coef=0.0, pg_coef=coef, max_grad_norm=1e9
        )
        norms.append(ppo_update(ac, make_optimizer(ac, 0.0, 0.0), batch, cfg, torch.Generator().manual_seed(0))
                     ["grad_norm"])  # fmt: skip
    assert norms[0] > 0 and norms[1] == pytest.approx(7 * norms[0], rel=1e-4)


def test_weight_decay_reaches_both_parameter_groups():
    from vla_gen_bench.training.actor_critic import make_optimizer

    ac = micro_ac()
    assert [g["weight_decay"] for g in make_optimizer(ac, 1e-4, 3e-3).param_groups] == [0.0, 0.0]
    opt = make_optimizer(ac, 1e-4, 3e-3, weight_decay=0.01)  # RL4VLA: AdamW's default on LoRA and value head
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in opt.param_groups] == [
        ("lora", 1e-4, 0.01),
        ("value_head", 3e-3, 0.01),
    ]
