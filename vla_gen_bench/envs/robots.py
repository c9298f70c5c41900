"""Robot profiles: the Panda with the benchmark's raw end-effector delta-pose controller (low-poly visuals on CPU).

Control mode ``pd_ee_target_delta_pose_raw``: 7-D action ``[dx, dy, dz, drx, dry, drz, gripper]`` in raw metres and
radians (no [-1, 1] normalisation), translation in the robot-base frame, rotation as an intrinsic XYZ Euler delta
left-multiplied onto the previous *target* orientation (target-referenced, as in RL4VLA); gripper +1 open / -1 close.
The task clips each action to :data:`ACTION_LOW` / :data:`ACTION_HIGH` before the controller sees it.
"""

from __future__ import annotations

import os
from copy import deepcopy
from pathlib import Path

import numpy as np

CONTROL_MODE = "pd_ee_target_delta_pose_raw"
# Per-step clipping bounds (one action = 0.2 s at 5 Hz): 10 cm, 0.5 rad, gripper [-1, 1].
ACTION_LOW = np.array([-0.1, -0.1, -0.1, -0.5, -0.5, -0.5, -1.0], dtype=np.float32)
ACTION_HIGH = -ACTION_LOW
# Panda "rest" arm configuration used by ManiSkill's table tasks (gripper pointing down, TCP over the workspace).
REST_QPOS = np.array([0.0, np.pi / 8, 0.0, -5 * np.pi / 8, 0.0, 3 * np.pi / 4, np.pi / 4], dtype=np.float32)
GRIPPER_OPEN = 0.04
BASE_POSE = (-0.615, 0.0, 0.0)

ROBOTS = {
    "panda": "Franka Panda (bundled with ManiSkill); low-poly visual meshes on CPU, stock meshes when CUDA renders",
    "panda_lowpoly": "Franka Panda with decimated visual meshes (~14k triangles; collision untouched)",
    "panda_stock": "Franka Panda with ManiSkill's stock visual meshes (135k triangles)",
    "widowx250s": "WidowX-250S (needs ManiSkill's asset download; used by the paper profile)",
}
WIDOWX_DOWNLOAD = "python -m mani_skill.utils.download_asset widowx250s"

_registered = False


def register_agents() -> None:
    """Register the benchmark's agent classes with ManiSkill (idempotent)."""
    global _registered
    if _registered:
        return
    from mani_skill.agents.controllers import PDEEPoseControllerConfig
    from mani_skill.agents.registration import register_agent
    from mani_skill.agents.robots import Panda

    def with_raw_controller(configs: dict, urdf_path: str) -> dict:
        arm = deepcopy(configs["pd_ee_delta_pose"]["arm"])
        assert isinstance(arm, PDEEPoseControllerConfig)
        arm.use_target = True
        arm.normalize_action = False
        arm.pos_lower, arm.pos_upper = float(ACTION_LOW[0]), float(ACTION_HIGH[0])
        arm.rot_lower, arm.rot_upper = float(ACTION_LOW[3]), float(ACTION_HIGH[3])
        arm.urdf_path = urdf_path
        configs = dict(configs)
        configs[CONTROL_MODE] = dict(arm=arm, gripper=configs["pd_ee_delta_pose"]["gripper"])
        return configs

    @register_agent(override=True)
    class VgbPandaStock(Panda):
        uid = "vgb_panda_stock"

        @property
        def _controller_configs(self):
            return with_raw_controller(super()._controller_configs, self.urdf_path)

    @register_agent(override=True)
    class VgbPanda(VgbPandaStock):
        uid = "vgb_panda"

        def __init__(self, *args, **kwargs):
            from vla_gen_bench.envs.lowpoly import build, lowpoly_urdf_path

            try:
                self.urdf_path = str(lowpoly_urdf_path())
            except FileNotFoundError:
                self.urdf_path = str(build())  # deterministic, ~5 s, once per cache
            super().__init__(*args, **kwargs)

    _registered = True


def resolve_robot(robot: str) -> str:
    """Map a user-facing robot name to a registered agent uid, or raise with what to do."""
    if robot == "panda":
        robot = "panda_lowpoly" if not _cuda_renders() else "panda_stock"
    if robot == "panda_lowpoly":
        return "vgb_panda"
    if robot == "panda_stock":
        return "vgb_panda_stock"
    if robot == "widowx250s":
        urdf = _maniskill_data_dir() / "robots" / "widowx" / "wx250s.urdf"
        if not urdf.exists():
            raise FileNotFoundError(
                f"WidowX-250S assets not installed (expected {urdf}); run '{WIDOWX_DOWNLOAD}' on a machine with "
                "internet access (or copy the folder there), then retry"
            )
        raise NotImplementedError(
            "the WidowX-250S profile (paper robot, camera and controller) is not implemented yet; use robot='panda'"
        )
    import difflib

    close = difflib.get_close_matches(robot, list(ROBOTS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown robot {robot!r}{hint}; allowed: {', '.join(ROBOTS)}")


def _maniskill_data_dir() -> Path:
    if os.environ.get("MS_ASSET_DIR"):
        return Path(os.environ["MS_ASSET_DIR"]) / "data"
    return Path.home() / ".maniskill" / "data"


def _cuda_renders() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False
