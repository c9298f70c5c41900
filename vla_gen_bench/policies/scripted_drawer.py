"""The drawer family's scripted oracle: privileged open / close through the task's own 7-D controller.

It reads ``obs["privileged"]`` of ``VgbDrawer-v1`` (robot-base frame: the handle's grip point, the pull axis, the
drawer's joint position and travel) and emits end-effector deltas towards waypoints, the gripper pointing down
with its fingers closing across the pull axis (parallel to the drawer front). Open: above the grip -> down ->
close -> pull along the axis until the drawer is well out -> release -> up. Close: above the point just outside
the handle -> down (fingers closed) -> push along the axis until the drawer is in -> up. When the drawer is
pushed back after it was done (the push-back disturbance) or the handle slips out of the hand, it starts over.
Like :class:`~vla_gen_bench.policies.scripted.ScriptedPolicy` it is an upper bound, not a learned policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vla_gen_bench.policies.base import ActionSpec
from vla_gen_bench.policies.scripted import (
    FINGER_STILL_M,
    GRIPPER_MAX_STEPS,
    GRIPPER_STEPS,
    MAX_STEP_RAD,
    _qmul,
    _wrap,
    finger_positions,
    tcp_yaw,
)

MAX_STEP_M = 0.06  # translation per action towards a waypoint
PULL_STEP_M = 0.025  # per action while the drawer moves with the hand (faster slips on a thin handle)
REACHED_M = 0.01
YAW_TOL = 0.06  # rad
ABOVE = 0.06  # pre-grasp height above the grip point
CLEAR_TOP = 0.08  # the retreat goes this far above the cabinet's top
OPEN_GOAL = 0.85  # pull until the drawer is out by this fraction of its travel (success needs 0.6)
CLOSED_GOAL = 0.03  # push until it is in to this fraction (success needs at most 0.1)
PUSH_GAP = 0.02  # close: the TCP starts this far outside the handle's outer end
PUSH_PAST = 0.012  # ... and pushes to this far inside the handle end's closed position
SLIP_M = 0.04  # the grip point this far from the TCP while pulling: the handle slipped out, start over
STALL_STEPS = 4  # the drawer did not move for this many pull / push actions: start over
CLEAR_OUT = 0.05  # starting low and this close outside the handle: move out first, then up
DOWN = (0.0, 1.0, 0.0, 0.0)  # wxyz of the TCP pointing straight down at yaw 0 (the Panda's rest orientation)


@dataclass
class DrawerScriptedPolicy:
    """Waypoint oracle for ``VgbDrawer-v1`` (both modes); one instance per episode stream."""

    spec: ActionSpec = field(default_factory=lambda: ActionSpec(privileged=True))
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "scripted-drawer", "kind": "oracle"})
    phase: str = "approach"
    FREE_PHASES: ClassVar[tuple[str, ...]] = ("approach",)  # moving to the handle
    GRIPPER_PHASE: ClassVar[str | None] = "approach"

    def reset(self, instruction: str) -> None:
        self.phase, self.counter = "approach", 0
        self._last_tcp = None
        self._last_fingers = None
        self._last_q = None
        self._still = 0
        self._retreat_xy = np.zeros(2)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        p = obs["privileged"]
        tgt = np.asarray(p["ee_target_pose"], dtype=np.float64)
        tcp = np.asarray(p["tcp_pose"], dtype=np.float64)
        moved = math.inf if self._last_tcp is None else float(np.linalg.norm(tcp[:3] - self._last_tcp))
        self._last_tcp = tcp[:3].copy()
        fingers = finger_positions(obs)
        f_moved = 0.0 if fingers is None or self._last_fingers is None else float(
            np.abs(fingers - self._last_fingers).max())  # fmt: skip
        self._last_fingers = fingers
        q, travel = float(p["joint_position"]), float(p["travel"])
        dq = math.inf if self._last_q is None else abs(q - self._last_q)
        self._last_q = q
        grip = np.asarray(p["handle_grip"], dtype=np.float64)
        pull = np.asarray(p["pull_axis"], dtype=np.float64)
        self._goal_yaw = _wrap(float(p["handle_yaw"]) + math.pi / 2, math.pi)
        top = self._top = float(p["cabinet_top"])
        if p["mode"] == "open":
            goal, g = self._open(p, tgt, tcp, moved, f_moved, q, travel, dq, grip, pull, top)
        else:
            goal, g = self._close(p, tgt, tcp, moved, f_moved, q, travel, dq, grip, pull, top)
        return self._toward(tgt, goal, g, PULL_STEP_M if self.phase in ("pull", "push") else MAX_STEP_M)

    # ------------------------------------------------------------------ open
    def _open(self, p, tgt, tcp, moved, f_moved, q, travel, dq, grip, pull, top):
        done = q >= OPEN_GOAL * travel
        if self.phase in ("release", "retreat", "hold") and q < 0.5 * travel:
            self.phase = "approach"  # pushed back (or it slid back): again
        if self.phase == "pull" and np.linalg.norm(grip - tcp[:3]) > SLIP_M:
            self.phase = "reopen"  # slipped out of the hand: open, go up, again
            self.counter = 0
        g = 1.0
        if self.phase == "reopen":
            goal, g = tgt[:3], 1.0
            self.counter += 1
            if self._gripper_done(f_moved):
                self.phase = "lift"
        if self.phase == "lift":
            goal = np.array([*tgt[:2], max(top + CLEAR_TOP, tgt[2])])
            if self._reached(tgt, goal):
                self.phase = "approach"
        if self.phase == "approach":
            goal = self._approach(tgt, np.array([*grip[:2], grip[2] + ABOVE]), grip, pull)
            if self._reached(tgt, np.array([*grip[:2], grip[2] + ABOVE]), yaw=True):
                self.phase = "descend"
        if self.phase == "descend":
            goal = grip.copy()
            if self._reached(tgt, goal) and self._settled(tcp, moved, goal):
                self.phase, self.counter = "close", 0
        if self.phase == "close":
            goal, g = tgt[:3], -1.0
            self.counter += 1
            if self._gripper_done(f_moved):
                self.phase, self._still = "pull", 0
        if self.phase == "pull":
            g = -1.0
            remaining = max(0.0, (OPEN_GOAL + 0.05) * travel - q)
            goal = tgt[:3] + pull * min(PULL_STEP_M, remaining + 0.005)
            goal[2] = grip[2]
            self._still = self._still + 1 if dq < 0.002 else 0
            if done or self._still >= STALL_STEPS:
                self.phase, self.counter = ("release" if done else "reopen"), 0
                goal = tgt[:3]
        if self.phase == "release":
            goal, g = tgt[:3], 1.0
            self.counter += 1
            if self._gripper_done(f_moved):
                self.phase, self._retreat_xy = "retreat", tgt[:2].copy()
        if self.phase == "retreat":
            goal = np.array([*self._retreat_xy, top + CLEAR_TOP])
            if self._reached(tgt, goal):
                self.phase = "hold"
        if self.phase == "hold":
            goal = tgt[:3]
        return goal, g

    # ------------------------------------------------------------------ close
    def _close(self, p, tgt, tcp, moved, f_moved, q, travel, dq, grip, pull, top):
        done = q <= CLOSED_GOAL * travel
        if self.phase in ("retreat", "hold") and q > 0.5 * travel:
            self.phase = "approach"  # pushed back open: again
        # outside the handle's outer end, on the robot's side, at the grip height
        out = float(p["handle_reach"]) - 0.0 + PUSH_GAP
        start = grip + pull * out
        g = -1.0
        if self.phase == "approach":
            above = np.array([*start[:2], max(start[2] + ABOVE, top + 0.02)])
            goal = self._approach(tgt, above, grip, pull)
            if self._reached(tgt, above, yaw=True):
                self.phase = "descend"
        if self.phase == "descend":
            goal = start.copy()
            if self._reached(tgt, goal) and self._settled(tcp, moved, goal):
                self.phase, self._still = "push", 0
        if self.phase == "push":
            # the handle's end at the closed position, a little further in
            end = grip - pull * q + pull * (float(p["handle_reach"]) - PUSH_PAST)
            along = float(np.dot(end - tgt[:3], -pull))
            goal = tgt[:3] - pull * max(0.0, min(PULL_STEP_M, along))
            goal[2] = start[2]
            self._still = self._still + 1 if dq < 0.002 else 0
            if done or self._still >= STALL_STEPS or along <= 0:
                self.phase, self._retreat_xy = "retreat", tgt[:2] + pull[:2] * 0.02  # off the handle, then up
        if self.phase == "retreat":
            goal = np.array([*self._retreat_xy, top + CLEAR_TOP])
            if self._reached(tgt, goal):
                self.phase = "hold"
        if self.phase == "hold":
            goal = tgt[:3]
            if not done and q > CLOSED_GOAL * travel + 0.01:
                self.phase = "approach"
        return goal, g

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _approach(tgt, above, grip, pull) -> np.ndarray:
        """The next waypoint to ``above`` (a point over the handle): straight there from as high as it; from lower
        down, first out of the handle's way (an initial joint offset can start the fingers under the handle, in
        front of the drawer), then up, then over."""
        if tgt[2] >= above[2] - 0.02 or np.linalg.norm(above[:2] - tgt[:2]) < 0.02:
            return above
        out = float(np.dot(tgt[:2] - grip[:2], pull[:2]))  # how far out of the handle's plane the target is
        if 0.0 <= out < CLEAR_OUT:
            return np.array([*(tgt[:2] + pull[:2] * (CLEAR_OUT + 0.01 - out)), tgt[2]])
        return np.array([*tgt[:2], above[2]])

    def _gripper_done(self, f_moved: float) -> bool:
        return self.counter > GRIPPER_MAX_STEPS or (self.counter > GRIPPER_STEPS and f_moved < FINGER_STILL_M)

    def _reached(self, tgt, goal, yaw: bool = False) -> bool:
        ok = float(np.linalg.norm(goal - tgt[:3])) < REACHED_M
        if yaw:
            ok &= abs(_wrap(self._goal_yaw - tcp_yaw(tgt[3:]), math.pi)) < YAW_TOL
        return ok

    @staticmethod
    def _settled(tcp, moved: float, goal) -> bool:
        return float(np.linalg.norm(goal - tcp[:3])) < 0.008 or moved < 0.002

    def _toward(self, tgt, goal, grip: float, max_step: float) -> np.ndarray:
        d = goal - tgt[:3]
        n = float(np.linalg.norm(d))
        if n > max_step:
            d = d * (max_step / n)
        # the hand is 20 cm long: it turns only above the cabinet's top, never into the carcass
        turn = tgt[2] >= self._top or self.phase not in ("approach",)
        return np.array([*d, *self._rotation_to(tgt[3:], turn), grip], dtype=np.float32)

    def _rotation_to(self, q_tgt, turn: bool) -> np.ndarray:
        """(3,) rotation action that turns the target orientation towards pointing straight down at the goal yaw
        (the nearer of the two finger-symmetric yaws; with ``turn`` False at the yaw it has): an initial joint
        offset tilts the hand, and a tilted hand lands its fingers beside the handle."""
        yaw = tcp_yaw(q_tgt) + (_wrap(self._goal_yaw - tcp_yaw(q_tgt), math.pi) if turn else 0.0)
        goal = _qmul((math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)), DOWN)
        w, *v = _qmul(goal, (q_tgt[0], -q_tgt[1], -q_tgt[2], -q_tgt[3]))  # the error, applied on the left
        v = np.asarray(v) * (1.0 if w >= 0 else -1.0)
        n = float(np.linalg.norm(v))
        if n < 1e-9:
            return np.zeros(3)
        rotvec = v / n * 2 * math.atan2(n, abs(w))
        a = float(np.linalg.norm(rotvec))
        return rotvec * (min(a, MAX_STEP_RAD) / a)
