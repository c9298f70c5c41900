"""The oracle's grasp timing, without a simulator: it closes until the fingers stop, lifts gently off the table, and
aims at the grasp the task plans for the pose the object lies in (issue 21: the WidowX-250S closes slowly, and an
RL4VLA object can fall over)."""

from __future__ import annotations

import numpy as np
import pytest

from vla_gen_bench.policies.scripted import (
    CARRY_Z,
    GRIPPER_MAX_STEPS,
    GRIPPER_STEPS,
    LIFT_GENTLE_M,
    LIFT_GENTLE_STEP,
    TIP_CLEARANCE,
    ScriptedPolicy,
    grasp_target,
)

DOWN = (0.0, 1.0, 0.0, 0.0)  # TCP pointing down (wxyz); the yaw does not matter here


def _obs(tgt_z: float, fingers: float | None, **extra) -> dict:
    p = dict(
        ee_target_pose=np.array([0.3, 0.0, tgt_z, *DOWN]),
        tcp_pose=np.array([0.3, 0.0, tgt_z, *DOWN]),
        object_pose=np.array([0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
        receptacle_pose=np.array([0.3, 0.2, 0.0, 1.0, 0.0, 0.0, 0.0]),
        object_grasp=np.zeros(3),
        object_height=np.float32(0.02),
        receptacle_height=np.float32(0.01),
        fingertip_depth=np.float32(0.0164),
        **extra,
    )
    obs = {"privileged": p}
    if fingers is not None:  # proprio: 6 arm joints, 2 fingers, 7-D TCP pose (the WidowX-250S's layout)
        obs["state"] = np.array([0.0] * 6 + [fingers, fingers] + [0.0] * 7, dtype=np.float32)
    return obs


def _closing(policy: ScriptedPolicy, z: float = 0.02) -> None:
    policy.reset("")
    policy.phase, policy.counter, policy._goal_yaw = "close", 0, 0.0
    policy._locked_xy = np.array([0.3, 0.0])
    policy._last_tcp = np.array([0.3, 0.0, z])


def test_gripper_keeps_closing_while_the_fingers_travel_then_lifts_gently():
    pol = ScriptedPolicy()
    _closing(pol)
    phases, actions = [], []
    for f in (0.037, 0.0225, 0.0171, 0.0169):  # the WidowX closing on a 1.5 cm handle, one control step apart
        actions.append(pol.act(_obs(0.02, f)))
        phases.append(pol.phase)
    # two close actions, then still closing (the fingers moved 5 mm), then stopped on the handle: lift
    assert phases == ["close", "close", "close", "lift"]
    assert all(a[6] == -1.0 for a in actions)
    assert actions[-1][2] == pytest.approx(LIFT_GENTLE_STEP)  # first lift step: gentle
    z, lifts = 0.02, []
    for _ in range(6):
        z += float(actions[-1][2])
        actions.append(pol.act(_obs(z, 0.0169)))
        lifts.append(float(actions[-1][2]))
    n_gentle = round(LIFT_GENTLE_M / LIFT_GENTLE_STEP)
    assert lifts[: n_gentle - 1] == pytest.approx([LIFT_GENTLE_STEP] * (n_gentle - 1))
    assert max(lifts) > 2 * LIFT_GENTLE_STEP  # then the usual pace towards CARRY_Z
    assert z <= CARRY_Z + 1e-9


def test_gripper_gives_up_waiting_after_max_steps_and_falls_back_without_a_state():
    pol = ScriptedPolicy()
    _closing(pol)
    phases = []
    for k in range(GRIPPER_MAX_STEPS + 1):  # fingers that never settle (0.6 mm a step)
        pol.act(_obs(0.02, 0.037 - 0.0006 * k))
        phases.append(pol.phase)
    assert phases[:GRIPPER_MAX_STEPS] == ["close"] * GRIPPER_MAX_STEPS and phases[-1] == "lift"
    pol = ScriptedPolicy()
    _closing(pol)
    phases = []
    for _ in range(GRIPPER_STEPS + 1):  # no proprio state: the fixed number of close actions, as before
        pol.act(_obs(0.02, None))
        phases.append(pol.phase)
    assert phases == ["close"] * GRIPPER_STEPS + ["lift"]


def test_grasp_target_follows_the_planned_point_and_keeps_the_fingertips_off_the_table():
    # a fallen object: the task's grasp point (base frame) and lowest point, not the upright plan around its origin
    p = _obs(0.1, None, grasp_point=np.array([0.25, 0.05, 0.021, 0.3]), object_bottom_z=np.float32(-0.001))
    xy, z, yaw = grasp_target(p["privileged"])
    assert (
        tuple(xy) == pytest.approx((0.25, 0.05)) and z == pytest.approx(0.021) and yaw == pytest.approx(0.3)
    )
    # a pinch lower than the fingertips allow: held TIP_CLEARANCE above the bottom
    p = _obs(0.1, None, grasp_point=np.array([0.25, 0.05, 0.005, 0.3]), object_bottom_z=np.float32(-0.001))
    _, z, _ = grasp_target(p["privileged"])
    assert z == pytest.approx(-0.001 + 0.0164 + TIP_CLEARANCE, abs=1e-6)
    # procedural shapes (no grasp_point): the object-frame grasp at its yaw, as before
    xy, z, yaw = grasp_target(_obs(0.1, None)["privileged"])
    assert tuple(xy) == pytest.approx((0.3, 0.0)) and yaw == pytest.approx(0.0)
