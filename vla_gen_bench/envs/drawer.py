"""``VgbDrawer-v1``: open (or close) the drawer of a procedurally built cabinet, the articulated task family.

The task reuses :class:`~vla_gen_bench.envs.put_on_receptacle.PutOnReceptacleEnv`'s machinery (robots, cameras,
table-image composition, overlays, ``step`` with its one per-step update) and replaces the scene, the episode
placement, the disturbance and the success rule. The cabinets and handles are :mod:`vla_gen_bench.assets.cabinets`.
"""

from __future__ import annotations

import math

import numpy as np
import sapien
import torch
from mani_skill.utils.registration import register_env
from mani_skill.utils.structs import Pose

from vla_gen_bench.assets import cabinets as CB
from vla_gen_bench.envs.actors import _add_part, build_asset_actor
from vla_gen_bench.envs.put_on_receptacle import (
    GRASP_MIN_N,
    MAX_EPISODE_STEPS,
    SUSTAINED_GRASP_STEPS,
    PutOnReceptacleEnv,
    _yaw_quat,
)
from vla_gen_bench.episode import EpisodeSpec

ENV_ID = "VgbDrawer-v1"
MODES = ("open", "close")
OPEN_FRACTION = 0.6  # open: success when the drawer is out by at least this fraction of its travel ...
CLOSED_FRACTION = 0.1  # close: ... or in to at most this fraction of it
PROGRESS_MIN = 0.1  # a drawer moved less than this fraction of its travel towards the goal made no progress
TOUCH_MIN_N = 0.1  # N between a finger or the hand and the drawer (or its handle) counts as a touch
DRAWER_FAILURE_LABELS = ("success", "never_touched", "no_progress", "partial", "undone")
"""The drawer's outcome labels (``info["failure"]`` indexes them): success; the robot never touched the drawer;
touched it but moved it less than :data:`PROGRESS_MIN` of its travel towards the goal; moved it but not past the
threshold; past the threshold at some step but not at the end (the push-back, or the robot undid it)."""


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class DrawerEnv(PutOnReceptacleEnv):
    """
    **Task Description:**
    A Panda arm must open (``mode="open"``: "open the drawer of the {cabinet}") or close (``mode="close"``) the one
    drawer of a cabinet standing on the table on the robot's left, its front facing +x (away from the robot, in
    the policy camera's view: :mod:`vla_gen_bench.assets.cabinets`' layout). The cabinet is a SAPIEN
    articulation: a fixed carcass and a drawer on a prismatic joint with limits [0, travel] (0 = closed), joint
    friction and damping so that it stays where it is left, and a handle (knob, bar, pull tab, ...) on the drawer
    front. Up to one distractor object stands beside the cabinet. Control, cameras, image composition and overlays
    are those of ``VgbPutOnReceptacle-v1`` (5 Hz, 80 steps, 7-D end-effector delta pose + gripper).

    **Randomizations:**
    None of its own: an episode is an :class:`~vla_gen_bench.episode.EpisodeSpec` (``receptacles[0]`` the cabinet
    id, ``receptacle_xy/yaw[0]`` its pose, ``objects[0]`` the handle id, ``objects[1:]`` distractors,
    ``reposition`` the push-back: right after action ``at_step`` the drawer is set back closed (open) or fully open
    (close)). Without one, a reset takes an in-distribution episode
    (:func:`~vla_gen_bench.assets.cabinets.drawer_episode`) drawn from the seeded episode RNG. Each reset builds
    the episode's cabinet and distractors (``reconfiguration_freq=1``), one env per process.

    **Success Conditions:**
    At the final step the drawer's joint position is at least ``OPEN_FRACTION`` (0.6) of its travel (open) or at
    most ``CLOSED_FRACTION`` (0.1) of it (close). ``success_once``, the handle grasp flags, a failure label
    (:data:`DRAWER_FAILURE_LABELS`) and a potential (0.2 for the TCP's closeness to the handle + the drawer's
    progress towards the goal as a fraction of its travel; the dense reward is its change) are reported too.
    """

    def __init__(self, *args, mode: str = "open", reconfiguration_freq: int | None = None, **kwargs):
        if mode not in MODES:
            raise ValueError(f"unknown drawer mode {mode!r}; allowed: {', '.join(MODES)}")
        if reconfiguration_freq not in (None, 1):
            raise ValueError(f"{ENV_ID} builds each episode's cabinet at its reset: reconfiguration_freq must be 1 "
                             f"(or left out), got {reconfiguration_freq}")  # fmt: skip
        if kwargs.get("num_envs", 1) != 1:
            raise ValueError(f"{ENV_ID} runs one env per process (each episode builds its own cabinet); got "
                             f"num_envs={kwargs['num_envs']}: use num_envs=1 and several workers")  # fmt: skip
        if kwargs.get("rules", "vgb") != "vgb":
            raise ValueError(
                f"{ENV_ID} has only the vgb rules; the rl4vla rules are the paper's one task family"
            )
        self.mode = mode
        self.failure_labels = DRAWER_FAILURE_LABELS  # what info["failure"] indexes (the runner reads it)
        self._next_spec: EpisodeSpec | None = None
        super().__init__(*args, reconfiguration_freq=1, **kwargs)

    # ------------------------------------------------------------------ scene
    def _episode_for_build(self, options: dict) -> EpisodeSpec:
        """The episode this reset builds: the one given, else one drawn from the episode RNG (a fixed one while
        the constructor builds its first scene, before any RNG exists)."""
        given = options.get("episode")
        if isinstance(given, (list, tuple)):
            given = given[0]
        if isinstance(given, dict):
            given = EpisodeSpec.from_dict(given)
        if given is not None:
            return given
        rng = getattr(self, "_batched_episode_rng", None)
        seed = int(rng[0].randint(2**31)) if rng is not None else 0
        return CB.drawer_episode(np.random.default_rng(seed), self.store, self.mode)

    def _load_scene(self, options: dict):
        spec = self._next_spec = self._episode_for_build(options)
        self._validate_spec(spec)
        self._build_table_and_parking()  # every family's table (and the unused parking shelf)

        self.cab = CB.get_cabinet(spec.receptacles[0])
        self.handle = CB.get_handle(spec.objects[0])
        (cx, cy), yaw = spec.receptacle_xy[0], spec.receptacle_yaw[0] if spec.receptacle_yaw else CB.BASE_YAW
        self.cabinet = build_cabinet(
            self.scene, self.cab, self.handle, sapien.Pose([cx, cy, 0.0], _yaw_quat(yaw))
        )
        self.drawer_link = self.cabinet.links_map["drawer"]
        friction = sapien.physx.PhysxMaterial(static_friction=1.0, dynamic_friction=1.0, restitution=0.0)
        self.objects = [
            build_asset_actor(self.scene, oid, self.store.shape(oid), friction,
                              sapien.Pose([x, y, 0.002], _yaw_quat(a)))
            for oid, (x, y), a in zip(spec.objects[1:], spec.object_xy[1:], spec.object_yaw[1:], strict=True)
        ]  # fmt: skip
        self.receptacles = []

    def _validate_spec(self, spec: EpisodeSpec):
        CB.get_cabinet(spec.receptacles[0])  # raise with what is allowed
        CB.get_handle(spec.objects[0])
        if len(spec.receptacles) != 1:
            raise ValueError(
                f"a drawer episode has one receptacle (the cabinet); got {list(spec.receptacles)}"
            )
        for a in spec.objects[1:]:
            if a not in self.object_ids:
                self.store.entry(a)  # raises with did-you-mean if unknown
                raise ValueError(f"distractor {a!r} is not an object")
        if len(set(spec.objects)) != len(spec.objects):
            raise ValueError("an episode cannot use the same object twice")
        self.store.entry(spec.table)
        if spec.overlay:
            self.store.entry(spec.overlay.texture)
        if spec.reposition is not None and spec.reposition.at_step < 1:
            raise ValueError(f"reposition.at_step must be >= 1 (the drawer is pushed back right after that many "
                             f"actions); got {spec.reposition.at_step}")  # fmt: skip

    # ------------------------------------------------------------------ episodes
    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        b = self.num_envs
        spec = self._next_spec
        given = self._episode_for_build(options) if options.get("episode") is not None else spec
        if given != spec:
            raise ValueError("the episode given to this reset is not the one its scene was built for; pass it in "
                             "the same reset(options={'episode': spec})")  # fmt: skip
        self._specs = [spec]
        z = lambda dtype=torch.bool: torch.zeros(b, dtype=dtype, device=self.device)  # noqa: E731
        # episode statistics, (b,) each: changed only by _update_episode_stats, once per control step
        self._ever_touched, self._ever_grasped, self._consec_ok, self._success_once = z(), z(), z(), z()
        self._streak = z(torch.int32)
        self._best_progress = z(torch.float32)
        self._phi, self._phi_prev = z(torch.float32), z(torch.float32)
        self._readings = None
        self._travel = torch.full((b,), self.cab.travel, device=self.device)  # (b,)
        self._q0 = self._travel * (0.0 if self.mode == "open" else 1.0)  # (b,) joint position at reset
        self.cabinet.set_qpos(self._q0[:, None])
        self.cabinet.set_qvel(torch.zeros(b, 1, device=self.device))
        self._set_qpos_robot()

    def _set_qpos_robot(self):
        rs, spec = self.robot_spec, self._specs[0]
        n_arm = len(rs.rest_qpos)
        qpos = np.zeros((self.num_envs, n_arm + rs.n_gripper), dtype=np.float32)
        off = np.asarray(spec.qpos_offset, dtype=np.float32)
        qpos[:, :n_arm] = np.asarray(rs.rest_qpos, dtype=np.float32) + off[list(rs.offset_joints)]
        qpos[:, n_arm:] = rs.gripper_open
        self.agent.reset(torch.from_numpy(qpos).to(self.device))
        self.agent.robot.set_pose(self._base_pose())

    def _reposition(self):
        """The push-back: right after action ``at_step`` the drawer is set back closed (open mode) or fully open
        (close mode), at rest (``step`` calls this once per step)."""
        r = self._specs[0].reposition
        if r is None or int(self.elapsed_steps[0]) != r.at_step:
            return
        self.cabinet.set_qpos(self._q0[:, None])
        self.cabinet.set_qvel(torch.zeros(self.num_envs, 1, device=self.device))
        if self.gpu_sim_enabled:
            self.scene._gpu_apply_all()

    # ------------------------------------------------------------------ success, grasp, reward
    def joint_position(self) -> torch.Tensor:
        """(b,) the drawer's joint position (m out of the closed position)."""
        return self.cabinet.get_qpos()[:, 0]

    def progress(self) -> torch.Tensor:
        """(b,) how far the drawer has moved towards the goal, as a fraction of its travel (0 at reset)."""
        frac = self.joint_position() / self._travel
        return frac if self.mode == "open" else 1.0 - frac

    def grip_world(self) -> torch.Tensor:
        """(b, 3) where the fingers close on the handle, in the world frame (moves with the drawer)."""
        local = torch.tensor(CB.grip_point(self.cab, self.handle), dtype=torch.float32, device=self.device)
        pose = self.drawer_link.pose
        from vla_gen_bench.envs.put_on_receptacle import _quat_apply

        return pose.p + _quat_apply(pose.q, local.expand(self.num_envs, 3))

    def _read_scene(self) -> dict[str, torch.Tensor]:
        """What success and the failure label need of the scene as it is now, each (b,). Reads only."""
        frac = self.joint_position() / self._travel
        success = frac >= OPEN_FRACTION if self.mode == "open" else frac <= CLOSED_FRACTION
        touch = torch.zeros(self.num_envs, device=self.device)
        for link in (
            self.agent.finger1_link,
            self.agent.finger2_link,
            self.agent.robot.links_map["panda_hand"],
        ):
            touch = touch + torch.linalg.norm(
                self.scene.get_pairwise_contact_forces(link, self.drawer_link), dim=1
            )
        grasped = self.agent.is_grasping(self.drawer_link, min_force=GRASP_MIN_N)
        reach = torch.linalg.norm(self.agent.tcp.pose.p - self.grip_world(), dim=1)
        return dict(success=success, touched=touch > TOUCH_MIN_N, is_grasped=grasped, progress=self.progress(),
                    reach=reach)  # fmt: skip

    def _update_episode_stats(self):
        """The one place the episode statistics change: once per control step, from ``step`` after the physics and
        the push-back, before ``evaluate`` and the reward read them."""
        r = self._readings = self._read_scene()
        self._ever_touched |= r["touched"]
        self._ever_grasped |= r["is_grasped"]
        self._streak = torch.where(r["is_grasped"], self._streak + 1, torch.zeros_like(self._streak))
        self._consec_ok |= self._streak >= SUSTAINED_GRASP_STEPS
        self._success_once |= r["success"]
        self._best_progress = torch.maximum(self._best_progress, r["progress"])
        self._phi_prev = self._phi
        self._phi = self._potential(r)

    @staticmethod
    def _potential(r: dict[str, torch.Tensor]) -> torch.Tensor:
        """(b,) 0.2 (1 - tanh(10 d)) for the TCP's distance d to the grip point + the progress, clipped to [0, 1]."""
        return 0.2 * (1 - torch.tanh(10 * r["reach"])) + r["progress"].clamp(0.0, 1.0)

    def evaluate(self):
        """The info of the current state (ManiSkill calls this in ``reset`` and in every ``step``). Reads only."""
        if not hasattr(self, "_specs") or not hasattr(self, "_travel"):
            return dict(success=torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))
        r = self._readings if self._readings is not None else self._read_scene()
        success = r["success"]
        label = torch.full_like(
            self._streak, DRAWER_FAILURE_LABELS.index("partial"), dtype=torch.long
        )  # (b,)
        label[r["progress"] < PROGRESS_MIN] = DRAWER_FAILURE_LABELS.index("no_progress")
        label[~self._ever_touched] = DRAWER_FAILURE_LABELS.index("never_touched")
        label[self._success_once] = DRAWER_FAILURE_LABELS.index("undone")
        label[success] = DRAWER_FAILURE_LABELS.index("success")
        phi = self._phi if self._readings is not None else self._potential(r)
        return dict(
            success=success.clone(), success_once=(self._success_once | success).clone(),
            is_grasped=r["is_grasped"].clone(), ever_grasped=self._ever_grasped.clone(),
            consecutive_grasp=self._consec_ok.clone(), ever_touched=self._ever_touched.clone(),
            joint_position=self.joint_position().clone(), progress=r["progress"].clone(),
            failure=label, potential=phi.clone(),
        )  # fmt: skip

    def compute_dense_reward(self, obs, action, info):
        """The change of the potential (``info["potential"]``): TCP closeness to the handle and drawer progress."""
        return info["potential"] - self._phi_prev  # (b,)

    def compute_normalized_dense_reward(self, obs, action, info):
        return self.compute_dense_reward(obs, action, info) / 1.2

    # ------------------------------------------------------------------ helpers for policies and the runner
    def privileged(self) -> list[dict[str, np.ndarray]]:
        """True state for the drawer oracle, per env, in the robot-base frame (poses as xyz + wxyz)."""
        if not hasattr(self, "_travel"):
            return [{}] * self.num_envs
        base_inv = self.agent.robot.pose.inv()
        tcp = (base_inv * self.agent.tcp.pose).raw_pose.cpu().numpy()
        target = self.agent.controller.controllers["arm"]._target_pose.raw_pose.cpu().numpy()
        grip = (base_inv * Pose.create_from_pq(p=self.grip_world())).p.cpu().numpy()
        cab_pose = (base_inv * self.cabinet.pose).raw_pose.cpu().numpy()
        q, travel = self.joint_position().cpu().numpy(), self._travel.cpu().numpy()
        grasped = self.agent.is_grasping(self.drawer_link, min_force=GRASP_MIN_N).cpu().numpy()
        out = []
        for i in range(self.num_envs):
            yaw = _yaw_of(cab_pose[i, 3:])
            pull = np.array([-math.cos(yaw), -math.sin(yaw), 0.0], dtype=np.float32)  # the cabinet's -x
            out.append(dict(
                family="drawer", mode=self.mode,
                tcp_pose=tcp[i], ee_target_pose=target[i],
                handle_grip=grip[i].astype(np.float32),
                handle_yaw=np.float32(yaw + math.pi / 2),  # the fingers close along this (across the pull axis)
                grip_width=np.float32(self.handle.grip_width),
                handle_reach=np.float32(self.handle.reach),
                pull_axis=pull, cabinet_pose=cab_pose[i],
                cabinet_top=np.float32(cab_pose[i, 2] + self.cab.height),
                joint_position=np.float32(q[i]), travel=np.float32(travel[i]),
                fingertip_depth=np.float32(self.robot_spec.fingertip_depth),
                is_grasped=np.bool_(grasped[i]),
            ))  # fmt: skip
        return out


def build_cabinet(scene, cab: CB.CabinetSpec, handle: CB.HandleSpec, pose, name: str = "cabinet"):
    """Build the cabinet with this handle as a ManiSkill articulation (fixed root, one prismatic joint ``drawer``
    along the cabinet's -x with limits [0, travel]) at ``pose`` (a ``sapien.Pose``); returns it.

    The drawer link's frame is the cabinet frame at joint position 0 (closed).
    """
    friction = sapien.physx.PhysxMaterial(static_friction=1.0, dynamic_friction=1.0, restitution=0.0)
    b = scene.create_articulation_builder()
    b.initial_pose = pose
    root = b.create_link_builder()
    root.set_name("carcass")
    for p in CB.carcass_parts(cab):
        _add_part(root, cab.id, p, friction, CB.CARCASS_DENSITY)
    drawer = b.create_link_builder(root)
    drawer.set_name("drawer")
    for p in (*CB.drawer_parts(cab), *CB.handle_parts(cab, handle)):
        _add_part(drawer, handle.id, p, friction, CB.DRAWER_DENSITY)
    # a prismatic joint moves along its frame's x axis: turned 180 degrees about z, +q pulls the drawer out (-x)
    axis = sapien.Pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])
    drawer.set_joint_name("drawer")
    drawer.set_joint_properties("prismatic", limits=[[0.0, cab.travel]], pose_in_parent=axis, pose_in_child=axis,
                                friction=CB.JOINT_FRICTION, damping=CB.JOINT_DAMPING)  # fmt: skip
    return b.build(name=name, fix_root_link=True)


def _yaw_of(q) -> float:
    w, x, y, z = (float(v) for v in q)
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def make_drawer_env(mode: str = "open", camera: str = "default", **kwargs):
    """Create ``VgbDrawer-v1`` (one process pays a ~10 s render-pipeline compile on lavapipe)."""
    import logging

    import gymnasium as gym
    from mani_skill.utils.logging_utils import logger

    logger.setLevel(logging.ERROR)
    return gym.make(ENV_ID, mode=mode, camera=camera, **kwargs)
