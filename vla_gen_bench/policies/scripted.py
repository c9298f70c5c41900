"""The scripted oracle: privileged pick-and-place through the task's own 7-D controller.

It reads true poses from ``obs["privileged"]`` (robot-base frame) and emits end-effector deltas towards waypoints:
above the grasp -> down -> close -> lift -> above the receptacle -> down -> open -> retreat. Its actions are exactly
what a dataset of demonstrations stores, so the same trajectories train SFT baselines. It is the benchmark's upper
bound, not a learned policy: its spec says ``privileged=True`` and results are labelled as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vla_gen_bench.policies.base import ActionSpec

MAX_STEP_M = 0.08  # translation per action (the env clips at 0.1)
MAX_STEP_RAD = 0.5
REACHED_M = 0.012
PRE_GRASP_ABOVE = 0.07
CARRY_Z = 0.14
GRIPPER_STEPS = 2  # actions spent closing / opening, at least
GRIPPER_MAX_STEPS = 6  # ... and at most, while the fingers are still travelling
FINGER_STILL_M = 0.0005  # fingers moved less than this in the last step: closed on the object (or fully open)
LIFT_GENTLE_M = 0.02  # the first this much of the lift goes ...
LIFT_GENTLE_STEP = 0.01  # ... this far per action (a jerk off the table pulls a thin handle out)
REPLAN_M = 0.02  # the grasp point moved this far since the descent began -> start over
OFF_TARGET_M = 0.05  # after release the object should sit this close to the receptacle centre
LOST_M = 0.10  # the object is this far from the TCP while it should be held -> start over
SETTLED_M = 0.008  # the TCP itself (not only its target) must be this close before the gripper closes / opens
STALLED_M = 0.002  # ... or have moved less than this in the last step (blocked by the table or the object)
TIP_CLEARANCE = 0.0025  # fingertips this far above the object's bottom at the grasp
PANDA_FINGERTIP_DEPTH = 0.0095  # fingertips below the TCP when a robot does not say (the Panda's)
FAMILY_ORACLES = {
    "push": "vla_gen_bench.policies.scripted_push.PushScriptedPolicy",
    "stack": "vla_gen_bench.policies.scripted_stack.StackScriptedPolicy",
    "drawer": "vla_gen_bench.policies.scripted_drawer.DrawerScriptedPolicy",
}
"""The oracle of every family but put_on (this module's), by the ``family`` key of the env's ``privileged()``."""


def _qmul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])  # fmt: skip


def _yaw_of(q) -> float:
    """Yaw (rotation about z) of a wxyz quaternion."""
    w, x, y, z = q
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _wrap(a: float, period: float = 2 * math.pi) -> float:
    return (a + period / 2) % period - period / 2


def tcp_yaw(q_tcp) -> float:
    """Yaw of the TCP relative to its straight-down rest orientation: the fingers close along world angle
    ``tcp_yaw - 90 deg``.

    Read from the TCP's y axis (the axis the fingers close along, on the Panda and the WidowX-250S alike), projected
    on the table. Not an Euler angle: the WidowX's TCP frame points its x axis down, where a yaw-pitch-roll
    decomposition is at gimbal lock and its "yaw" jumps as the wrist turns.
    """
    w, x, y, z = q_tcp
    ax, ay = 2 * (x * y - w * z), 1 - 2 * (x * x + z * z)  # first two entries of R @ (0, 1, 0)
    return _wrap(math.atan2(ay, ax) + math.pi / 2)


@dataclass
class ScriptedPolicy:
    """Waypoint oracle; one instance per episode stream (``reset`` restarts the script)."""

    spec: ActionSpec = field(default_factory=lambda: ActionSpec(privileged=True))
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "scripted", "kind": "oracle"})
    phase: str = "approach"
    counter: int = 0
    FREE_PHASES: ClassVar[tuple[str, ...]] = ("approach", "carry")
    """Phases of free motion (reaching, carrying), where demonstration noise may act (``training.demos``)."""
    GRIPPER_PHASE: ClassVar[str | None] = "approach"
    """The phase in which a premature gripper close can be injected (None: none)."""

    def reset(self, instruction: str) -> None:
        self.phase, self.counter = "approach", 0
        self._family_policies: dict[str, Any] = {}  # another family's oracle, made on its first observation
        self._goal_yaw = None
        self._locked_xy = np.zeros(2)
        self._last_tcp = None
        self._last_fingers = None
        self._lift_from = -math.inf

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        p = obs["privileged"]
        family = p.get("family", "put_on")
        if family != "put_on":  # the env says which family's episode this is: that family's oracle acts
            return self._family_oracle(family, obs)
        tgt = np.asarray(p["ee_target_pose"], dtype=np.float64)
        tcp = np.asarray(p.get("tcp_pose", tgt), dtype=np.float64)
        moved = math.inf if self._last_tcp is None else float(np.linalg.norm(tcp[:3] - self._last_tcp))
        self._last_tcp = tcp[:3].copy()
        fingers = finger_positions(obs)
        f_moved = (
            0.0
            if fingers is None or self._last_fingers is None
            else float(np.abs(fingers - self._last_fingers).max())
        )
        self._last_fingers = fingers
        obj = np.asarray(p["object_pose"], dtype=np.float64)
        rec = np.asarray(p["receptacle_pose"], dtype=np.float64)
        grasp_xy, grasp_z, close_yaw = grasp_target(p)
        h_rec = float(p["receptacle_height"])
        if self._goal_yaw is None or self.phase in ("approach",):
            # fingers must close along the object's grasp axis; that axis is symmetric under pi
            self._goal_yaw = _wrap(close_yaw + math.pi / 2, math.pi)
        grip = 1.0
        # replan when the object is no longer where the script is heading (the reposition variant moves it):
        # before the grasp the grasp point must stay put; after it the object must stay in the hand
        if self.phase in ("descend", "close") and np.linalg.norm(grasp_xy - self._locked_xy) > REPLAN_M:
            self.phase = "approach"
        elif self.phase in ("lift", "carry", "lower") and np.linalg.norm(tcp[:3] - obj[:3]) > LOST_M:
            self.phase = "approach"
        elif self.phase == "retreat" and np.linalg.norm(obj[:2] - rec[:2]) > OFF_TARGET_M:
            self.phase = "approach"  # placed, then moved away again: do it again
        if self.phase == "approach":
            goal = np.array([*grasp_xy, grasp_z + PRE_GRASP_ABOVE])
            if self._reached(tgt, goal, yaw=True):
                self.phase, self._locked_xy = "descend", grasp_xy.copy()
        if self.phase == "descend":
            goal = np.array([*grasp_xy, grasp_z])
            if self._reached(tgt, goal) and self._settled(tcp, moved, goal):
                self.phase, self.counter = "close", 0
        if self.phase == "close":
            goal, grip = tgt[:3], -1.0
            self.counter += 1
            if self._gripper_done(f_moved):
                self.phase, self._lift_from = "lift", float(tgt[2])
        if self.phase == "lift":
            goal, grip = np.array([*tgt[:2], CARRY_Z]), -1.0
            if tgt[2] < self._lift_from + LIFT_GENTLE_M:
                goal[2] = min(CARRY_Z, tgt[2] + LIFT_GENTLE_STEP)
            if tgt[2] > CARRY_Z - 0.03:
                self.phase = "carry"
        if self.phase == "carry":
            # place the grasp point over the receptacle centre; keep the height at which the object was held
            goal, grip = np.array([*(rec[:2] + _hold(tgt, obj)), CARRY_Z]), -1.0
            if self._reached(tgt, goal):
                self.phase = "lower"
        if self.phase == "lower":
            lift_above_bottom = tgt[2] - object_bottom(p)
            goal = np.array([*(rec[:2] + _hold(tgt, obj)), rec[2] + h_rec + lift_above_bottom + 0.006])
            grip = -1.0
            if self._reached(tgt, goal) and self._settled(tcp, moved, goal):
                self.phase, self.counter = "release", 0
        if self.phase == "release":
            goal, grip = tgt[:3], 1.0
            self.counter += 1
            if self._gripper_done(f_moved):
                self.phase = "retreat"
        if self.phase == "retreat":
            goal = np.array([*tgt[:2], CARRY_Z])
        return self._toward(tgt, goal, grip)

    def _family_oracle(self, family: str, obs: dict[str, Any]) -> np.ndarray:
        if family not in FAMILY_ORACLES:
            raise ValueError(
                f"no scripted oracle for the {family!r} family; known: put_on, {', '.join(FAMILY_ORACLES)}"
            )
        if not hasattr(self, "_family_policies"):
            self._family_policies = {}
        if family not in self._family_policies:
            from importlib import import_module

            module, cls = FAMILY_ORACLES[family].rsplit(".", 1)
            self._family_policies[family] = getattr(import_module(module), cls)()
            self._family_policies[family].reset("")
        return self._family_policies[family].act(obs)

    def _gripper_done(self, f_moved: float) -> bool:
        """The gripper has closed (or opened): :data:`GRIPPER_STEPS` actions spent and the fingers have stopped, or
        :data:`GRIPPER_MAX_STEPS` spent. A slow gripper (the WidowX-250S needs ~3 steps to close) would otherwise
        still be closing on air when the lift begins and miss a thin object (a spoon's handle)."""
        return self.counter > GRIPPER_MAX_STEPS or (self.counter > GRIPPER_STEPS and f_moved < FINGER_STILL_M)

    def _reached(self, tgt, goal, yaw: bool = False) -> bool:
        ok = float(np.linalg.norm(goal - tgt[:3])) < REACHED_M
        if yaw:
            ok &= abs(_wrap(self._goal_yaw - tcp_yaw(tgt[3:]))) < 0.05
        return ok

    @staticmethod
    def _settled(tcp, moved: float, goal) -> bool:
        """The TCP itself is at the goal, or has stopped short of it (a robot that tracks its target slowly, like
        the WidowX-250S, would otherwise close its fingers centimetres above the grasp)."""
        return float(np.linalg.norm(goal - tcp[:3])) < SETTLED_M or moved < STALLED_M

    def _toward(self, tgt, goal, grip: float) -> np.ndarray:
        d = goal - tgt[:3]
        n = float(np.linalg.norm(d))
        if n > MAX_STEP_M:
            d = d * (MAX_STEP_M / n)
        dyaw = float(np.clip(_wrap(self._goal_yaw - tcp_yaw(tgt[3:])), -MAX_STEP_RAD, MAX_STEP_RAD))
        return np.array([*d, 0.0, 0.0, dyaw, grip], dtype=np.float32)


def grasp_target(p: dict[str, Any]) -> tuple[np.ndarray, float, float]:
    """(xy, z, closing yaw) of the grasp in the robot-base frame: the TCP goes to (xy, z), the fingers close along
    the yaw.

    Mesh assets carry ``grasp_point`` (planned for the pose the object lies in, also after it has tipped over) and
    ``object_bottom_z``; the fingertips still stay :data:`TIP_CLEARANCE` above the bottom. Otherwise the grasp is
    ``object_grasp`` (object frame) turned by the object's yaw, at :func:`grasp_height`.
    """
    obj = np.asarray(p["object_pose"], dtype=np.float64)
    if "grasp_point" in p:
        gx, gy, gz, gyaw = (float(v) for v in p["grasp_point"])
        floor = float(p.get("fingertip_depth", PANDA_FINGERTIP_DEPTH)) + TIP_CLEARANCE
        return np.array([gx, gy]), max(gz, object_bottom(p) + floor), gyaw
    gx, gy, gyaw = (float(v) for v in p["object_grasp"])
    obj_yaw = _yaw_of(obj[3:])
    c, s = math.cos(obj_yaw), math.sin(obj_yaw)
    return obj[:2] + np.array([c * gx - s * gy, s * gx + c * gy]), obj[2] + grasp_height(p), obj_yaw + gyaw


def finger_positions(obs: dict[str, Any]) -> np.ndarray | None:
    """The two finger joint positions from the proprio ``state`` (arm and finger joints, then the 7-D TCP pose: the
    fingers are the two entries before the TCP on every robot here); None without a state."""
    state = obs.get("state")
    if state is None or len(state) < 9:
        return None
    return np.asarray(state[-9:-7], dtype=np.float64)


def object_bottom(p: dict[str, Any]) -> float:
    """Height of the object's lowest point (robot-base frame): ``object_bottom_z`` where given, else its origin's."""
    return float(p["object_bottom_z"]) if "object_bottom_z" in p else float(p["object_pose"][2])


def grasp_height(p: dict[str, Any]) -> float:
    """TCP height above the object's bottom at the grasp.

    The fingertips stay :data:`TIP_CLEARANCE` above the object's bottom (``fingertip_depth``: how far the robot's
    fingertips reach below its TCP; the Panda's 9.5 cm when absent, which gives the historical 1.2 cm floor). Where
    the asset has a planned pinch height (``object_grasp_z``, from its collision pieces), the TCP goes there;
    otherwise to half the object's height, at most 1.4 cm below its top.
    """
    h_obj = float(p["object_height"])
    floor = float(p.get("fingertip_depth", PANDA_FINGERTIP_DEPTH)) + TIP_CLEARANCE
    pinch = float(p.get("object_grasp_z", math.nan))
    return max(floor, pinch if math.isfinite(pinch) else min(h_obj - 0.014, 0.5 * h_obj))


def _hold(tgt, obj) -> np.ndarray:
    """xy offset of the gripper from the object's origin (keeps the object centred over the receptacle)."""
    return tgt[:2] - obj[:2]


@dataclass
class SmoothScriptedPolicy(ScriptedPolicy):
    """The same privileged pick-and-place, written to be easy to imitate: a demonstrator for SFT, not the oracle.

    :class:`ScriptedPolicy` jumps up to 8 cm per step and switches phase on tight gates (the descent starts only
    within 1.2 cm and 0.05 rad of the pre-grasp pose), so each demonstration holds ~14 decisive frames and one
    precise "now descend" frame; a small image policy trained on it hovers above the object. This demonstrator is
    a proportional controller on a *funnel*: every step moves ``gain`` of the remaining error (at most
    ``max_step``), the allowed height above the grasp point shrinks with the horizontal error
    (``funnel`` m per m), so reach and descent are one smooth motion, the yaw turns at the same time, and the
    gripper closes once the target is within ``grasp_tol`` of the grasp point. The object is released
    ``release_above`` over the receptacle, as RL4VLA's motion planner does (3 cm). Every action is a function of
    the current state (plus the phase, which the image shows: gripper open/closed, object in hand), which is what
    a memoryless policy can learn, and what makes noise-injected (DART) collection label correctly.
    """

    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "scripted-smooth", "kind": "oracle"})
    gain: float = 0.5
    max_step: float = 0.04
    yaw_gain: float = 0.7
    funnel: float = 3.0
    grasp_tol: float = 0.01
    yaw_tol: float = 0.12
    release_above: float = 0.03
    release_tol: float = 0.015
    from_state: bool = False
    """Re-derive the phase from the state before every action (object grasped or not, placed or not) instead of
    trusting the demonstrator's own history: for labelling states that another policy reached (DAgger), where the
    gripper may have closed on the object without this demonstrator's command, or opened over the receptacle."""

    def _phase_from_state(self, p: dict[str, Any], tgt, obj, rec, h_rec: float) -> None:
        grasped = bool(p.get("is_grasped", False))
        placed = (not grasped and np.linalg.norm(obj[:2] - rec[:2]) <= OFF_TARGET_M
                  and object_bottom(p) <= rec[2] + h_rec + 0.02)  # fmt: skip
        if placed:
            self.phase = "retreat"
        elif grasped and self.phase in ("approach", "retreat"):  # holding it: carry on from the lift
            self.phase = "lift" if tgt[2] < CARRY_Z - 0.04 else "carry"
        elif not grasped and self.phase in ("lift", "carry"):  # not holding it: start over
            self.phase = "approach"

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        p = obs["privileged"]
        tgt = np.asarray(p["ee_target_pose"], dtype=np.float64)
        obj = np.asarray(p["object_pose"], dtype=np.float64)
        rec = np.asarray(p["receptacle_pose"], dtype=np.float64)
        grasp_xy, grasp_z, close_yaw = grasp_target(p)
        h_rec = float(p["receptacle_height"])
        if self.from_state:
            self._phase_from_state(p, tgt, obj, rec, h_rec)
        if self._goal_yaw is None or self.phase == "approach":
            self._goal_yaw = _wrap(close_yaw + math.pi / 2, math.pi)
        yaw_err = abs(_wrap(self._goal_yaw - tcp_yaw(tgt[3:])))
        held = self.phase in ("lift", "carry") and np.linalg.norm(tgt[:3] - obj[:3]) > LOST_M
        if held or (self.phase == "retreat" and np.linalg.norm(obj[:2] - rec[:2]) > OFF_TARGET_M):
            self.phase = "approach"  # dropped on the way, or placed and moved again: start over
        grip = 1.0
        if self.phase == "approach":
            xy_err = float(np.linalg.norm(grasp_xy - tgt[:2]))
            goal = np.array([*grasp_xy, grasp_z + min(PRE_GRASP_ABOVE, self.funnel * xy_err)])
            at_grasp = np.linalg.norm(np.array([*grasp_xy, grasp_z]) - tgt[:3]) < self.grasp_tol
            if at_grasp and yaw_err < self.yaw_tol:
                self.phase, self.counter = "close", 0
        if self.phase == "close":
            goal, grip = tgt[:3], -1.0
            self.counter += 1
            if self.counter > GRIPPER_STEPS:
                self.phase = "lift"
        if self.phase == "lift":
            goal, grip = np.array([*tgt[:2], CARRY_Z]), -1.0
            if tgt[2] > CARRY_Z - 0.04:
                self.phase = "carry"
        if self.phase == "carry":
            drop_xy = rec[:2] + _hold(tgt, obj)
            drop_z = rec[2] + h_rec + (tgt[2] - object_bottom(p)) + self.release_above
            xy_err = float(np.linalg.norm(drop_xy - tgt[:2]))
            goal = np.array([*drop_xy, drop_z + min(CARRY_Z - drop_z, self.funnel * xy_err)])
            grip = -1.0
            if np.linalg.norm(np.array([*drop_xy, drop_z]) - tgt[:3]) < self.release_tol:
                self.phase, self.counter = "release", 0
        if self.phase == "release":
            goal, grip = tgt[:3], 1.0
            self.counter += 1
            if self.counter > GRIPPER_STEPS:
                self.phase = "retreat"
        if self.phase == "retreat":
            goal = np.array([*tgt[:2], CARRY_Z])
        return self._smooth_toward(tgt, goal, grip)

    def _smooth_toward(self, tgt, goal, grip: float) -> np.ndarray:
        d = self.gain * (goal - tgt[:3])
        n = float(np.linalg.norm(d))
        if n > self.max_step:
            d = d * (self.max_step / n)
        err = _wrap(self._goal_yaw - tcp_yaw(tgt[3:]))
        dyaw = float(np.clip(self.yaw_gain * err, -MAX_STEP_RAD, MAX_STEP_RAD))
        return np.array([*d, 0.0, 0.0, dyaw, grip], dtype=np.float32)
