"""The policy cameras: the table ``CAMERAS`` (size, intrinsics or field of view, pose, shader), name resolution
with a size override, and the ManiSkill sensor config the task builds from a :class:`CameraSpec`.

The camera *names* live in the import-free :mod:`vla_gen_bench.cameras` (``CameraName``, what every ``--camera``
option takes); ``tests/envs/test_cameras.py`` checks that they are this table's keys, in its order. A new camera is
one line here plus its name there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import sapien
from mani_skill.sensors.camera import CameraConfig
from mani_skill.utils import sapien_utils

from vla_gen_bench.envs import rl4vla

POLICY_CAMERA = "policy_camera"
"""Sensor uid of the policy camera: ``obs["sensor_data"][POLICY_CAMERA]["rgb"]`` is the policy's image."""
SHADERS = ("minimal", "default")
"""The ManiSkill shader packs a policy camera may use (both render on lavapipe)."""


@dataclass(frozen=True)
class CameraSpec:
    """Policy camera: image size, vertical field of view (or the paper's pinhole intrinsics) and look-at pose."""

    width: int
    height: int
    fov_y: float | None = None
    fx: float | None = None
    eye: tuple[float, float, float] = (0.22, 0.32, 0.46)
    target: tuple[float, float, float] = (-0.12, 0.0, 0.04)
    cx: float | None = None
    """Principal point (pixels at ``width`` x ``height``); None = the image centre."""
    cy: float | None = None
    pose: tuple[float, ...] | None = None
    """World pose (x, y, z, qw, qx, qy, qz; SAPIEN camera axes: x forward, z up) instead of eye/target."""
    shader: str = "minimal"
    """ManiSkill shader pack of the policy camera (``minimal``: ManiSkill 3.0.1's default, the fastest; ``default``:
    what RL4VLA rendered with, ~1.7x the step time at 640x480 on lavapipe, see docs/paper_profile.md)."""


CAMERAS = {
    # CPU default: OpenVLA's native input size (measured: see README "Speed")
    "default": CameraSpec(224, 224, fov_y=math.radians(46)),
    "fast": CameraSpec(128, 128, fov_y=math.radians(46)),
    # the paper's Logitech C920 intrinsics (RL4VLA §1): 640x480, fx = fy = 623.588
    "paper": CameraSpec(640, 480, fx=623.588),
    # the rl4vla profile's camera: the paper's intrinsics and its base_link mount, placed on the WidowX's base pose
    "rl4vla": CameraSpec(
        *rl4vla.RL4VLA_CAMERA_SIZE,
        fx=rl4vla.RL4VLA_INTRINSICS[0],
        cx=rl4vla.RL4VLA_INTRINSICS[2],
        cy=rl4vla.RL4VLA_INTRINSICS[3],
        pose=rl4vla.RL4VLA_CAMERA_POSE,
        shader=rl4vla.camera_shader("rl4vla"),
    ),  # fmt: skip
}


def camera_spec(camera: str | CameraSpec, size: tuple[int, int] | None = None) -> CameraSpec:
    """Resolve a camera name (or spec) and an optional (width, height) override; raise on invalid input."""
    if isinstance(camera, str):
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; allowed: {', '.join(CAMERAS)}")
        camera = CAMERAS[camera]
    if size is not None:
        w, h = size
        if not (isinstance(w, int) and isinstance(h, int) and 16 <= w <= 2048 and 16 <= h <= 2048):
            raise ValueError(f"invalid camera size {size!r}: width and height must be integers in [16, 2048]")
        fov = camera.fov_y if camera.fx is None else 2 * math.atan(camera.height / 2 / camera.fx)
        camera = replace(camera, width=w, height=h, fov_y=fov, fx=None, cx=None, cy=None)
    return camera


def camera_config(
    cam: CameraSpec, uid: str, width: int | None = None, height: int | None = None
) -> CameraConfig:
    """ManiSkill ``CameraConfig`` of ``cam`` under sensor uid ``uid``, optionally at another size (the intrinsics
    scale with the width, so the frustum stays the same)."""
    w, h = width or cam.width, height or cam.height
    if cam.pose is not None:
        pose = sapien.Pose(list(cam.pose[:3]), list(cam.pose[3:]))
    else:
        pose = sapien_utils.look_at(cam.eye, cam.target)
    if cam.fx is not None:
        scale = w / cam.width
        fx = cam.fx * scale
        cx = (w - 1) / 2 if cam.cx is None else cam.cx * scale
        cy = (h - 1) / 2 if cam.cy is None else cam.cy * scale
        intrinsic = np.array([[fx, 0, cx], [0, fx, cy], [0, 0, 1]], dtype=np.float32)  # (3, 3)
        lens = {"intrinsic": intrinsic}
    else:
        lens = {"fov": cam.fov_y}
    return CameraConfig(uid, pose, w, h, near=0.01, far=10, shader_pack=cam.shader, **lens)
