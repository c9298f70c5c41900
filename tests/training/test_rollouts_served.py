"""RL rollouts three ways (in the learner, per-worker policy copies, simulator-only workers answered by the
learner's batching policy server) give the same trajectories: every item samples from its own key."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.test_rl_shared import micro_ac, micro_ckpt

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_rollouts_are_the_same_in_process_per_worker_and_served():
    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.rl_config import ModelConfig, RolloutConfig
    from vla_gen_bench.training.rollouts import Rollouts, training_items

    ac = micro_ac()
    items = training_items("ind", 1000, 0, 3)
    model = ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32")
    out = {}
    for name, kw in {"in-process": dict(workers=0), "per-worker": dict(workers=1),
                     "served": dict(workers=2, policy_server=True)}.items():  # fmt: skip
        r = Rollouts(
            model, RolloutConfig(camera="fast", horizon=12, policy=PolicyOptions(temperature=1.0), **kw), ac
        )
        try:
            out[name] = r.collect(items, iteration=3, seed=7)
            if name == "served":  # every step went through the learner's server (batch sizes vary)
                assert r.server.stats.requests == 3 * 12
        finally:
            r.close()
    ref = out["in-process"]
    assert len({tuple(t.tokens[:, 0]) for t in ref}) > 1, "different items should sample differently"
    for name in ("per-worker", "served"):
        for a, b in zip(ref, out[name], strict=True):
            assert (a.seed, a.episode, a.instruction) == (b.seed, b.episode, b.instruction)
            np.testing.assert_array_equal(a.tokens, b.tokens, err_msg=name)
            np.testing.assert_allclose(a.log_probs, b.log_probs, atol=1e-5, err_msg=name)
            np.testing.assert_allclose(a.values, b.values, atol=1e-5, err_msg=name)
            np.testing.assert_allclose(a.rewards, b.rewards, err_msg=name)
            assert a.images.shape == b.images.shape == (12, 128, 128, 3)
            assert abs(a.last_value - b.last_value) < 1e-4


def test_chunked_checkpoint_rolls_out_one_decision_per_chunk_in_process_and_served():
    """A checkpoint with 3-action chunks: 12 env steps are 4 decisions of 21 tokens, each decision's reward sums
    its steps, and the served rollout answers 4 requests per item with the same tokens as in-process."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.actor_critic import build_actor_critic
    from vla_gen_bench.training.rl_config import ModelConfig, RolloutConfig
    from vla_gen_bench.training.rollouts import Rollouts, training_items

    ckpt = Path(tempfile.mkdtemp(prefix="vgb-chunk-")) / "micro3"
    shutil.copytree(micro_ckpt(), ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.setdefault("vgb", {})["action_chunk"] = 3
    (ckpt / "config.json").write_text(json.dumps(cfg))
    model = ModelConfig(init=ckpt, lora_r=4, device="cpu", dtype="float32")
    ac = build_actor_critic(model, with_value=True, seed=0)
    assert ac.vla.chunk == 3
    items = training_items("ind", 1000, 0, 2)
    out = {}
    for name, kw in {"in-process": dict(workers=0), "served": dict(workers=2, policy_server=True)}.items():
        r = Rollouts(
            model, RolloutConfig(camera="fast", horizon=12, policy=PolicyOptions(temperature=1.0), **kw), ac
        )
        try:
            out[name] = r.collect(items, iteration=0, seed=1)
            if name == "served":
                assert r.server.stats.requests == 2 * 4
        finally:
            r.close()
    for a, b in zip(out["in-process"], out["served"], strict=True):
        assert a.tokens.shape == (4, 21) and a.log_probs.shape == (4, 21) and a.images.shape[0] == 4
        assert a.rewards.shape == (4,) and a.values.shape == (4,)
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_allclose(a.rewards, b.rewards)
