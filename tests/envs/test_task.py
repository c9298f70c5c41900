"""Behaviour of VgbPutOnReceptacle-v1 on constructed states (real simulation, one shared env)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla_gen_bench.episode import EpisodeSpec, Overlay, Reposition
from vla_gen_bench.eval.runner import policy_observation
from vla_gen_bench.policies.scripted import ScriptedPolicy

pytestmark = pytest.mark.sim
ZERO = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)


def spec(**kw) -> EpisodeSpec:
    base = dict(objects=("obj_red_cube",), receptacles=("rec_plate",), table="table_oak_wood_table",
                object_xy=((-0.175, -0.075),), object_yaw=(0.0,), receptacle_xy=((-0.025, 0.075),),
                instruction="put red cube on plate")  # fmt: skip
    base.update(kw)
    return EpisodeSpec(**base)


def privileged_for(env, obj_id=None, rec_id=None) -> dict:
    """The oracle's privileged observation, optionally pointed at another object / receptacle."""
    u = env.unwrapped
    p = dict(u.privileged()[0])
    base_inv = u.agent.robot.pose.inv()
    if obj_id:
        a = u.objects[u.object_ids.index(obj_id)]
        p["object_pose"] = (base_inv * a.pose).raw_pose[0].cpu().numpy()
        p["object_grasp"] = np.asarray(u.store.shape(obj_id).grasp_pose, dtype=np.float32)
        p["object_height"] = np.float32(u.store.shape(obj_id).bounds[1][2])
    if rec_id:
        a = u.receptacles[u.receptacle_ids.index(rec_id)]
        p["receptacle_pose"] = (base_inv * a.pose).raw_pose[0].cpu().numpy()
    return p


def run_oracle(env, episode, steps=80, obj_id=None, rec_id=None, until_phase=None):
    obs, info = env.reset(seed=0, options={"episode": episode})
    pol = ScriptedPolicy()
    pol.reset(episode.instruction)
    rewards = []
    for _ in range(steps):
        if until_phase and pol.phase == until_phase:
            break
        obs, r, term, trunc, info = env.step(pol.act({"privileged": privileged_for(env, obj_id, rec_id)}))
        rewards.append(float(r[0]))
        assert not bool(term[0]), "the task never terminates early"
    return obs, info, pol, rewards


def label(info) -> str:
    from vla_gen_bench.envs import FAILURE_LABELS

    return FAILURE_LABELS[int(info["failure"][0])]


def test_reset_is_deterministic_for_a_seed(env, store):
    from vla_gen_bench.variants import CONTROL, episode

    u = env.unwrapped
    a, _ = env.reset(seed=11)
    spec_a, img_a = u.episode_specs[0], a["sensor_data"]["policy_camera"]["rgb"].clone()
    # without an episode the env takes the control arm's manifest: episode 0 of a seed from its episode RNG
    assert spec_a == episode(CONTROL, np.random.RandomState(11).randint(2**31), 0, store)
    assert spec_a.meta["variant"] == CONTROL
    pose_a = [o.pose.raw_pose.clone() for o in u.objects]
    env.reset(seed=12)
    assert u.episode_specs[0] != spec_a
    b, _ = env.reset(seed=11)
    assert u.episode_specs[0] == spec_a
    assert torch.equal(b["sensor_data"]["policy_camera"]["rgb"], img_a)
    for pa, o in zip(pose_a, u.objects, strict=False):
        assert torch.allclose(pa, o.pose.raw_pose)


def test_plus_x_action_moves_the_tcp_plus_x_and_gripper_minus_one_closes(env):
    u = env.unwrapped
    env.reset(seed=0, options={"episode": spec()})
    tcp0 = u.proprio()[0, 9:12].copy()
    for _ in range(3):
        env.step(np.array([0.04, 0, 0, 0, 0, 0, 1.0]))
    d = u.proprio()[0, 9:12] - tcp0
    assert d[0] == pytest.approx(0.12, abs=0.015) and abs(d[1]) < 0.01 and abs(d[2]) < 0.01
    fingers_open = u.agent.robot.get_qpos()[0, 7:].clone()
    for _ in range(2):
        env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
    fingers = u.agent.robot.get_qpos()[0, 7:]
    assert (fingers < fingers_open - 0.02).all()


def test_object_resting_on_the_receptacle_is_success(env):
    ep = spec(object_xy=((-0.025, 0.075),))  # spawned on the plate
    env.reset(seed=0, options={"episode": ep})
    for _ in range(3):
        _, _, _, _, info = env.step(ZERO)
    assert bool(info["success"][0]) and label(info) == "success"
    assert not bool(info["ever_grasped"][0])
    assert float(info["potential"][0]) == 0.0, "placing pays only after a grasp"


def test_object_held_at_the_end_is_timeout(env):
    _, info, pol, _ = run_oracle(env, spec(), until_phase="carry")
    assert pol.phase == "carry"
    assert bool(info["is_grasped"][0]) and bool(info["ever_grasped"][0])
    assert label(info) == "timeout" and not bool(info["success"][0])


def test_released_far_from_the_receptacle_is_dropped(env):
    obs, info, pol, _ = run_oracle(env, spec(), until_phase="carry")
    for _ in range(6):
        _, _, _, _, info = env.step(ZERO)  # open the gripper where the object was picked up
    assert bool(info["ever_grasped"][0]) and not bool(info["is_grasped"][0])
    assert label(info) == "dropped"


def test_object_on_the_wrong_receptacle_is_misplaced(env):
    ep = spec(receptacles=("rec_plate", "rec_blue_tray"), receptacle_xy=((-0.025, 0.075), (-0.175, 0.075)))
    _, info, _, _ = run_oracle(env, ep, rec_id="rec_blue_tray")
    assert bool(info["on_wrong_receptacle"][0]) and not bool(info["success"][0])
    assert label(info) == "misplaced"


def test_grasping_the_distractor_is_wrong_object(env):
    ep = spec(objects=("obj_red_cube", "obj_green_cylinder"), object_xy=((-0.175, -0.075), (-0.175, 0.045)),
              object_yaw=(0.0, 0.0))  # fmt: skip
    _, info, _, _ = run_oracle(env, ep, steps=20, obj_id="obj_green_cylinder")
    assert bool(info["wrong_object_grasped"][0]) and not bool(info["ever_grasped"][0])
    assert label(info) == "wrong_object"


def test_oracle_episode_pays_the_full_potential_as_step_differences(env):
    _, info, _, rewards = run_oracle(env, spec())
    assert bool(info["success"][0]) and label(info) == "success"
    assert sum(rewards) == pytest.approx(1.2)
    assert sorted(set(round(r, 6) for r in rewards)) == [0.0, 0.1, 1.0]


def test_evaluate_and_the_reward_only_read_the_state(env):
    """The episode statistics change once per control step, in ``step``: ``evaluate()`` and the reward asked again
    within a step give the step's values, and the rewards still add up to the potential (grasp, sustained grasp)."""
    u = env.unwrapped
    ep = spec()
    env.reset(seed=0, options={"episode": ep})
    pol = ScriptedPolicy()
    pol.reset(ep.instruction)
    rewards = []
    for _ in range(16):
        obs, r, _, _, info = env.step(pol.act({"privileged": privileged_for(env)}))
        for _ in range(2):
            again = u.evaluate()
            assert again.keys() == info.keys() - {"elapsed_steps"}
            assert all(torch.equal(again[k], info[k]) for k in again), "evaluate() changed the episode state"
            assert torch.equal(u.get_reward(obs=obs, action=None, info=again), r), (
                "the reward changed the state"
            )
        rewards.append(float(r[0]))
    assert bool(info["consecutive_grasp"][0]) and float(info["potential"][0]) == pytest.approx(0.2)
    assert sum(rewards) == pytest.approx(0.2) and sorted(set(round(x, 6) for x in rewards)) == [0.0, 0.1]


def test_reposition_at_step_0_is_refused(env):
    with pytest.raises(ValueError, match="at_step must be >= 1"):
        env.reset(seed=0, options={"episode": spec(reposition=Reposition(at_step=0, xy=(-0.1, -0.045)))})


def test_reposition_teleports_the_object_at_the_given_step(env):
    u = env.unwrapped
    ep = spec(reposition=Reposition(at_step=2, xy=(-0.1, -0.045)))
    env.reset(seed=0, options={"episode": ep})
    obj = u.objects[u.object_ids.index("obj_red_cube")]
    env.step(ZERO)
    assert obj.pose.p[0, :2].tolist() == pytest.approx([-0.175, -0.075], abs=0.005)
    env.step(ZERO)
    env.step(ZERO)
    assert obj.pose.p[0, :2].tolist() == pytest.approx([-0.1, -0.045], abs=0.005)


def test_texture_overlay_changes_only_foreground_pixels(env):
    plain, _ = env.reset(seed=0, options={"episode": spec()})
    over, _ = env.reset(
        seed=0, options={"episode": spec(overlay=Overlay("texture", "overlay_00_stripes", 0.5))}
    )
    a, b = plain["sensor_data"]["policy_camera"]["rgb"][0], over["sensor_data"]["policy_camera"]["rgb"][0]
    changed = (a != b).any(-1)
    fg = torch.isin(over["sensor_data"]["policy_camera"]["segmentation"][0, ..., 0], env.unwrapped._fg_ids)
    assert changed.any() and not (changed & ~fg).any()
    noise, _ = env.reset(seed=0, options={"episode": spec(overlay=Overlay("noise", "overlay_04_noise", 0.3))})
    assert (noise["sensor_data"]["policy_camera"]["rgb"][0] != a).any(-1).float().mean() > 0.5


def test_background_swap_keeps_foreground_pixels(env):
    a, _ = env.reset(seed=0, options={"episode": spec(table="table_oak_wood_table")})
    b, _ = env.reset(seed=0, options={"episode": spec(table="table_glass_table")})
    fg = torch.isin(a["sensor_data"]["policy_camera"]["segmentation"][0, ..., 0], env.unwrapped._fg_ids)
    ia, ib = a["sensor_data"]["policy_camera"]["rgb"][0], b["sensor_data"]["policy_camera"]["rgb"][0]
    assert torch.equal(ia[fg], ib[fg]) and not torch.equal(ia[~fg], ib[~fg])


def test_robot_joint_offset_is_applied(env):
    from vla_gen_bench.envs.robots import REST_QPOS

    env.reset(seed=0, options={"episode": spec(qpos_offset=(0.1, 0, 0, 0, 0, 0, -0.2))})
    q = env.unwrapped.agent.robot.get_qpos()[0, :7].numpy()
    assert q[0] == pytest.approx(REST_QPOS[0] + 0.1, abs=1e-4) and q[6] == pytest.approx(
        REST_QPOS[6] - 0.2, abs=1e-4
    )


def test_policy_observation_has_the_documented_keys(env):
    obs, _ = env.reset(seed=0)
    o = policy_observation(env, obs)
    assert o["image"].shape == (224, 224, 3) and o["image"].dtype == np.uint8
    assert o["instruction"].startswith("put ") and o["state"].shape == (16,) and "privileged" not in o


def test_bad_actions_and_specs_are_refused(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6))
    from vla_gen_bench.assets.store import AssetError

    with pytest.raises(AssetError, match="did you mean"):
        env.reset(seed=0, options={"episode": spec(objects=("obj_red_cub",))})
    with pytest.raises(ValueError, match="not an object"):
        env.reset(seed=0, options={"episode": spec(objects=("rec_plate",))})
