"""``VgbStack-v1`` in the simulator: resets from the manifest are deterministic, success (on top and stable for
``STABLE_STEPS`` steps) and the outcome labels on hand-placed states, and (slow) the oracle through ``vgb evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla_gen_bench.variants import episode

pytestmark = pytest.mark.sim

IDLE = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)  # hold still, gripper open


@pytest.fixture(scope="module")
def stack_env():
    from vla_gen_bench.envs import make_env

    e = make_env(family="stack")
    yield e
    e.close()


def _place(env, piece: str, xyz, yaw: float = 0.0):
    from mani_skill.utils.structs import Pose

    u = env.unwrapped
    actor = u.objects[u.object_ids.index(piece)]
    q = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    actor.set_pose(Pose.create(torch.tensor([[*xyz, *q]], dtype=torch.float32)))
    actor.set_linear_velocity(torch.zeros(1, 3))
    actor.set_angular_velocity(torch.zeros(1, 3))


def _steps(env, n: int):
    for _ in range(n):
        obs, reward, _, _, info = env.step(IDLE)
    return float(reward[0]), info


def _label(env, info) -> str:
    return env.unwrapped.failure_labels[int(info["failure"][0])]


def _base_top(env, spec) -> tuple[float, float, float]:
    (bx, by), u = spec.receptacle_xy[0], env.unwrapped
    return bx, by, u.store.shape(spec.receptacles[0]).bounds[1][2]


def test_reset_from_the_manifest_is_deterministic(stack_env, store):
    spec = episode("stack_ind", 0, 5, store)
    frames, poses = [], []
    for _ in range(2):
        obs, _ = stack_env.reset(seed=0, options={"episode": spec})
        p = stack_env.unwrapped.privileged()[0]
        poses.append(np.concatenate([p["object_pose"], p["receptacle_pose"]]))
        frames.append(obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy())
    assert np.array_equal(poses[0], poses[1]) and np.array_equal(frames[0], frames[1])
    assert stack_env.unwrapped.instructions == [spec.instruction]
    p = stack_env.unwrapped.privileged()[0]
    assert p["family"] == "stack" and not p["on_top"] and int(p["stable_steps"]) == 0
    assert np.allclose(p["object_pose"][:2] - p["receptacle_pose"][:2],
                       np.subtract(spec.object_xy[0], spec.receptacle_xy[0]), atol=1e-4)  # fmt: skip
    # the piece and the base are in the policy camera's view: both segments are in the image
    seg = obs["sensor_data"]["policy_camera"]["segmentation"][0, ..., 0].cpu().numpy()
    u = stack_env.unwrapped
    ids = {getattr(o, "name", None): i for i, o in u.segmentation_id_map.items()}
    assert (seg == ids[spec.objects[0]]).sum() > 50 and (seg == ids[spec.receptacles[0]]).sum() > 50


def test_on_top_counts_as_success_only_once_stable_for_n_steps(stack_env, store):
    from vla_gen_bench.envs.stack import STABLE_STEPS

    spec = episode("stack_ind", 0, 2, store)
    stack_env.reset(seed=0, options={"episode": spec})
    _, info = _steps(stack_env, 2)
    assert not info["success"][0] and _label(stack_env, info) == "never_grasped"  # where it started
    bx, by, top = _base_top(stack_env, spec)
    _place(stack_env, spec.objects[0], (bx + 0.005, by, top + 0.002), yaw=0.3)  # on the base's top face
    _, info = _steps(stack_env, 3)
    assert info["on_top"][0] and int(info["stable_steps"][0]) == 3
    assert not info["success"][0] and _label(stack_env, info) == "timeout"  # on top, not yet for N steps
    reward, info = _steps(stack_env, STABLE_STEPS - 3)
    assert info["success"][0] and info["success_once"][0] and _label(stack_env, info) == "success"
    assert 4.5 < reward <= 5.0
    _place(stack_env, spec.objects[0], (bx + 0.12, by, 0.002))  # knocked off onto the table: toppled
    reward, info = _steps(stack_env, 2)
    assert not info["success"][0] and info["success_once"][0] and _label(stack_env, info) == "toppled"
    assert 0.0 <= reward < 2.0


def test_beside_off_centre_and_far_from_the_base(stack_env, store):
    """Released beside the base or on its edge (centre within the margin of the outline): misplaced; far away:
    dropped; on top with its centre too near the edge is not on top."""
    from vla_gen_bench.assets.stack import base_inradius

    spec = episode("stack_ind", 0, 3, store)
    stack_env.reset(seed=0, options={"episode": spec})
    u = stack_env.unwrapped
    u._ever_grasped[0] = True  # as if the robot had picked the piece up and let it go here
    bx, by, top = _base_top(stack_env, spec)
    inner = base_inradius(u.store.shape(spec.receptacles[0]))
    half = float(u.store.shape(spec.objects[0]).bounds[1][0])
    _place(stack_env, spec.objects[0], (bx, by + inner + half + 0.01, 0.002))  # on the table beside the base
    _, info = _steps(stack_env, 3)
    assert not info["on_top"][0] and _label(stack_env, info) == "misplaced"
    _place(stack_env, spec.objects[0], (bx, by + inner - 0.004, top + 0.002))  # centre 4 mm inside the edge
    _, info = _steps(stack_env, 1)
    assert not info["on_top"][0] and _label(stack_env, info) == "misplaced"
    _place(stack_env, spec.objects[0], (bx + 0.25, by, 0.002))
    _, info = _steps(stack_env, 3)
    assert not info["on_top"][0] and _label(stack_env, info) == "dropped"


@pytest.mark.slow
def test_the_oracle_stacks_through_evaluate(tmp_path):
    """``vgb evaluate --policy scripted`` hands stack episodes to the stack oracle; it stacks, also after the piece
    is moved at step 5, and the run records the family, its control and its asset hash."""
    from vla_gen_bench.assets.stack import pack_hash
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate

    out = tmp_path / "run"
    evaluate(Evaluate(policy="scripted", out=out, suite="stack_ind,stack_reposition", episodes=2, seeds=(0,),
                      videos=0))  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    v = run["variants"]["stack_reposition"]
    assert v["family"] == "stack" and v["control"] == "stack_ind" and v["family_assets_hash"] == pack_hash()
    recs = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["success"] and r["failure"] == "success" for r in recs)
