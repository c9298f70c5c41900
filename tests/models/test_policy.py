"""The ``openvla:<dir>`` policy adapter on a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models.conftest import copy_checkpoint
from vla_gen_bench.models.action_tokenizer import UnnormKeyError
from vla_gen_bench.policies.base import ActionSpec, Policy
from vla_gen_bench.policies.openvla import OpenVLAPolicy
from vla_gen_bench.policies.registry import resolve_policy


@pytest.fixture(scope="module")
def policy(tiny_ckpt):
    return resolve_policy(f"openvla:{tiny_ckpt}", device="cpu", seed=0)


def obs(image, instruction="put the red cube on the plate"):
    return {"image": image, "instruction": instruction, "state": np.zeros(9, np.float32)}


def test_policy_returns_a_valid_env_action(policy, images):
    assert isinstance(policy, OpenVLAPolicy) and isinstance(policy, Policy)
    assert policy.spec == ActionSpec() and not policy.spec.privileged
    policy.reset("put the red cube on the plate")
    a = policy.act(obs(images[0]))
    assert a.shape == (7,) and a.dtype == np.float32 and np.isfinite(a).all()
    assert a[6] in (-1.0, 1.0)
    assert (np.abs(a[:3]) <= 0.1 + 1e-6).all() and (np.abs(a[3:6]) <= 0.5 + 1e-6).all()
    # any camera size: the processor resizes to the checkpoint's input
    wide = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    assert policy.act(obs(wide)).shape == (7,)
    # the instruction from reset() is used when the observation has none
    assert np.array_equal(policy.act({"image": images[0]}), a)


def test_metadata_records_what_produced_the_actions(policy, tiny_ckpt):
    m = policy.metadata
    assert m["checkpoint"] == str(tiny_ckpt) and m["unnorm_key"] == "random_init" and m["preset"] == "tiny"
    assert len(m["checkpoint_sha256"]) == 64 and m["temperature"] == 0.0 and m["dtype"] == "float32"
    assert m["prompt_template"].startswith("In: What action should the robot take to")
    json.dumps(m)


def test_gripper_mapping():
    p = OpenVLAPolicy.__new__(OpenVLAPolicy)
    raw = np.array([[0.01, -0.02, 0.0, 0.1, 0.0, -0.1, g] for g in (1.0, 0.7, 0.5, 0.2, 0.0, -1.0)])
    env = p.to_env_actions(raw)
    assert env[:, 6].tolist() == [1.0, 1.0, -1.0, -1.0, -1.0, -1.0]  # 1 = open in OpenVLA's data
    assert np.allclose(env[:, :6], raw[:, :6])


def test_sampling_policy_is_seeded(tiny_ckpt, images):
    a = OpenVLAPolicy.from_path(tiny_ckpt, device="cpu", temperature=1.0, seed=7, fingerprint=False)
    b = OpenVLAPolicy.from_path(tiny_ckpt, device="cpu", temperature=1.0, seed=7, fingerprint=False)
    run = [np.stack([p.act(obs(images[i % 4])) for i in range(6)]) for p in (a, b)]
    assert np.array_equal(run[0], run[1])


def test_unnorm_key_is_required_when_there_are_several(tiny_ckpt, tmp_path):
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "ck")
    stats = {"bridge_orig": {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}}}
    (ck / "dataset_statistics.json").write_text(json.dumps(stats))
    with pytest.raises(UnnormKeyError, match="available: bridge_orig, random_init"):
        OpenVLAPolicy.from_path(ck, device="cpu")
    with pytest.raises(UnnormKeyError, match="did you mean 'bridge_orig'"):
        OpenVLAPolicy.from_path(ck, device="cpu", unnorm_key="bridge")
    p = OpenVLAPolicy.from_path(ck, device="cpu", unnorm_key="bridge_orig", fingerprint=False)
    assert p.metadata["unnorm_key"] == "bridge_orig"


def test_missing_instruction_is_an_error(tiny_ckpt, images):
    p = OpenVLAPolicy.from_path(tiny_ckpt, device="cpu", fingerprint=False)
    with pytest.raises(ValueError, match="no instruction"):
        p.act({"image": images[0]})
