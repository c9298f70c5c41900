"""``VgbPutOnReceptacle-v1``: put {object} on {receptacle}, the task family every variant is built from.

The task in ManiSkill's hooks: ``_load_scene`` (table and one actor per asset), ``_initialize_episode`` (places the
episode's :class:`~vla_gen_bench.episode.EpisodeSpec`), ``evaluate`` (success, grasp flags, failure label,
potential) and ``compute_dense_reward``. ``step`` is ManiSkill's with the task's one per-step update between the
physics and those readers: the mid-episode reposition, then the episode statistics. The cameras are
:mod:`vla_gen_bench.envs.cameras`, the actors :mod:`vla_gen_bench.envs.actors`, the robots
:mod:`vla_gen_bench.envs.robots`, the image composition :mod:`vla_gen_bench.envs.compose`.
"""

from __future__ import annotations

import gc
import math
from dataclasses import replace

import numpy as np
import sapien
import torch
from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.utils.registration import register_env
from mani_skill.utils.structs import Actor, Link, Pose
from mani_skill.utils.structs.types import SimConfig

from vla_gen_bench.assets.grasp import grasp_in_pose
from vla_gen_bench.assets.store import AssetStore, default_store
from vla_gen_bench.envs import compose as C
from vla_gen_bench.envs import rl4vla
from vla_gen_bench.envs.actors import build_asset_actor
from vla_gen_bench.envs.cameras import POLICY_CAMERA, SHADERS, CameraSpec, camera_config, camera_spec
from vla_gen_bench.envs.robots import (
    ACTION_LOW,
    CONTROL_MODE,
    ROBOT_SPECS,
    register_agents,
    resolve_robot,
)
from vla_gen_bench.episode import FAILURE_LABELS, EpisodeSpec

ENV_ID = "VgbPutOnReceptacle-v1"
MAX_EPISODE_STEPS = 80
CONTROL_FREQ = 5
DEFAULT_SIM_FREQ = 100

# Success / grasp thresholds (DESIGN.md §3, RL4VLA §4)
XY_TOL = 0.01  # m beyond the receptacle's largest half extent
Z_GAP_MAX = 0.05  # m between the object's bottom and the receptacle's top
CONTACT_MIN_N = 0.03  # N object-receptacle contact force
GRASP_MIN_N = 0.5  # N per finger
SUSTAINED_GRASP_STEPS = 5
NEAR_RECEPTACLE = 0.05  # m: a release this close to a receptacle counts as "misplaced", farther as "dropped"

TABLE_RECT = (-0.95, 0.55, -0.75, 0.75)  # x0, x1, y0, y1 of the table top (z = 0)
PARK_X = 20.0  # unused objects wait on a shelf far outside every camera
# a scene rebuild frees the old scene only through Python's cyclic GC; ManiSkill collects at every rebuild (a full
# collection: ~0.13 s in a process holding torch + ManiSkill, more beside a policy), this task every GC_EVERY rebuilds
GC_EVERY = 8
# How an episode starts and where success is measured: "vgb" places objects 2 mm above their support at the exact
# rotation and tests bounding-box centres; "rl4vla" is RL4VLA's reset (robot parked, objects dropped from the
# paper's heights and settled) and its success test at the model origins with the settled rotation's extents.
RULES = ("vgb", "rl4vla")


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class PutOnReceptacleEnv(BaseEnv):
    """
    **Task Description:**
    A Panda arm must put the named object on the named receptacle ("put {object} on {receptacle}"). The scene holds
    1-2 objects (the target first) and 1-2 flat receptacles on a table. Control: 5 Hz, 80 steps, 7-D raw
    end-effector delta pose + gripper (see ``vla_gen_bench.envs.robots``). The policy image is composed: the
    render's foreground (robot, objects, receptacles) over the episode's table image seen from the same camera.

    **Randomizations:**
    None of its own: an episode is an :class:`~vla_gen_bench.episode.EpisodeSpec`, made only by the variants'
    episode manifests (:func:`vla_gen_bench.variants.episode`). Evaluation, demo collection and RL rollouts pass
    one in ``reset(options={"episode": spec})``. Without one, the env takes episode 0 of its ``variant``'s
    manifest (a catalog name such as ``"unseen_table"``, see ``vgb list``; default the control arm ``"ind"``) for
    a manifest seed drawn from the seeded episode RNG. The control arm: a train object, the train receptacle, a
    train table, an ordered pair of distinct 6x6-grid cells (3 cm pitch) more than 7 cm apart, yaw in
    {0, pi/4, pi/2, 3pi/4}.

    **Success Conditions:**
    The target object's centre is within (receptacle's largest half extent + 1 cm) of the receptacle's centre in
    xy, above it with a vertical gap of at most 5 cm between their facing surfaces, and in contact with it
    (> 0.03 N). Success is read at the final step (``info["success"]``); ``success_once`` is also reported, with
    a failure label (:data:`~vla_gen_bench.episode.FAILURE_LABELS`) and RL4VLA's potential-based reward. The
    episode statistics behind them (ever grasped, sustained grasp, success once, wrong object grasped, potential)
    change once per control step, in ``step``; ``evaluate`` and the reward only read them. With
    ``rules="rl4vla"`` (the paper profiles) the centres are the assets' model origins and the half extents those of
    the bounding box rotated by the pose the object settled in at reset, as RL4VLA measures.

    **Reset rules:**
    ``rules="vgb"`` (default) places objects 2 mm above their support at the exact yaw. ``rules="rl4vla"`` is
    RL4VLA's reset: the robot parked 1 m up, each placed actor's model origin at the paper's drop height, 0.1 s of
    physics, 1.2 s more while anything still moves, then the robot back (``docs/paper_profile.md`` §2).

    **Episode independence:**
    With CPU physics every ``reset`` builds a fresh scene (``reconfiguration_freq=1``): PhysX keeps state across
    teleports that no API clears (contact pairs, island/sleep graph, id free lists that order the solver's
    constraints), so on a reused scene an episode's trajectory depends on the episodes before it
    (``tests/envs/test_episode_independence.py``). A rebuild adds ~0.09 s to a reset (0.02 s -> 0.11 s on a 2-core
    CPU, against ~2.3 s for an 80-step episode). GPU simulation keeps ManiSkill's default (build once; a GPU rebuild
    re-initialises PhysX on the device); pass ``reconfiguration_freq`` to choose. A rebuild makes new actors: look
    ``objects`` / ``receptacles`` up after a reset, not before.
    """

    SUPPORTED_ROBOTS = ["vgb_panda", "vgb_panda_stock", "vgb_widowx250s"]
    SUPPORTED_REWARD_MODES = ["dense", "normalized_dense", "sparse", "none"]
    agent: object

    def __init__(
        self,
        *args,
        robot_uids: str = "panda",
        camera: str | CameraSpec = "default",
        camera_size: tuple[int, int] | None = None,
        asset_store: AssetStore | None = None,
        sim_freq: int = DEFAULT_SIM_FREQ,
        obs_mode: str = "rgb",
        control_mode: str = CONTROL_MODE,
        variant=None,
        lighting: str = "default",
        shader: str | None = None,
        reconfiguration_freq: int | None = None,
        rules: str = "vgb",
        **kwargs,
    ):
        register_agents()
        if rules not in RULES:
            raise ValueError(f"unknown rules {rules!r}; allowed: {', '.join(RULES)}")
        self.rules = rules
        if lighting not in ("default", "rl4vla"):
            raise ValueError(f"unknown lighting {lighting!r}; allowed: default, rl4vla")
        if shader is not None and shader not in SHADERS:
            raise ValueError(f"unknown shader {shader!r}; allowed: {', '.join(SHADERS)} (None: the camera's)")
        self.lighting = lighting
        if variant is None or isinstance(variant, str):
            # the catalog is plain data (no simulator import): a name is looked up there
            from vla_gen_bench.variants import CONTROL, get_variant

            variant = get_variant(variant or CONTROL)
        self.variant = variant  # makes the episodes of resets without one: .sample(rng, store) -> EpisodeSpec
        self.camera_spec = camera_spec(camera, camera_size)
        if shader is not None:
            self.camera_spec = replace(self.camera_spec, shader=shader)
        self.store = asset_store or default_store()
        self._vgb_sim_freq = int(sim_freq)
        if self._vgb_sim_freq % CONTROL_FREQ:
            raise ValueError(f"sim_freq must be a multiple of the control frequency {CONTROL_FREQ} Hz")
        if obs_mode == "rgb":
            obs_mode = "rgb+segmentation"  # the composition needs segmentation; it is returned too
        self.object_ids = self.store.ids("object")
        self.receptacle_ids = self.store.ids("receptacle")
        self._table_images: dict[str, torch.Tensor] = {}
        self._cam_intrinsic: np.ndarray | None = None  # (3, 3), set by every scene build
        self._cam2world_cv: np.ndarray | None = None  # (4, 4)
        self._clears = 0
        self._overlay_images: dict[str, torch.Tensor] = {}
        uid = resolve_robot(robot_uids)  # raises with what to download before ManiSkill could prompt
        self.robot_spec = ROBOT_SPECS[uid]
        try:
            super().__init__(*args, robot_uids=uid, obs_mode=obs_mode, control_mode=control_mode,
                             reconfiguration_freq=reconfiguration_freq, **kwargs)  # fmt: skip
        except RuntimeError as e:
            if any(m in str(e) for m in ("rendering device", "vk::", "Vulkan", "IncompatibleDriver")):
                from vla_gen_bench.envs.probe import HOW_TO_FIX

                raise RuntimeError(f"{HOW_TO_FIX} (SAPIEN said: {e})") from e
            raise
        if reconfiguration_freq is None:
            # set after the constructor's own build, so the first reset builds a fresh scene too (see the docstring)
            self.reconfiguration_freq = 0 if self.gpu_sim_enabled else 1

    # ------------------------------------------------------------------ configuration
    @property
    def _default_sim_config(self):
        return SimConfig(sim_freq=self._vgb_sim_freq, control_freq=CONTROL_FREQ, spacing=5)

    @property
    def _default_sensor_configs(self):
        return [camera_config(self.camera_spec, POLICY_CAMERA)]

    @property
    def _default_human_render_camera_configs(self):
        cam = self.camera_spec
        return camera_config(cam, "render_camera", 512, int(512 * cam.height / cam.width))

    def _load_agent(self, options: dict):
        super()._load_agent(options, self._base_pose())

    def _base_pose(self) -> sapien.Pose:
        p = self.robot_spec.base_pose
        return sapien.Pose(p=list(p[:3]), q=list(p[3:]))

    def _load_lighting(self, options: dict):
        if self.lighting != "rl4vla":
            return super()._load_lighting(options)
        light = rl4vla.RL4VLA_LIGHTING
        self.scene.set_ambient_light([light["ambient"]] * 3)
        for direction, intensity in light["directional"]:
            self.scene.add_directional_light(list(direction), [intensity] * 3, shadow=False)

    # ------------------------------------------------------------------ scene
    def _load_scene(self, options: dict):
        self._build_table_and_parking()
        friction = sapien.physx.PhysxMaterial(static_friction=1.0, dynamic_friction=1.0, restitution=0.0)
        build = lambda i, k: build_asset_actor(self.scene, i, self.store.shape(i), friction,  # noqa: E731
                                               sapien.Pose(self._park_pose(k)))  # fmt: skip
        self.objects = [build(i, k) for k, i in enumerate(self.object_ids)]
        off = len(self.object_ids)
        self.receptacles = [build(i, off + k) for k, i in enumerate(self.receptacle_ids)]
        # local bounding-box centres / half extents, for the success test
        self._obj_local = [self._bbox(i) for i in self.object_ids]
        self._rec_local = [self._bbox(i) for i in self.receptacle_ids]

    def _build_table_and_parking(self):
        """The static table (its top at z = 0 over :data:`TABLE_RECT`) and the parking shelf far outside every
        camera where unused actors wait (``self.table``, ``self.parking``); every family's ``_load_scene`` starts
        here."""
        x0, x1, y0, y1 = TABLE_RECT
        b = self.scene.create_actor_builder()
        half = [(x1 - x0) / 2, (y1 - y0) / 2, 0.02]
        center = sapien.Pose([(x0 + x1) / 2, (y0 + y1) / 2, -0.02])
        # RL4VLA's table collides as a triangle mesh (contacts differ from a box's)
        if self.rules == "rl4vla":
            b.add_nonconvex_collision_from_file(rl4vla.table_mesh_file(tuple(center.p), tuple(half)))
        else:
            b.add_box_collision(center, half)
        b.add_box_visual(center, half, material=sapien.render.RenderMaterial(base_color=[0.6, 0.6, 0.6, 1]))
        b.initial_pose = sapien.Pose()
        self.table = b.build_static(name="table")
        b = self.scene.create_actor_builder()
        n_park = len(self.object_ids) + len(self.receptacle_ids)
        b.add_box_collision(sapien.Pose([PARK_X + 0.15 * n_park, 0, -0.02]), [0.2 * n_park, 1.0, 0.02])
        b.initial_pose = sapien.Pose()
        self.parking = b.build_static(name="parking")

    def _bbox(self, asset_id: str):
        """(reference point of the success test in the actor frame, half extents): the bounding-box centre, or under
        the rl4vla rules the asset's model origin (RL4VLA tests ``pose.p``; our actor frame is the bbox bottom)."""
        shape = self.store.shape(asset_id)
        lo, hi = shape.bounds
        ref = (
            np.asarray(getattr(shape, "mesh_offset", (0.0, 0.0, 0.0)))
            if self.rules == "rl4vla"
            else (lo + hi) / 2
        )
        return torch.tensor(ref, dtype=torch.float32), torch.tensor((hi - lo) / 2, dtype=torch.float32)

    def _park_pose(self, k: int) -> list[float]:
        return [PARK_X + 0.3 * k, 0.0, 0.001]

    def _clear(self, collect: bool = False):
        """ManiSkill 3.0.1's ``BaseEnv._clear`` with its ``gc.collect()`` run every ``GC_EVERY`` scene builds (and at
        ``close``) instead of at every one: with a rebuild per episode the full collection would be half its cost.
        GPU simulation collects at every build (that is what frees the old scene's device memory)."""
        self._clears += 1
        old = getattr(self, "scene", None)
        collect = collect or (old is not None and old.gpu_sim_enabled) or self._clears % GC_EVERY == 0
        self._close_viewer()
        self.agent = None
        self._sensors = dict()
        self._human_render_cameras = dict()
        self.scene = None
        self._hidden_objects = []
        if collect:
            gc.collect()

    def close(self):
        self._clear(collect=True)

    def _after_reconfigure(self, options):
        ids = [i for i, o in self.segmentation_id_map.items()
               if isinstance(o, Link) or (isinstance(o, Actor) and o.name in set(self.object_ids + self.receptacle_ids))]  # fmt: skip
        self._fg_ids = torch.tensor(sorted(ids), dtype=torch.int16, device=self.device)
        params = self.scene.sensors[POLICY_CAMERA].get_params()
        extr = params["extrinsic_cv"][0].cpu().numpy()
        world2cam = np.eye(4)
        world2cam[:3] = extr
        intrinsic, cam2world = params["intrinsic_cv"][0].cpu().numpy(), np.linalg.inv(world2cam)
        # a rebuild per episode keeps the camera: the table views stay valid unless it moved
        same = self._cam_intrinsic is not None and np.array_equal(intrinsic, self._cam_intrinsic)
        if not (same and np.array_equal(cam2world, self._cam2world_cv)):
            self._table_images.clear()
        self._cam_intrinsic, self._cam2world_cv = intrinsic, cam2world

    def table_image(self, table_id: str) -> torch.Tensor:
        """(H, W, 3) uint8 view of the table appearance from the policy camera (cached per table)."""
        if table_id not in self._table_images:
            entry = self.store.entry(table_id)
            if entry.kind != "table":
                raise ValueError(f"asset {table_id!r} is a {entry.kind}, not a table")
            cam = self.camera_spec
            if "view" in entry.params:  # a pre-rendered camera view (generated / imported packs)
                img = self.store.image(table_id)
                if img.shape[:2] != (cam.height, cam.width):
                    from PIL import Image

                    img = np.asarray(Image.fromarray(img).resize((cam.width, cam.height), Image.BICUBIC))
            else:
                img = C.table_view(self.store.image(table_id), self._cam_intrinsic, self._cam2world_cv, cam.width,
                                   cam.height, entry.params.get("tile_m", 0.4), TABLE_RECT)  # fmt: skip
            self._table_images[table_id] = torch.from_numpy(np.array(img)).to(self.device)  # a writable copy
        return self._table_images[table_id]

    # ------------------------------------------------------------------ episodes
    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        b = self.num_envs
        if not hasattr(self, "_specs"):  # ManiSkill knows num_envs and the device from the first reset on
            self._specs: list[EpisodeSpec | None] = [None] * b
            z = lambda dtype=torch.bool: torch.zeros(b, dtype=dtype, device=self.device)  # noqa: E731
            # (b,) index of the target into objects / receptacles
            self._tgt_obj, self._tgt_rec = z(torch.long), z(torch.long)
            self._h_obj = torch.zeros(b, 3, device=self.device)  # (b, 3) yawed half extents of the target
            self._h_rec = torch.zeros(b, 3, device=self.device)  # (b, 3) ... and of the target receptacle
            # episode statistics, (b,) each: changed only by _update_episode_stats, once per control step
            self._ever_grasped, self._consec_ok, self._success_once, self._wrong_grasp = z(), z(), z(), z()
            self._streak = z(torch.int32)  # consecutive grasped steps up to now
            self._phi, self._phi_prev = z(torch.float32), z(torch.float32)  # potential now, one step before
        given = options.get("episode")
        for n, i in enumerate(env_idx.tolist()):
            spec = given[n] if isinstance(given, (list, tuple)) else given
            if isinstance(spec, dict):
                spec = EpisodeSpec.from_dict(spec)
            if spec is None:  # episode 0 of the variant's manifest for a seed drawn from the episode RNG
                spec = self.variant.sample(self._batched_episode_rng[i], self.store)
            self._validate_spec(spec)
            self._specs[i] = spec
        for arr in (self._ever_grasped, self._consec_ok, self._success_once, self._wrong_grasp):
            arr[env_idx] = False
        self._streak[env_idx] = 0
        self._phi[env_idx] = 0.0
        # this step's scene readings (_update_episode_stats); until the first step, evaluate() reads the scene
        self._readings: dict[str, torch.Tensor] | None = None
        for i in env_idx.tolist():
            s = self._specs[i]
            self._tgt_obj[i] = self.object_ids.index(s.objects[0])
            self._tgt_rec[i] = self.receptacle_ids.index(s.receptacles[0])
            self._h_obj[i] = _yawed_half(self._obj_local[self._tgt_obj[i]][1], s.object_yaw[0])
            rec_yaw = s.receptacle_yaw[0] if s.receptacle_yaw else 0.0
            self._h_rec[i] = _yawed_half(self._rec_local[self._tgt_rec[i]][1], rec_yaw)

        # poses of every object and receptacle: placed where a spec uses them, parked otherwise
        placements = self._placements()
        for k, actor in enumerate(self.objects + self.receptacles):
            raw = torch.tensor([self._park_pose(k) + [1.0, 0, 0, 0]] * b, dtype=torch.float32)
            for i, pose in placements.get(k, {}).items():
                raw[i] = torch.tensor(pose, dtype=torch.float32)
            actor.set_pose(Pose.create(raw.to(self.device)))
            actor.set_linear_velocity(torch.zeros(b, 3, device=self.device))
            actor.set_angular_velocity(torch.zeros(b, 3, device=self.device))
        if self.rules == "rl4vla":
            self._drop_and_settle(placements)

        rs = self.robot_spec
        n_arm = len(rs.rest_qpos)
        qpos = np.zeros((b, n_arm + rs.n_gripper), dtype=np.float32)
        for i in range(b):
            off = np.asarray(self._specs[i].qpos_offset if self._specs[i] else np.zeros(7), dtype=np.float32)
            qpos[i, :n_arm] = np.asarray(rs.rest_qpos, dtype=np.float32) + off[list(rs.offset_joints)]
            qpos[i, n_arm:] = rs.gripper_open
        self.agent.reset(torch.from_numpy(qpos).to(self.device))
        self.agent.robot.set_pose(self._base_pose())

    def _drop_and_settle(self, placements: dict[int, dict[int, list[float]]]):
        """RL4VLA's reset after placing: the robot parked 1 m above its base, 0.1 s of physics, 1.2 s more while the
        placed actors still move (their speeds' norms over the batch summed, as RL4VLA), then the success test's half
        extents from the settled rotations (the model bbox's corners rotated, as RL4VLA). The caller resets the robot."""
        park = self._base_pose()
        park.p = park.p + np.array([0.0, 0.0, rl4vla.RL4VLA_PARK_ROBOT_DZ])
        self.agent.robot.set_pose(park)
        self._settle(rl4vla.RL4VLA_SETTLE_S)
        lin = ang = 0.0
        actors = self.objects + self.receptacles
        for k, envs in placements.items():
            idx = torch.tensor(sorted(envs), device=self.device)
            lin += float(torch.linalg.norm(actors[k].linear_velocity[idx]))
            ang += float(torch.linalg.norm(actors[k].angular_velocity[idx]))
        if lin > rl4vla.RL4VLA_SETTLE_LIN_VEL or ang > rl4vla.RL4VLA_SETTLE_ANG_VEL:
            self._settle(rl4vla.RL4VLA_SETTLE_MORE_S)
        for i, s in enumerate(self._specs):
            if s is None:
                continue
            o, r = int(self._tgt_obj[i]), int(self._tgt_rec[i])
            self._h_obj[i] = _rotated_half(self._obj_local[o][1].to(self.device), self.objects[o].pose.q[i])
            self._h_rec[i] = _rotated_half(
                self._rec_local[r][1].to(self.device), self.receptacles[r].pose.q[i]
            )

    def _validate_spec(self, spec: EpisodeSpec):
        for a in spec.objects:
            if a not in self.object_ids:
                self.store.entry(a)  # raises with did-you-mean if unknown
                raise ValueError(f"{a!r} is not an object")
        for a in spec.receptacles:
            if a not in self.receptacle_ids:
                self.store.entry(a)
                raise ValueError(f"{a!r} is not a receptacle")
        if len(set(spec.objects)) != len(spec.objects) or len(set(spec.receptacles)) != len(spec.receptacles):
            raise ValueError("an episode cannot use the same object or receptacle twice")
        self.store.entry(spec.table)
        if spec.overlay:
            self.store.entry(spec.overlay.texture)
        if spec.reposition is not None and spec.reposition.at_step < 1:
            raise ValueError(f"reposition.at_step must be >= 1 (the object moves right after that many actions); "
                             f"got {spec.reposition.at_step}")  # fmt: skip

    def _placements(self) -> dict[int, dict[int, list[float]]]:
        """actor index -> {env index -> [x, y, z, qw, qx, qy, qz]} for every actor an episode uses."""
        out: dict[int, dict[int, list[float]]] = {}
        off = len(self.object_ids)
        for i, s in enumerate(self._specs):
            if s is None:
                continue
            if self.rules == "rl4vla":
                self._rl4vla_placements(s, i, out)
                continue
            rec_tops = []
            for j, rid in enumerate(s.receptacles):
                k = self.receptacle_ids.index(rid)
                yaw = s.receptacle_yaw[j] if s.receptacle_yaw else 0.0
                x, y = s.receptacle_xy[j]
                out.setdefault(off + k, {})[i] = [x, y, 0.0005, *_yaw_quat(yaw)]
                lo, hi = self.store.shape(rid).bounds
                rec_tops.append((x, y, float(np.linalg.norm((hi - lo)[:2]) / 2), float(hi[2])))
            for j, oid in enumerate(s.objects):
                k = self.object_ids.index(oid)
                x, y = s.object_xy[j]
                lo, hi = self.store.shape(oid).bounds
                r = float(np.linalg.norm((hi - lo)[:2]) / 2)
                # spawn just above whatever is under it (table or a receptacle's rim) and let it settle
                z = (
                    max([0.0] + [top for rx, ry, rr, top in rec_tops if math.hypot(x - rx, y - ry) < rr + r])
                    + 0.002
                )
                out.setdefault(k, {})[i] = [x, y, z, *_yaw_quat(s.object_yaw[j])]
        return out

    def _rl4vla_placements(self, s: EpisodeSpec, i: int, out: dict[int, dict[int, list[float]]]):
        """RL4VLA's drop poses of env ``i``'s actors: each model origin at the paper's height for the variant
        (:func:`~vla_gen_bench.envs.rl4vla.spawn_heights`), never with the mesh's lowest point below the table."""
        obj_h, rec_h = rl4vla.spawn_heights(len(s.objects), len(s.receptacles), s.reposition is not None)
        off = len(self.object_ids)
        for j, rid in enumerate(s.receptacles):
            yaw = s.receptacle_yaw[j] if s.receptacle_yaw else 0.0
            x, y = s.receptacle_xy[j]
            out.setdefault(off + self.receptacle_ids.index(rid), {})[i] = [x, y, self._origin_z(rid, rec_h[j]),
                                                                           *_yaw_quat(yaw)]  # fmt: skip
        for j, oid in enumerate(s.objects):
            x, y = s.object_xy[j]
            out.setdefault(self.object_ids.index(oid), {})[i] = [x, y, self._origin_z(oid, obj_h[j]),
                                                                 *_yaw_quat(s.object_yaw[j])]  # fmt: skip

    def _origin_z(self, asset_id: str, height: float) -> float:
        """Actor z that puts the asset's model origin ``height`` above the table (our actor frame is its bbox
        bottom, the origin sits ``mesh_offset`` above it), raised so the mesh's lowest point clears the table."""
        shape = self.store.shape(asset_id)
        z = height - float(getattr(shape, "mesh_offset", (0.0, 0.0, 0.0))[2])
        return max(z, -float(_lowest_point(shape)) + 0.001)

    # ------------------------------------------------------------------ stepping
    def step(self, action):
        """One control step: ManiSkill 3.0.1's ``BaseEnv.step`` with the task's per-step update between the physics
        and the readers of the state (``evaluate``, the reward), and no early termination (success is read at the end
        of the fixed horizon; the time limit truncates)."""
        action = self._step_action(self._check_action(action))  # (b, 7): controller targets, then the physics
        self._elapsed_steps += 1
        self._reposition()
        self._update_episode_stats()
        info = self.get_info()  # evaluate(): reads
        obs = self.get_obs(info, unflattened=True)
        reward = self.get_reward(obs=obs, action=action, info=info)  # (b,), reads
        obs = self._flatten_raw_obs(obs)
        self._last_obs = obs
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)  # (b,)
        return obs, reward, terminated, torch.zeros_like(terminated), info

    def _check_action(self, action):
        if action is None:
            return None
        a = torch.as_tensor(np.asarray(action) if not isinstance(action, torch.Tensor) else action,
                            dtype=torch.float32, device=self.device)  # fmt: skip
        if a.shape[-1] != 7 or a.ndim > 2:
            raise ValueError(f"action must have shape (7,) or ({self.num_envs}, 7); got {tuple(a.shape)}")
        if not torch.isfinite(a).all():
            raise ValueError(f"action contains NaN or inf: {a.tolist()}")
        low = torch.as_tensor(ACTION_LOW, device=self.device)
        return torch.maximum(torch.minimum(a, -low), low)

    def _reposition(self):
        """Teleport the target object of envs whose spec repositions it right after this step's action (``step``
        calls this once per step): set down 1 cm above the table, or (``drop``) its model origin that high, then
        ``settle_s`` of physics (RL4VLA: 0.1305 m, 0.1 s)."""
        steps = self.elapsed_steps  # (b,)
        settle = 0.0
        for i, s in enumerate(self._specs):
            r = s.reposition if s is not None else None
            if r is None or int(steps[i]) != r.at_step:
                continue
            actor = self.objects[int(self._tgt_obj[i])]
            raw = actor.pose.raw_pose.clone()
            x, y = r.xy
            # our actor frame is the asset's bottom; a mesh asset's own origin sits mesh_offset above it
            origin = getattr(self.store.shape(s.objects[0]), "mesh_offset", (0.0, 0.0, 0.0))[2]
            z = 0.01 if r.drop is None else r.drop - origin
            raw[i, :3] = torch.tensor([x, y, z], device=self.device)
            raw[i, 3:] = torch.tensor(_yaw_quat(s.object_yaw[0]), device=self.device)
            actor.set_pose(Pose.create(raw))
            actor.set_linear_velocity(torch.zeros(self.num_envs, 3, device=self.device))
            actor.set_angular_velocity(torch.zeros(self.num_envs, 3, device=self.device))
            settle = max(settle, r.settle_s)
        if settle > 0:
            self._settle(settle)

    def _settle(self, seconds: float):
        """Run ``seconds`` of physics without a control step (all envs; drive targets stay where they are)."""
        if self.gpu_sim_enabled:
            self.scene._gpu_apply_all()
        for _ in range(round(seconds * self._vgb_sim_freq)):
            self.scene.step()
        if self.gpu_sim_enabled:
            self.scene._gpu_fetch_all()

    # ------------------------------------------------------------------ success, grasp, reward
    def _per_env(self, actors: list[Actor], idx: torch.Tensor, fn):
        """Evaluate ``fn(actor) -> (b, ...)`` for the actor each env selects by ``idx`` (b,)."""
        out = None
        for u in idx.unique().tolist():
            val = fn(actors[u])
            if out is None:
                out = torch.zeros_like(val)
            m = idx == u
            out[m] = val[m]
        return out

    def _centre(self, actors, local, idx):
        def centre(a):
            k = actors.index(a)
            c = local[k][0].to(self.device)
            return a.pose.p + _quat_apply(a.pose.q, c.expand(self.num_envs, 3))

        return self._per_env(actors, idx, centre)

    def _on(self, obj_idx, rec_idx, h_obj, h_rec):
        """(xy ok, z ok, contact ok) of object idx on receptacle idx, each (b,) bool."""
        po = self._centre(self.objects, self._obj_local, obj_idx)
        pr = self._centre(self.receptacles, self._rec_local, rec_idx)
        xy_ok = torch.linalg.norm(po[:, :2] - pr[:, :2], dim=1) <= h_rec.amax(1) + XY_TOL
        dz = po[:, 2] - pr[:, 2]
        z_ok = (dz > 0) & (dz - h_rec[:, 2] - h_obj[:, 2] <= Z_GAP_MAX)
        force = torch.zeros(self.num_envs, device=self.device)
        for u_o in obj_idx.unique().tolist():
            for u_r in rec_idx[obj_idx == u_o].unique().tolist():
                f = torch.linalg.norm(
                    self.scene.get_pairwise_contact_forces(self.objects[u_o], self.receptacles[u_r]), dim=1
                )
                m = (obj_idx == u_o) & (rec_idx == u_r)
                force[m] = f[m]
        return xy_ok, z_ok, force > CONTACT_MIN_N, torch.linalg.norm(po[:, :2] - pr[:, :2], dim=1)

    def _read_scene(self) -> dict[str, torch.Tensor]:
        """What success and the failure label need of the scene as it is now, each (b,) bool. Reads only."""
        xy_ok, z_ok, contact, xy_dist = self._on(self._tgt_obj, self._tgt_rec, self._h_obj, self._h_rec)
        grasped = self._per_env(
            self.objects, self._tgt_obj, lambda a: self.agent.is_grasping(a, min_force=GRASP_MIN_N)
        )
        wrong = torch.zeros_like(grasped)  # another object of the episode is grasped
        on_wrong = torch.zeros_like(grasped)  # the target object lies on another receptacle of the episode
        for i, s in enumerate(self._specs):
            if s is None:
                continue
            for oid in s.objects[1:]:
                wrong[i] |= self.agent.is_grasping(
                    self.objects[self.object_ids.index(oid)], min_force=GRASP_MIN_N
                )[i]
            for j, rid in enumerate(s.receptacles[1:], start=1):
                ridx = torch.full_like(self._tgt_rec, self.receptacle_ids.index(rid))
                h_rec = _yawed_half(
                    self._rec_local[int(ridx[i])][1], s.receptacle_yaw[j] if s.receptacle_yaw else 0.0
                )
                a, b_, c, _ = self._on(
                    self._tgt_obj, ridx, self._h_obj, h_rec.to(self.device).expand(self.num_envs, 3)
                )
                on_wrong[i] |= (a & b_ & c)[i]
        near = xy_dist <= self._h_rec.amax(1) + NEAR_RECEPTACLE  # released close enough to count as misplaced
        return dict(success=xy_ok & z_ok & contact, is_grasped=grasped, wrong_grasped=wrong,
                    on_wrong_receptacle=on_wrong, near_receptacle=near)  # fmt: skip

    def _update_episode_stats(self):
        """The one place the episode statistics change: once per control step, from ``step`` after the physics and
        the reposition, before ``evaluate`` and the reward read them. Reads the scene (kept for ``evaluate``), then
        advances ever grasped, the grasp streak and sustained grasp, success once, wrong object grasped and the
        potential phi (keeping the previous step's for the reward)."""
        r = self._readings = self._read_scene()
        grasped = r["is_grasped"]  # (b,) bool
        self._ever_grasped |= grasped
        self._streak = torch.where(grasped, self._streak + 1, torch.zeros_like(self._streak))  # (b,) int32
        self._consec_ok |= self._streak >= SUSTAINED_GRASP_STEPS
        self._success_once |= r["success"]
        self._wrong_grasp |= r["wrong_grasped"]
        # RL4VLA's stages: 0.1 for a grasp, 0.1 for holding it SUSTAINED_GRASP_STEPS steps, 1.0 for placing after one
        self._phi_prev = self._phi
        self._phi = (
            0.1 * self._ever_grasped.float()
            + 0.1 * self._consec_ok.float()
            + 1.0 * (r["success"] & self._ever_grasped).float()
        )  # (b,) float32

    def evaluate(self):
        """The info of the current state (ManiSkill calls this in ``reset`` and in every ``step``). Reads only: this
        step's scene readings and the episode statistics; after a reset, before any step, it reads the scene."""
        if not hasattr(self, "_specs"):  # no episode yet
            return dict(success=torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))
        r = self._readings if self._readings is not None else self._read_scene()
        success, grasped, ever = r["success"], r["is_grasped"], self._ever_grasped  # (b,) bool each
        label = torch.full_like(self._streak, FAILURE_LABELS.index("dropped"), dtype=torch.long)  # (b,)
        label[~ever] = FAILURE_LABELS.index("never_grasped")
        label[~ever & self._wrong_grasp] = FAILURE_LABELS.index("wrong_object")
        released_near = ever & ~grasped & (r["on_wrong_receptacle"] | r["near_receptacle"])
        label[released_near] = FAILURE_LABELS.index("misplaced")
        label[ever & grasped] = FAILURE_LABELS.index("timeout")
        label[success] = FAILURE_LABELS.index("success")
        return dict(
            success=success.clone(), success_once=self._success_once.clone(), is_grasped=grasped.clone(),
            ever_grasped=ever.clone(), consecutive_grasp=self._consec_ok.clone(),
            wrong_object_grasped=self._wrong_grasp.clone(), on_wrong_receptacle=r["on_wrong_receptacle"].clone(),
            failure=label, potential=self._phi.clone(),
        )  # fmt: skip

    def compute_dense_reward(self, obs, action, info):
        """RL4VLA's sparse potential-based reward r_t = phi_t - phi_(t-1), phi = 0.1 grasped + 0.1 sustained grasp
        + 1.0 placed after a grasp (``info["potential"]``; phi_(t-1) kept by ``_update_episode_stats``). Reads only."""
        return info["potential"] - self._phi_prev  # (b,)

    def compute_normalized_dense_reward(self, obs, action, info):
        return self.compute_dense_reward(obs, action, info) / 1.2

    # ------------------------------------------------------------------ observations
    def _get_obs_sensor_data(self, apply_texture_transforms: bool = True) -> dict:
        data = super()._get_obs_sensor_data(apply_texture_transforms)
        cam = data.get(POLICY_CAMERA)
        if cam is None or "rgb" not in cam or "segmentation" not in cam:
            return data
        # with CPU physics on a machine with a GPU, SAPIEN renders on the GPU: compose on the env's device
        rgb, seg = cam["rgb"].to(self.device), cam["segmentation"].to(self.device)
        bg = torch.stack(
            [self.table_image(s.table) if s else torch.zeros_like(rgb[0]) for s in self._specs_or_none()]
        )
        img, fg = C.compose(rgb, seg, self._fg_ids, bg)
        img = self._apply_overlays(img, fg)
        cam["rgb"] = img
        return data

    def _specs_or_none(self):
        return getattr(self, "_specs", [None] * self.num_envs)

    def overlay_image(self, texture_id: str) -> torch.Tensor:
        if texture_id not in self._overlay_images:
            self._overlay_images[texture_id] = torch.from_numpy(np.array(self.store.image(texture_id))).to(
                self.device
            )
        return self._overlay_images[texture_id]

    def _apply_overlays(self, img, fg):
        specs = self._specs_or_none()
        for kind, fn in (("texture", C.dynamic_texture), ("noise", C.dynamic_noise)):
            use = [s is not None and s.overlay is not None and s.overlay.kind == kind for s in specs]
            if not any(use):
                continue
            first = next(s.overlay.texture for s, u in zip(specs, use, strict=False) if u)
            tex = torch.stack(
                [
                    self.overlay_image(s.overlay.texture if u else first)
                    for s, u in zip(specs, use, strict=False)
                ]
            )
            alpha = torch.tensor([s.overlay.alpha if u else 0.0 for s, u in zip(specs, use, strict=False)])
            img = fn(img, fg, tex, alpha)
        return img

    def _get_obs_extra(self, info: dict):
        return dict(tcp_pose=self.agent.tcp.pose.raw_pose)

    # ------------------------------------------------------------------ helpers for policies and the runner
    @property
    def instructions(self) -> list[str]:
        return [s.instruction if s else "" for s in self._specs_or_none()]

    @property
    def episode_specs(self) -> list[EpisodeSpec | None]:
        return list(self._specs_or_none())

    def proprio(self) -> np.ndarray:
        """(b, 16) float32: arm+gripper qpos (9) and TCP pose in the base frame (7: xyz, wxyz)."""
        tcp = self.agent.robot.pose.inv() * self.agent.tcp.pose
        return torch.cat([self.agent.robot.get_qpos(), tcp.raw_pose], 1).cpu().numpy().astype(np.float32)

    def privileged(self) -> list[dict[str, np.ndarray]]:
        """True state for oracles, per env, in the robot-base frame (poses as xyz + wxyz)."""
        base_inv = self.agent.robot.pose.inv()
        tcp = (base_inv * self.agent.tcp.pose).raw_pose.cpu().numpy()
        target = self.agent.controller.controllers["arm"]._target_pose.raw_pose.cpu().numpy()
        out = []
        for i, s in enumerate(self._specs_or_none()):
            if s is None:
                out.append({})
                continue
            oa = self.objects[self.object_ids.index(s.objects[0])]
            ra = self.receptacles[self.receptacle_ids.index(s.receptacles[0])]
            shape = self.store.shape(s.objects[0])
            obj_pose = (base_inv * oa.pose).raw_pose[i].cpu().numpy()
            out.append(dict(
                tcp_pose=tcp[i], ee_target_pose=target[i],
                object_pose=obj_pose,
                receptacle_pose=(base_inv * ra.pose).raw_pose[i].cpu().numpy(),
                object_grasp=np.asarray(shape.grasp_pose, dtype=np.float32),
                object_height=np.float32(shape.bounds[1][2]),
                object_grasp_z=np.float32(_grasp_height(shape)),
                fingertip_depth=np.float32(self.robot_spec.fingertip_depth),
                receptacle_height=np.float32(self.store.shape(s.receptacles[0]).bounds[1][2]),
                is_grasped=np.bool_(self.agent.is_grasping(oa, min_force=GRASP_MIN_N)[i].item()),
                **_posed_grasp(shape, obj_pose),
            ))  # fmt: skip
        return out


def _posed_grasp(shape, obj_pose: np.ndarray) -> dict[str, np.ndarray]:
    """Mesh assets: ``grasp_point`` (x, y, z of the pinch point and the closing yaw, robot-base frame) for the object as
    it lies now (planned again when it has tipped over), and ``object_bottom_z`` (its lowest point); nothing for
    procedural shapes (their frame's z = 0 is their bottom and they do not tip)."""
    g = grasp_in_pose(shape, obj_pose[3:])
    if g is None:
        return {}
    x, y, z = (float(v) for v in obj_pose[:3])
    return dict(
        grasp_point=np.array([x + g.x, y + g.y, z + g.z, g.yaw], dtype=np.float32),
        object_bottom_z=np.float32(z + g.bottom),
    )


def _grasp_height(shape) -> float:
    """Planned pinch height above the asset's bottom (mesh assets), NaN where none is planned (procedural shapes)."""
    z = getattr(shape, "grasp_height", None)
    return float("nan") if z is None else float(z)


# ---------------------------------------------------------------------- small math helpers
def _yaw_quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _quat_apply(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (b, 3) by quaternions q (b, 4) wxyz."""
    w, xyz = q[:, :1], q[:, 1:]
    t = 2 * torch.cross(xyz, v, dim=1)
    return v + w * t + torch.cross(xyz, t, dim=1)


def _lowest_point(shape) -> float:
    """Lowest z of a mesh asset's collision pieces in its actor frame (scaled, shifted); 0 for procedural shapes."""
    from vla_gen_bench.assets.rl4vla import lowest_point

    return lowest_point(shape) if hasattr(shape, "collision_file") else 0.0


def _rotated_half(half: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Axis-aligned half extents (3,) of a box with half extents ``half`` (3,) rotated by quaternion ``q`` (4,) wxyz:
    its 8 corners rotated, as RL4VLA sizes the settled bbox."""
    from mani_skill.utils.geometry.rotation_conversions import quaternion_to_matrix

    return quaternion_to_matrix(q[None].float())[0].abs() @ half.float()


def _yawed_half(half: torch.Tensor, yaw: float) -> torch.Tensor:
    """Axis-aligned half extents (3,) of a box with these half extents rotated by yaw about z."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    return torch.stack([c * half[0] + s * half[1], s * half[0] + c * half[1], half[2]])
