"""DPO / TPO: loss sign on a constructed preference pair, pairs from rewards, exact chunked gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.training.test_rl_shared import SAMPLED, fake_trajectories, micro_ac


def test_dpo_loss_sign_on_a_constructed_pair():
    import torch

    from vla_gen_bench.training.dpo import dpo_loss

    ref_w, ref_l = torch.tensor([-50.0]), torch.tensor([-50.0])
    at_ref = dpo_loss(ref_w.clone(), ref_l.clone(), ref_w, ref_l, beta=0.1)
    assert float(at_ref) == pytest.approx(math.log(2))
    # the policy prefers the winner more than the reference does -> lower loss; the reverse -> higher
    assert float(dpo_loss(torch.tensor([-45.0]), ref_l, ref_w, ref_l, 0.1)) < math.log(2)
    assert float(dpo_loss(torch.tensor([-55.0]), ref_l, ref_w, ref_l, 0.1)) > math.log(2)
    # gradient descent raises the winner's log-prob and lowers the loser's
    pw, pl = ref_w.clone().requires_grad_(True), ref_l.clone().requires_grad_(True)
    dpo_loss(pw, pl, ref_w, ref_l, 0.1).backward()
    assert float(pw.grad) < 0 < float(pl.grad)
    assert float(pw.grad) == pytest.approx(-0.05)  # -beta * sigmoid(0)


def test_preference_pairs_from_rewards():
    from vla_gen_bench.training.dpo import preference_pairs
    from vla_gen_bench.training.rollouts import Trajectory

    def t(group, ret):
        return Trajectory(images=np.zeros((1, 4, 4, 3), np.uint8), instruction="x", tokens=np.zeros((1, 7), np.int64),
                          log_probs=np.zeros((1, 7)), values=None, rewards=np.array([ret]), last_value=0.0,
                          success=ret >= 1, grasped=ret > 0, seed=1000, episode=group, group=group)  # fmt: skip

    trajs = [t(0, 0.1), t(0, 1.2), t(0, 0.0), t(1, 0.2), t(1, 0.2), t(2, 0.0), t(2, 0.02)]
    assert preference_pairs(trajs, 0.05) == [(1, 2)]  # group 1 ties, group 2 below the gap
    assert sorted(preference_pairs(trajs, 0.05, "all")) == [(0, 2), (1, 0), (1, 2)]


def test_chunked_dpo_gradient_equals_the_direct_gradient():
    import torch

    from vla_gen_bench.training.actor_critic import score
    from vla_gen_bench.training.dpo import DPOConfig, dpo_loss, dpo_update, trajectory_logp

    ac = micro_ac(with_value=False)
    trajs = fake_trajectories(ac, 2, horizon=5, groups=[0, 0], returns=[1.0, 0.0])
    with ac.reference():
        ref = {i: trajectory_logp(ac, trajs[i], 1.0, 2) for i in (0, 1)}
    params = ac.actor_parameters()
    # direct: full sums with autograd
    lp = [
        score(ac, tr.images, [tr.instruction] * 5, tr.tokens, 1.0, with_values=False)[0].sum() for tr in trajs
    ]
    dpo_loss(lp[0], lp[1], torch.tensor(ref[0]), torch.tensor(ref[1]), 0.1).backward()
    direct = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None

    class NoStep(torch.optim.SGD):  # keep the accumulated gradient for inspection
        def step(self, closure=None):
            self.kept = [p.grad.clone() for p in params]

        def zero_grad(self, set_to_none=True):
            pass

    opt = NoStep(params, lr=0.0)
    cfg = DPOConfig(rollout=SAMPLED, beta=0.1, chunk_size=2, pairs_per_step=1, max_grad_norm=1e9)
    stats = dpo_update(ac, opt, trajs, [(0, 1)], ref, cfg, torch.Generator().manual_seed(0))
    for a, b in zip(opt.kept, direct, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert stats["loss"] > 0 and abs(stats["loss"] - math.log(2)) < 0.5


@pytest.mark.sim
@pytest.mark.slow
def test_dpo_smoke_on_the_real_env_with_evaluation_during_training(env, tmp_path):
    """Two DPO iterations on VgbPutOnReceptacle-v1, evaluated after iteration 1 (an exported checkpoint) and at the
    end (the final policy) by ``vgb evaluate``: eval.jsonl holds the evaluator's own per-variant rates."""
    import csv
    import json

    from tests.training.test_rl_shared import micro_ckpt
    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.dpo import DPOConfig, train
    from vla_gen_bench.training.rl_config import EvalConfig, ModelConfig, RolloutConfig
    from vla_gen_bench.training.rl_eval import summarize_episodes

    cfg = DPOConfig(out=tmp_path / "dpo", model=ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32"),
                    rollout=RolloutConfig(workers=0, horizon=4, camera="default", policy=PolicyOptions(temperature=1.0)),
                    eval=EvalConfig(every=1, at_end=True, suite="ind", episodes=1, workers=1),
                    iterations=2, groups_per_iter=1, group_size=2, min_return_gap=-1.0)  # fmt: skip
    train(cfg, env=env)  # min_return_gap < 0: the pair is formed even with equal (zero) returns
    rows = list(csv.DictReader((cfg.out / "metrics.csv").open()))
    assert [int(r["pairs"]) for r in rows] == [1, 1] and float(rows[0]["grad_norm"]) >= 0
    evals = [json.loads(line) for line in (cfg.out / "eval.jsonl").read_text().splitlines()]
    assert [e["tag"] for e in evals] == ["iter_0001", "final"]
    assert (cfg.out / "checkpoints" / "iter_0001" / "config.json").is_file()
    for e in evals:
        assert e["results"] == summarize_episodes(cfg.out / "eval" / e["tag"] / "episodes.jsonl")
        assert list(e["results"]) == ["ind"] and e["results"]["ind"]["n"] == 1
