"""``VgbPush-v1`` in the simulator: resets from the manifest are deterministic, success and the outcome labels on
hand-placed states, and (slow) the oracle through ``vgb evaluate`` on a suite of two families."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla_gen_bench.variants import episode

pytestmark = pytest.mark.sim

IDLE = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)  # hold still, gripper open


@pytest.fixture(scope="module")
def push_env():
    from vla_gen_bench.envs import make_env

    e = make_env(family="push")
    yield e
    e.close()


def _place(env, actor_id: str, xy, yaw: float = 0.0):
    from mani_skill.utils.structs import Pose

    u = env.unwrapped
    actor = u.objects[u.object_ids.index(actor_id)]
    q = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    actor.set_pose(Pose.create(torch.tensor([[*xy, 0.002, *q]], dtype=torch.float32)))
    actor.set_linear_velocity(torch.zeros(1, 3))
    actor.set_angular_velocity(torch.zeros(1, 3))


def _steps(env, n: int = 3):
    for _ in range(n):
        obs, _, _, _, info = env.step(IDLE)
    return obs, info


def _label(env, info) -> str:
    return env.unwrapped.failure_labels[int(info["failure"][0])]


def test_reset_from_the_manifest_is_deterministic(push_env, store):
    spec = episode("push_ind", 0, 5, store)
    frames, poses = [], []
    for _ in range(2):
        obs, _ = push_env.reset(seed=0, options={"episode": spec})
        u = push_env.unwrapped
        poses.append(np.concatenate([u.privileged()[0]["object_pose"], u.privileged()[0]["receptacle_pose"]]))
        frames.append(obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy())
    assert np.array_equal(poses[0], poses[1]) and np.array_equal(frames[0], frames[1])
    assert push_env.unwrapped.instructions == [spec.instruction]
    p = push_env.unwrapped.privileged()[0]
    assert p["family"] == "push" and not p["inside"]
    assert np.allclose(p["object_pose"][:2] - p["receptacle_pose"][:2],
                       np.subtract(spec.object_xy[0], spec.receptacle_xy[0]), atol=1e-4)  # fmt: skip


def test_success_and_labels_on_hand_placed_states(push_env, store):
    spec = episode("push_ind", 0, 2, store)
    obj, (rx, ry) = spec.objects[0], spec.receptacle_xy[0]
    push_env.reset(seed=0, options={"episode": spec})
    _, info = _steps(push_env)
    assert not info["success"][0] and _label(push_env, info) == "never_touched"  # where it started
    _place(push_env, obj, (rx, ry), yaw=0.3)  # in the middle of the region
    _, info = _steps(push_env)
    assert info["success"][0] and info["success_once"][0] and _label(push_env, info) == "success"
    _place(push_env, obj, (rx + 0.10, ry))  # moved out again: it was in, so it overshot
    _, info = _steps(push_env)
    assert not info["success"][0] and info["success_once"][0] and _label(push_env, info) == "overshot"
    # a fresh episode: just over the edge is not inside (the footprint must be in, not the centre)
    push_env.reset(seed=0, options={"episode": spec})
    inner = float(push_env.unwrapped.privileged()[0]["region_inradius"])
    _place(push_env, obj, (rx + inner, ry))
    _, info = _steps(push_env)
    assert not info["success"][0] and not info["inside"][0]


@pytest.mark.slow
def test_the_oracle_through_evaluate_on_two_families(tmp_path):
    """``vgb evaluate`` builds each family's env, records the family in run.json, labels push episodes with the
    push labels and reports per family; the oracle solves push episodes, also after the reposition."""
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate
    from vla_gen_bench.eval.report import load_run

    out = tmp_path / "run"
    evaluate(Evaluate(policy="scripted", out=out, suite="ind,push_ind,push_reposition", episodes=2, seeds=(0,),
                      videos=0))  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    assert "family" not in run["variants"]["ind"]
    assert run["variants"]["push_ind"]["family"] == "push"
    assert run["variants"]["push_reposition"]["control"] == "push_ind"
    recs = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    push = [r for r in recs if r["variant"].startswith("push")]
    assert len(push) == 4 and all(r["success"] and r["failure"] == "success" for r in push)
    s = load_run(out).summary()
    assert set(s.families) == {"put_on", "push"}
    assert s.variant("push_reposition").paired is not None and s.families["push"].control == "push_ind"
    assert "push: execution" in (out / "report.md").read_text()
