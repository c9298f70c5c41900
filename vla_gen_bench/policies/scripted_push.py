"""The push family's scripted oracle: privileged pushing through the task's own 7-D controller.

With the gripper closed it goes above a point behind the object (on the far side from the region), lowers the
fingertips to ~1 cm above the table, then pushes along the line object -> region in short steps, re-aiming at every
step as the object slides and turns, and lifts away once the object's centre is at the region's centre. When the
object is no longer in front of the fingers (it turned away, or the reposition variant moved it) it lifts and
approaches again. :class:`~vla_gen_bench.policies.scripted.ScriptedPolicy` hands a push episode's observations to
it (the env's ``privileged()`` dict says ``family="push"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vla_gen_bench.policies.base import ActionSpec

MAX_STEP_M = 0.06  # translation per action in free space
PUSH_STEP_M = 0.025  # ... while pushing
MAX_STEP_RAD = 0.5
PUSH_Z = 0.02  # TCP height above the table while pushing (the Panda's fingertips ~1 cm above it)
ABOVE_Z = 0.05  # clearance over the object's top while moving to the start of a push
BEHIND_M = 0.035  # the push starts this far behind the object's footprint
CONTACT_M = 0.004  # ... and presses the fingers this close to where the footprint's edge should be
REACHED_M = 0.012
LOWERED_M = 0.008
YAW_OK = 0.1
OFF_LINE_M = 0.022  # the TCP this far beside the push line: lift and approach again
LOST_M = 0.07  # the object this far beyond where the fingers should touch it: lift and approach again
DONE_M = 0.008  # the object's centre this close to the region's centre (or half its slack there): done
FOLLOW = 0.6  # each push step advances this fraction of the remaining distance (the object runs on a little)


def _wrap(a: float, period: float = 2 * math.pi) -> float:
    return (a + period / 2) % period - period / 2


@dataclass
class PushScriptedPolicy:
    """Push oracle; one instance per episode stream (``reset`` restarts the script)."""

    spec: ActionSpec = field(default_factory=lambda: ActionSpec(privileged=True))
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "scripted", "kind": "oracle"})
    phase: str = "above"
    FREE_PHASES: ClassVar[tuple[str, ...]] = ("above",)  # moving to the start of a push
    GRIPPER_PHASE: ClassVar[str | None] = None  # the gripper stays closed throughout

    def reset(self, instruction: str) -> None:
        self.phase = "above"
        self._yaw: float | None = None

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        from vla_gen_bench.policies.scripted import tcp_yaw

        p = obs["privileged"]
        tgt = np.asarray(p["ee_target_pose"], dtype=np.float64)
        tcp = np.asarray(p.get("tcp_pose", tgt), dtype=np.float64)
        obj = np.asarray(p["object_pose"], dtype=np.float64)
        reg = np.asarray(p["receptacle_pose"], dtype=np.float64)
        r = float(p["object_radius"])
        table_z = float(obj[2])  # the object's frame sits at its bottom, on the table
        to_reg = reg[:2] - obj[:2]
        dist = float(np.linalg.norm(to_reg))
        u = to_reg / max(dist, 1e-9)
        start = obj[:2] - (r + BEHIND_M) * u
        if self._yaw is None or self.phase == "above":
            # the closed fingers side by side across the push direction: a broad, flat pusher
            self._yaw = _wrap(math.atan2(u[1], u[0]), math.pi)
        rel = tcp[:2] - obj[:2]
        along, beside = float(rel @ u), float(np.linalg.norm(rel - (rel @ u) * u))
        if self.phase in ("descend", "push") and (
            beside > OFF_LINE_M or along > -r * 0.5 or -along > r + LOST_M
        ):
            self.phase = "above"  # the object turned or slid away from the fingers, or was moved
        if self.phase == "retreat" and not bool(p.get("inside", False)):
            self.phase = "above"
        slack = float(p.get("region_inradius", 0.05)) - r  # how far off centre the footprint still fits
        if self.phase == "push" and bool(p.get("inside", False)) and dist < max(DONE_M, 0.5 * slack):
            self.phase = "retreat"
        if self.phase == "above":
            goal = np.array([*start, table_z + float(p["object_height"]) + ABOVE_Z])
            if (
                np.linalg.norm(goal[:2] - tgt[:2]) < REACHED_M
                and abs(_wrap(self._yaw - tcp_yaw(tgt[3:]), math.pi)) < YAW_OK
            ):
                self.phase = "descend"
        if self.phase == "descend":
            goal = np.array([*start, table_z + PUSH_Z])
            if abs(tcp[2] - goal[2]) < LOWERED_M and abs(tgt[2] - goal[2]) < LOWERED_M:
                self.phase = "push"
        step = MAX_STEP_M
        if self.phase == "push":
            # the fingers on the push line, just behind the footprint, advanced by up to one step (a fraction of the
            # way that puts the object's centre on the region's centre: the object runs on a little after each step)
            advance = min(PUSH_STEP_M, FOLLOW * dist)
            goal = np.array([*(obj[:2] - (r + CONTACT_M) * u + advance * u), table_z + PUSH_Z])
            goal[:2] += (
                tgt[:2] - tcp[:2]
            )  # the TCP trails its target while it pushes: aim the TCP, not the target
            step = PUSH_STEP_M
        if self.phase == "retreat":
            goal = np.array([*(tgt[:2] - 0.02 * u), table_z + float(p["object_height"]) + ABOVE_Z])
        return self._toward(tgt, goal, step)

    def _toward(self, tgt, goal, step: float) -> np.ndarray:
        from vla_gen_bench.policies.scripted import tcp_yaw

        d = goal - tgt[:3]
        n = float(np.linalg.norm(d))
        if n > step:
            d = d * (step / n)
        dyaw = float(np.clip(_wrap(self._yaw - tcp_yaw(tgt[3:]), math.pi), -MAX_STEP_RAD, MAX_STEP_RAD))
        return np.array([*d, 0.0, 0.0, dyaw, -1.0], dtype=np.float32)
