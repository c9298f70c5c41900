"""RL rollouts three ways (in the learner, per-worker policy copies, simulator-only workers answered by the
learner's batching policy server) give the same trajectories: every item samples from its own key."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.test_rl_common import micro_ac, micro_ckpt

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_rollouts_are_the_same_in_process_per_worker_and_served():
    from vla_gen_bench.training.rl_common import ModelConfig, RolloutConfig, Rollouts, training_items

    ac = micro_ac()
    items = training_items("ind", 1000, 0, 3)
    model = ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32")
    out = {}
    for name, kw in {"in-process": dict(workers=0), "per-worker": dict(workers=1),
                     "served": dict(workers=2, policy_server=True)}.items():  # fmt: skip
        r = Rollouts(model, RolloutConfig(camera="fast", horizon=12, temperature=1.0, **kw), ac)
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
