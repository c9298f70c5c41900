"""Action chunking (``action_chunk``): labels are the next K demonstrator actions, the checkpoint records K, the
policy returns a (K, 7) chunk that the runner executes open-loop, and sampling keys cover all 7K tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training.test_sft import _cfg, demos  # noqa: F401  (module-scoped fixture)


def test_future_actions_follow_raw_time_and_hold_still_past_the_end():
    from vla_gen_bench.training.dataset import future_actions

    a = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    a[:, 6] = [1, 1, -1, -1, 1]
    out = future_actions(a, np.array([0, 3, 4]), 3)
    assert out.shape == (3, 3, 7)
    assert np.array_equal(out[0], a[0:3])  # skipped (idle) steps still belong to what follows a frame
    assert np.array_equal(out[1, :2], a[3:5])
    hold = np.zeros(7, np.float32)
    hold[6] = 1.0  # the last gripper command, no motion
    assert (
        np.array_equal(out[1, 2], hold)
        and np.array_equal(out[2, 1], hold)
        and np.array_equal(out[2, 2], hold)
    )


def test_dataset_items_carry_the_chunk_and_the_config_round_trips(demos):  # noqa: F811
    from vla_gen_bench.models.config import ConfigError, OpenVLAConfig
    from vla_gen_bench.training.dataset import DemoDataset

    one, four = DemoDataset(demos), DemoDataset(demos, chunk=4)
    assert "chunk" not in one[0] and four[0]["chunk"].shape == (4, 7)
    assert np.array_equal(four[0]["chunk"][0], four[0]["action"])
    assert len(one) == len(four)  # chunking changes the labels, not which frames are trained on
    c = OpenVLAConfig(action_chunk=4)
    assert OpenVLAConfig.from_dict(c.to_dict()).action_chunk == 4
    assert "vgb" not in OpenVLAConfig().to_dict()  # a plain OpenVLA config.json is unchanged
    with pytest.raises(ConfigError, match="action_chunk"):
        OpenVLAConfig(action_chunk=0)


def test_chunked_sft_checkpoint_acts_in_chunks_with_keyed_sampling(demos, tmp_path):  # noqa: F811
    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.models.config import ConfigError, OpenVLAConfig
    from vla_gen_bench.policies.openvla import OpenVLAPolicy
    from vla_gen_bench.training.sft import train

    final = train(
        _cfg(demos, tmp_path / "c", max_steps=2, action_chunk=3, gripper_weight=2.0), progress=False
    )
    vla = load_openvla(final, device="cpu")
    assert vla.chunk == 3
    img = np.zeros((64, 64, 3), np.uint8)
    assert vla.predict_action(img, ["put thing0 on plate"]).actions.shape == (1, 3, 7)
    policy = OpenVLAPolicy(vla, temperature=1.0, seed=5)
    assert policy.spec.chunk == 3 and policy.metadata["action_chunk"] == 3
    policy.reset("put thing0 on plate")
    a = policy.act({"image": img, "sample_key": 11})
    assert a.shape == (3, 7) and set(np.unique(a[:, 6])) <= {-1.0, 1.0}
    b = policy.act_batch(np.stack([img, img]), ["put thing0 on plate"] * 2, [7, 11])
    assert np.array_equal(b[1], a)  # the key alone decides the sampled chunk, whatever shares the batch
    # receding horizon: only the first `execute` rows of the same chunk run, then a new forward pass
    head = OpenVLAPolicy(vla, temperature=1.0, seed=5, execute=2)
    assert head.spec.chunk == 2 and head.metadata["execute"] == 2
    head.reset("put thing0 on plate")
    assert np.array_equal(head.act({"image": img, "sample_key": 11}), a[:2])
    for bad in (4, -1, 1.5, "two"):
        with pytest.raises(ValueError, match="execute takes 1 to 3"):
            OpenVLAPolicy(vla, execute=bad)
    # the recipe's receding horizon travels in the checkpoint (vgb.execute): the policy's default, overridable
    recipe = train(_cfg(demos, tmp_path / "e", max_steps=1, action_chunk=3, execute=1), progress=False)
    assert json.loads((recipe / "config.json").read_text())["vgb"]["execute"] == 1
    vla_e = load_openvla(recipe, device="cpu")
    assert OpenVLAPolicy(vla_e).spec.chunk == 1 and OpenVLAPolicy(vla_e).metadata["execute"] == 1
    assert OpenVLAPolicy(vla_e, execute=0).spec.chunk == 3 and OpenVLAPolicy(vla_e, execute=2).spec.chunk == 2
    assert OpenVLAPolicy(vla).metadata["execute"] == 3  # no vgb.execute: the whole chunk, as before
    with pytest.raises(ConfigError, match="execute"):
        OpenVLAConfig(action_chunk=2, execute=3)
    # resuming the run with another chunk size is refused
    with pytest.raises(ValueError, match="action_chunk"):
        train(_cfg(demos, tmp_path / "c", max_steps=4, action_chunk=1), progress=False)


def test_decision_rewards_sum_each_chunk_and_keep_single_steps():
    from vla_gen_bench.training.rollouts import decision_rewards

    r = np.arange(10, dtype=np.float32)[None]
    assert np.array_equal(decision_rewards(r, 1), r)
    assert decision_rewards(r, 4).tolist() == [[6.0, 22.0, 17.0]]  # the last chunk is cut by the horizon
