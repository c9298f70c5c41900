"""Robots: the Panda with the benchmark's raw end-effector delta-pose controller (low-poly visuals on CPU), and
the paper's WidowX-250S (``widowx250s``, needs ManiSkill's robot download; used by the ``rl4vla`` profile).

Control mode ``pd_ee_target_delta_pose_raw``: 7-D action ``[dx, dy, dz, drx, dry, drz, gripper]`` in raw metres and
radians (no [-1, 1] normalisation), translation in the robot-base frame, rotation as an intrinsic XYZ Euler delta
left-multiplied onto the previous *target* orientation (target-referenced, as in RL4VLA); gripper +1 open / -1 close.
The task clips each action to :data:`ACTION_LOW` / :data:`ACTION_HIGH` before the controller sees it.

The WidowX-250S uses the same control-mode name and action convention with RL4VLA's controller (spec rl4vla.md §1):
PD end-effector delta pose on ``ee_gripper_link``, target-referenced, raw metres / radians, translation in the base
frame, XYZ-Euler rotation deltas left-multiplied onto the previous target; the gripper is a PD joint-position mimic
controller mapping -1 -> 0.014 m (closed) and +1 -> 0.038 m (open) per finger. Its joint gains, base pose and initial
joint configuration are the paper's. Where each robot stands and how it starts is in :data:`ROBOT_SPECS`.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from copy import deepcopy
from dataclasses import dataclass
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
    "widowx250s": "WidowX-250S (needs ManiSkill's asset download; used by the rl4vla profiles)",
}
WIDOWX_DOWNLOAD = "python -m mani_skill.utils.download_asset widowx250s"
WIDOWX_ZIP = "https://github.com/haosulab/ManiSkill-WidowX250S/archive/refs/tags/v0.2.0.zip"

# ---- WidowX-250S as RL4VLA configures it (spec rl4vla.md §1: agent widowx250s_bridgedataset_flat_table)
WIDOWX_ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
WIDOWX_GRIPPER_JOINTS = ("left_finger", "right_finger")
WIDOWX_EE_LINK = "ee_gripper_link"
WIDOWX_REST_QPOS = np.array(
    [-0.01840777, 0.0398835, 0.22242722, -0.00460194, 1.36524296, 0.00153398], dtype=np.float32
)
WIDOWX_GRIPPER_OPEN = 0.037
WIDOWX_STIFFNESS = (1169.7891719504198, 730.0, 808.4601346394447, 1229.1299089624076, 1272.2760456418862,
                    1056.3326605132252)  # fmt: skip
WIDOWX_DAMPING = (330.0, 180.0, 152.12036565582588, 309.6215302722146, 201.04998711007383, 269.51458932695414)
WIDOWX_FORCE_LIMIT = (200.0, 200.0, 100.0, 100.0, 100.0, 100.0)
# closed, open (m per finger), each with the paper's 1 mm clearance
WIDOWX_GRIPPER_RANGE = (0.015 - 0.001, 0.037 + 0.001)
WIDOWX_GRIPPER_PD = (1000.0, 200.0, 60.0)  # stiffness, damping, force limit
WIDOWX_LINK_MATERIAL = (0.9, 0.3)  # specular, roughness on every robot link (as the paper renders it)
# The paper's base pose is p = (0.147, 0.028, 0.870), yaw 180 deg, with the 6x6 grid centred at (-0.16, 0) on a table
# whose top is at z = 0.869532 (where SIMPLER's plate rests; rl4vla.RL4VLA_TABLE_TOP_Z). Our grid is centred at
# episode.GRID_CENTER = (-0.10, 0) on a table top at z = 0, so the same base-to-grid offset puts the base here:
WIDOWX_BASE_POSE = (0.207, 0.028, 0.000468, 0.0, 0.0, 0.0, 1.0)  # x, y, z, qw, qx, qy, qz


@dataclass(frozen=True)
class RobotSpec:
    """Where a robot stands and how it starts (the task reads this for the agent uid it was made with)."""

    base_pose: tuple[float, ...]
    """x, y, z, qw, qx, qy, qz of the robot root in the task frame (table top at z = 0)."""
    rest_qpos: tuple[float, ...]
    """Arm joint positions at reset."""
    gripper_open: float
    """Finger joint position at reset (open), for each finger joint."""
    n_gripper: int
    offset_joints: tuple[int, ...]
    """Which entries of an episode's 7-D ``qpos_offset`` (the Panda-indexed RobotInit table) go to each arm joint."""
    fingertip_depth: float = 0.0095
    """How far (m) the fingertips reach below the TCP, gripper pointing down (the oracle keeps them off the table)."""


PANDA_SPEC = RobotSpec((*BASE_POSE, 1.0, 0.0, 0.0, 0.0), tuple(float(x) for x in REST_QPOS), GRIPPER_OPEN, 2,
                       tuple(range(7)))  # fmt: skip
# The 7-D offsets are indexed like the Panda's joints (1 waist, 2 shoulder, 3 upper-arm roll, 4 elbow, 5 forearm roll,
# 6 wrist pitch, 7 wrist roll). The WidowX takes the anatomical counterparts: waist <- 1, shoulder <- 2, elbow <- 4,
# forearm_roll <- 5, wrist_angle <- 6, wrist_rotate <- 7 (joint 3 has none). The offset table's |2 + 4| <= 0.25 rad
# rule then is RL4VLA EEPose-v1's |shoulder + elbow| <= 0.25 rule, and every joint draws from the paper's value sets.
WIDOWX_SPEC = RobotSpec(WIDOWX_BASE_POSE, tuple(float(x) for x in WIDOWX_REST_QPOS), WIDOWX_GRIPPER_OPEN, 2,
                        (0, 1, 3, 4, 5, 6), fingertip_depth=0.0164)  # fmt: skip
ROBOT_SPECS = {"vgb_panda": PANDA_SPEC, "vgb_panda_stock": PANDA_SPEC, "vgb_widowx250s": WIDOWX_SPEC}

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

    _register_widowx()

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
        check_widowx_assets()
        return "vgb_widowx250s"
    import difflib

    close = difflib.get_close_matches(robot, list(ROBOTS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown robot {robot!r}{hint}; allowed: {', '.join(ROBOTS)}")


def widowx_urdf_path() -> Path:
    """Where ManiSkill keeps the WidowX-250S description (``$MS_ASSET_DIR/data`` or ``~/.maniskill/data``)."""
    return _maniskill_data_dir() / "robots" / "widowx" / "wx250s.urdf"


def check_widowx_assets() -> Path:
    """Return the WidowX-250S URDF path, or raise FileNotFoundError saying exactly what to download and where.

    Checked before anything reaches ManiSkill, whose loader would otherwise ask with ``input()`` (or, with
    ``MS_SKIP_ASSET_DOWNLOAD_PROMPT=1``, try to download and leave an empty folder that it later counts as installed).
    Nothing here downloads or prompts. An existing but empty or partial folder is reported as such.
    """
    urdf = widowx_urdf_path()
    folder = urdf.parent
    how = (f"on a machine with internet access run '{WIDOWX_DOWNLOAD}' (or download {WIDOWX_ZIP} and unzip it so "
           f"that wx250s.urdf lies directly in {folder}), then copy that folder to {folder} here; "
           "see docs/paper_profile.md")  # fmt: skip
    if not urdf.exists():
        if folder.is_dir():
            contents = "is empty" if not any(folder.iterdir()) else "has no wx250s.urdf"
            raise FileNotFoundError(
                f"WidowX-250S assets incomplete: {folder} exists but {contents} (typically left behind by a failed "
                f"ManiSkill download, which ManiSkill then treats as installed); delete that folder, then {how}"
            )
        raise FileNotFoundError(f"WidowX-250S assets not installed (expected {urdf}); {how}")
    missing = _missing_urdf_meshes(urdf)
    if missing:
        shown = ", ".join(str(m) for m in missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise FileNotFoundError(f"WidowX-250S assets incomplete: {urdf} names mesh files that are missing ({shown}); "
                                f"delete {folder}, then {how}")  # fmt: skip
    return urdf


def _missing_urdf_meshes(urdf: Path) -> list[Path]:
    try:
        root = ET.parse(urdf).getroot()
    except ET.ParseError as e:
        raise FileNotFoundError(
            f"WidowX-250S URDF {urdf} is not valid XML ({e}); the download is corrupt"
        ) from e
    missing = []
    for mesh in root.iter("mesh"):
        name = mesh.get("filename", "")
        if not name or "://" in name:  # package:// URIs are resolved by the loader, not by path
            continue
        path = (urdf.parent / name).resolve()
        if not path.exists() and path not in missing:
            missing.append(path)
    return missing


def _register_widowx() -> None:
    """Register ``vgb_widowx250s``: ManiSkill's WidowX-250S with RL4VLA's controller, no sensors of its own."""
    from mani_skill.agents.controllers import PDEEPoseControllerConfig, PDJointPosMimicControllerConfig
    from mani_skill.agents.registration import register_agent
    from mani_skill.agents.robots.widowx.widowx import WidowX250S

    @register_agent(override=True)  # no asset_download_ids: ManiSkill must never offer to download for us
    class VgbWidowX250S(WidowX250S):
        uid = "vgb_widowx250s"

        def __init__(self, *args, **kwargs):
            self.urdf_path = str(
                check_widowx_assets()
            )  # the clear error, even when the env check was bypassed
            super().__init__(*args, **kwargs)

        @property
        def _sensor_configs(self):
            return []  # the task owns the policy camera (the paper's 3rd_view_camera, see envs.rl4vla)

        @property
        def _controller_configs(self):
            arm = PDEEPoseControllerConfig(
                joint_names=list(WIDOWX_ARM_JOINTS),
                # bounds: only the action-space box (normalize_action=False never rescales); the task clips first
                pos_lower=float(ACTION_LOW[0]), pos_upper=float(ACTION_HIGH[0]),
                rot_lower=float(ACTION_LOW[3]), rot_upper=float(ACTION_HIGH[3]),
                stiffness=list(WIDOWX_STIFFNESS), damping=list(WIDOWX_DAMPING), force_limit=list(WIDOWX_FORCE_LIMIT),
                friction=0.0, ee_link=WIDOWX_EE_LINK, urdf_path=self.urdf_path,
                frame="root_translation:root_aligned_body_rotation", use_delta=True, use_target=True,
                normalize_action=False,
            )  # fmt: skip
            lo, hi = WIDOWX_GRIPPER_RANGE
            k, d, f = WIDOWX_GRIPPER_PD
            gripper = PDJointPosMimicControllerConfig(
                joint_names=list(WIDOWX_GRIPPER_JOINTS), lower=lo, upper=hi, stiffness=k, damping=d, force_limit=f,
                normalize_action=True, drive_mode="force",
                mimic={WIDOWX_GRIPPER_JOINTS[1]: {"joint": WIDOWX_GRIPPER_JOINTS[0]}},
            )  # fmt: skip
            return {CONTROL_MODE: dict(arm=arm, gripper=gripper)}

        def _after_loading_articulation(self):
            super()._after_loading_articulation()
            self.tcp = self.robot.links_map[WIDOWX_EE_LINK]
            set_link_material(self.robot, *WIDOWX_LINK_MATERIAL)

        # is_grasping is ManiSkill's WidowX test, which is the paper's: both finger links in contact with the
        # object with >= min_force, each force within max_angle (85 deg) of that finger's opening direction.


def set_link_material(robot, specular: float, roughness: float) -> int:
    """Set specular / roughness of every render part of every link of ``robot`` (an Articulation); returns the count."""
    import sapien

    n = 0
    for link in robot.links:
        for obj in link._objs:
            body = obj.entity.find_component_by_type(sapien.render.RenderBodyComponent)
            if body is None:
                continue
            for shape in body.render_shapes:
                for part in shape.parts if hasattr(shape, "parts") else [shape]:
                    mat = getattr(part, "material", None)
                    if mat is None:
                        continue
                    mat.specular = specular
                    mat.roughness = roughness
                    n += 1
    return n


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
