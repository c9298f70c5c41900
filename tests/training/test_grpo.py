"""GRPO: group normalisation of returns and its update."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.test_rl_shared import SAMPLED, fake_trajectories, micro_ac


def test_group_normalisation():
    from vla_gen_bench.training.grpo import group_advantages

    returns = np.array([1.2, 0.0, 0.2, 0.2, 0.5, 0.5, 0.5, 1.0])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    adv = group_advantages(returns, groups, eps=0.0)
    # group 0: mean 0.4, population std sqrt(((0.8)^2 + 0.4^2 + 2*0.2^2) / 4) = sqrt(0.22)
    sd = np.sqrt(0.22)
    np.testing.assert_allclose(adv[:4], [0.8 / sd, -0.4 / sd, -0.2 / sd, -0.2 / sd], rtol=1e-5)
    # identical returns (group 1) and a lone trajectory (group 2) carry no signal
    np.testing.assert_array_equal(adv[4:], 0.0)
    # each group is normalised on its own: mean 0, std 1
    assert abs(adv[:4].mean()) < 1e-6 and abs(adv[:4].std() - 1) < 1e-5
    # shifting or scaling one group's returns does not change its advantages
    np.testing.assert_allclose(group_advantages(returns * 3 + 1, groups, 0.0)[:4], adv[:4], rtol=1e-5)


def test_grpo_batch_and_update():
    import torch

    from vla_gen_bench.training.actor_critic import make_optimizer
    from vla_gen_bench.training.grpo import GRPOConfig, grpo_update, make_batch

    ac = micro_ac(with_value=False)
    assert ac.value_head is None
    trajs = fake_trajectories(ac, 4, horizon=3, groups=[0, 0, 1, 1], returns=[1.0, 0.0, 0.1, 0.1])
    batch = make_batch(trajs, 1e-6)
    assert len(batch) == 6  # group 1 (equal returns) dropped; 2 trajectories x 3 steps
    np.testing.assert_allclose(batch.advantages, [1, 1, 1, -1, -1, -1], rtol=1e-5)
    before = ac.trainable_state()["actor"]
    stats = grpo_update(ac, make_optimizer(ac, 1e-3), batch, GRPOConfig(rollout=SAMPLED, minibatch_size=3, grad_accum=10, kl_coef=0.1),
                        torch.Generator().manual_seed(0))  # fmt: skip
    assert (
        stats["approx_kl"] < 1e-6 and stats["kl_ref"] > 0
    )  # on-policy; LoRA moved it away from the reference
    after = ac.trainable_state()["actor"]
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert make_batch(trajs[2:], 1e-6) is None


@pytest.mark.sim
@pytest.mark.slow
def test_grpo_smoke_on_the_real_env(env, tmp_path):
    import csv

    from tests.training.test_rl_shared import micro_ckpt
    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.grpo import GRPOConfig, train
    from vla_gen_bench.training.rl_config import EvalConfig, ModelConfig, RolloutConfig

    cfg = GRPOConfig(out=tmp_path / "grpo", model=ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32"),
                     rollout=RolloutConfig(workers=0, horizon=4, camera="default", policy=PolicyOptions(temperature=1.0)), eval=EvalConfig(at_end=False),
                     iterations=1, groups_per_iter=1, group_size=2, minibatch_size=4, grad_accum=1)  # fmt: skip
    train(cfg, env=env)
    rows = list(csv.DictReader((cfg.out / "metrics.csv").open()))
    assert (
        len(rows) == 1 and int(rows[0]["env_steps"]) == 8 and (cfg.out / "policy" / "config.json").is_file()
    )
