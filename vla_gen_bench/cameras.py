"""Policy-camera names: the one type every ``--camera`` option and config field uses.

The cameras themselves (``CameraSpec``: size, intrinsics, pose, shader) are the table ``CAMERAS`` in
:mod:`vla_gen_bench.envs.cameras`, which loads the simulator; this module stays import-free so that parsing a
command line does not. ``tests/envs/test_cameras.py`` checks that the names here are the table's keys, in its
order, so a new camera is one table line plus its name here.
"""

from __future__ import annotations

from typing import Literal, get_args

CameraName = Literal["default", "fast", "paper", "rl4vla"]
"""A policy camera: default (224², OpenVLA's input), fast (128²), paper (640x480, the paper's intrinsics),
rl4vla (the paper's camera on its base-link mount)."""

CAMERA_NAMES: tuple[str, ...] = get_args(CameraName)
