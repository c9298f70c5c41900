"""``VgbPush-v1``: push {object} onto {region}, the non-prehensile family (``vla_gen_bench.families``, ``push``).

The put_on task's machinery is reused as it is (table image composition, cameras, robots, overlays, the mid-episode
reposition, the per-step statistics update): :class:`PushEnv` subclasses
:class:`~vla_gen_bench.envs.put_on_receptacle.PutOnReceptacleEnv` and replaces the scene's targets (flat regions
without collision), success, the failure labels, the reward and the oracle's privileged state.
"""

from __future__ import annotations

import numpy as np
import sapien
import torch
from mani_skill.utils.registration import register_env

from vla_gen_bench.assets.family_store import family_store
from vla_gen_bench.assets.push import footprint, region_polygon, rotate_xy, signed_inside
from vla_gen_bench.assets.store import default_store
from vla_gen_bench.envs.actors import build_asset_actor, convex_mesh_file
from vla_gen_bench.envs.put_on_receptacle import GRASP_MIN_N, MAX_EPISODE_STEPS, PutOnReceptacleEnv
from vla_gen_bench.families import get_family

ENV_ID = "VgbPush-v1"
FAMILY = "push"
INSIDE_TOL = 0.005  # m: a footprint point may lie this far outside the region's outline
REST_SPEED = 0.02  # m/s: the object is resting below this speed
ON_TABLE_Z = 0.01  # m: the object's bottom is at most this high (pushed, not carried)
TOUCH_MIN_N = 0.05  # N robot-object contact that counts as a touch
BEHIND_M = 0.05  # m behind the object's centre (away from the region) where the dense reward wants the TCP
LABELS = get_family(FAMILY).failure_labels


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class PushEnv(PutOnReceptacleEnv):
    """
    **Task Description:**
    A Panda arm must push the named object onto the named target region ("push the {object} onto the {region}").
    The object is a flat-bottomed box, puck or prism that slides; the region is a thin coloured patch drawn flush
    with the table (no collision, nothing to climb). The scene holds 1-2 objects (the target first) and 1-2
    regions. Control, horizon, cameras, robots and image composition are the put_on task's
    (:class:`~vla_gen_bench.envs.put_on_receptacle.PutOnReceptacleEnv`): 5 Hz, 80 steps, 7-D end-effector delta.

    **Randomizations:**
    None of its own: an episode is an :class:`~vla_gen_bench.episode.EpisodeSpec` from the push variants' manifests
    (``variant="push_ind"`` by default). The control arm: a train push object and a train region, a train table,
    object and region on two cells of the 6x6 training grid 10-20 cm apart, yaw in {0, pi/4, pi/2, 3pi/4}.

    **Success Conditions:**
    Every point of the object's footprint outline lies inside the region's outline (within 5 mm), the object's
    bottom is at most 1 cm above the table and it moves slower than 2 cm/s (resting). Read at the final step;
    ``success_once`` too. Failure labels (:data:`vla_gen_bench.families.PUSH_LABELS`): ``never_touched`` (the
    robot never touched the target), ``wrong_object`` (it touched a distractor object), ``overshot`` (the target
    was inside the region at some step, or has passed its far edge, and is not in it now), ``timeout`` (touched,
    not in the region). Dense reward: TCP towards a point 5 cm behind the object (away from the region), object
    towards the region's centre, plus a success bonus.
    """

    def __init__(self, *args, asset_store=None, variant=None, **kwargs):
        self.family = get_family(FAMILY)
        store = family_store(self.family, asset_store or default_store())
        if variant is None or isinstance(variant, str):
            from vla_gen_bench.variants import get_variant

            variant = get_variant(variant or self.family.control)
        if variant.family != FAMILY:
            raise ValueError(f"variant {variant.name!r} is of the {variant.family} family, not {FAMILY}; pick a "
                             f"push_* variant (see 'vgb list')")  # fmt: skip
        if kwargs.get("rules", "vgb") != "vgb":
            raise ValueError(
                "the push family has the vgb rules only; the rl4vla rules are the paper's family"
            )
        self.failure_labels = LABELS
        super().__init__(*args, asset_store=store, variant=variant, **kwargs)

    # ------------------------------------------------------------------ scene
    def _load_scene(self, options: dict):
        self._build_table_and_parking()
        # the objects slide on the table and the fingers; a lower friction than put_on's grasps need
        friction = sapien.physx.PhysxMaterial(static_friction=0.5, dynamic_friction=0.4, restitution=0.0)
        self.objects = [build_asset_actor(self.scene, i, self.store.shape(i), friction,
                                          sapien.Pose(self._park_pose(k))) for k, i in enumerate(self.object_ids)]  # fmt: skip
        off = len(self.object_ids)
        self.receptacles = [self._build_region(i, sapien.Pose(self._park_pose(off + k)))
                            for k, i in enumerate(self.receptacle_ids)]  # fmt: skip
        self._obj_local = [self._bbox(i) for i in self.object_ids]
        self._rec_local = [self._bbox(i) for i in self.receptacle_ids]
        self._footprints = {i: footprint(self.store.shape(i)) for i in self.object_ids}  # (k, 2) each
        self._polygons = {i: np.asarray(region_polygon(self.store.shape(i).params["shape"]))
                          for i in self.receptacle_ids}  # fmt: skip
        self._robot_links = [lk for lk in self.agent.robot.links if "finger" in lk.name or "hand" in lk.name]

    def _build_region(self, asset_id: str, pose: sapien.Pose):
        """A region: visual only, kinematic (it never moves unless placed, nothing collides with it)."""
        b = self.scene.create_actor_builder()
        for p in self.store.shape(asset_id).parts:
            mat = sapien.render.RenderMaterial(base_color=[*p.color, 1.0], roughness=0.8, specular=0.1)
            b.add_visual_from_file(
                convex_mesh_file(p.vertices), sapien.Pose(list(p.pos), list(p.quat)), material=mat
            )
        b.initial_pose = pose
        return b.build_kinematic(name=asset_id)

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        b = self.num_envs
        if not hasattr(self, "_touched"):
            z = lambda: torch.zeros(b, dtype=torch.bool, device=self.device)  # noqa: E731
            self._touched, self._wrong_touch, self._inside_once, self._passed = z(), z(), z(), z()
        super()._initialize_episode(env_idx, options)
        for arr in (self._touched, self._wrong_touch, self._inside_once, self._passed):
            arr[env_idx] = False

    # ------------------------------------------------------------------ success and labels
    def _pose_np(self, actor, i: int) -> np.ndarray:
        return actor.pose.raw_pose[i].detach().cpu().numpy().astype(np.float64)

    def _inside(self, i: int, spec) -> tuple[bool, float, float]:
        """(footprint inside the target region, object centre's distance to the region centre, how far the
        object's centre has passed the region's far edge along the start -> region direction (< 0: not yet))."""
        obj = self._pose_np(self.objects[self.object_ids.index(spec.objects[0])], i)
        reg = self._pose_np(self.receptacles[self.receptacle_ids.index(spec.receptacles[0])], i)
        pts = rotate_xy(self._footprints[spec.objects[0]], obj[3:]) + obj[:2]  # (k, 2)
        poly = rotate_xy(self._polygons[spec.receptacles[0]], reg[3:]) + reg[:2]  # (n, 2) counter-clockwise
        inside = bool(signed_inside(pts, poly).min() >= -INSIDE_TOL)
        start = np.asarray(spec.object_xy[0] if spec.reposition is None else spec.reposition.xy)
        u = reg[:2] - start
        u = u / max(np.linalg.norm(u), 1e-9)
        far = float(np.max(poly @ u - reg[:2] @ u))
        passed = float((obj[:2] - reg[:2]) @ u - far)
        return inside, float(np.linalg.norm(obj[:2] - reg[:2])), passed

    def _read_scene(self) -> dict[str, torch.Tensor]:
        b = self.num_envs
        z = lambda: torch.zeros(b, dtype=torch.bool, device=self.device)  # noqa: E731
        success, inside, touched, wrong, grasped, passed = z(), z(), z(), z(), z(), z()
        dist = torch.zeros(b, device=self.device)
        for i, s in enumerate(self._specs):
            if s is None:
                continue
            oa = self.objects[self.object_ids.index(s.objects[0])]
            ins, d, past = self._inside(i, s)
            resting = float(torch.linalg.norm(oa.linear_velocity[i])) < REST_SPEED
            low = float(oa.pose.p[i, 2]) <= ON_TABLE_Z
            inside[i], dist[i], passed[i] = ins, d, past > 0
            success[i] = ins and resting and low
            touched[i] = self._touching(oa)[i]
            for oid in s.objects[1:]:
                wrong[i] |= self._touching(self.objects[self.object_ids.index(oid)])[i]
            grasped[i] = self.agent.is_grasping(oa, min_force=GRASP_MIN_N)[i]
        return dict(success=success, inside=inside, touched=touched, wrong_touched=wrong, is_grasped=grasped,
                    passed=passed, distance=dist)  # fmt: skip

    def _touching(self, actor) -> torch.Tensor:
        """(b,) bool: a finger or the hand pushes on ``actor``."""
        f = torch.zeros(self.num_envs, device=self.device)
        for link in self._robot_links:
            f = f + torch.linalg.norm(self.scene.get_pairwise_contact_forces(link, actor), dim=1)
        return f > TOUCH_MIN_N

    def _update_episode_stats(self):
        """Once per control step (``step``): read the scene, then advance touched, touched a distractor, inside once,
        passed the region, success once and ever grasped."""
        r = self._readings = self._read_scene()
        self._touched |= r["touched"]
        self._wrong_touch |= r["wrong_touched"]
        self._inside_once |= r["inside"]
        self._passed |= r["passed"]
        self._success_once |= r["success"]
        self._ever_grasped |= r["is_grasped"]

    def evaluate(self):
        if not hasattr(self, "_specs"):
            return dict(success=torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))
        r = self._readings if self._readings is not None else self._read_scene()
        success = r["success"]
        label = torch.full((self.num_envs,), LABELS.index("timeout"), dtype=torch.long, device=self.device)
        label[~self._touched] = LABELS.index("never_touched")
        label[self._wrong_touch] = LABELS.index("wrong_object")
        label[(self._inside_once | self._passed) & ~r["inside"]] = LABELS.index("overshot")
        label[success] = LABELS.index("success")
        return dict(
            success=success.clone(), success_once=self._success_once.clone(), is_grasped=r["is_grasped"].clone(),
            ever_grasped=self._ever_grasped.clone(), consecutive_grasp=torch.zeros_like(success),
            touched=self._touched.clone(), wrong_object_touched=self._wrong_touch.clone(),
            inside=r["inside"].clone(), failure=label, distance=r["distance"].clone(),
        )  # fmt: skip

    def compute_dense_reward(self, obs, action, info):
        """TCP towards the point :data:`BEHIND_M` behind the object (away from the region), object towards the
        region's centre, 3 for success: in [0, 5]."""
        tcp = self.agent.tcp.pose.p  # (b, 3)
        reach = torch.zeros(self.num_envs, device=self.device)
        for i, s in enumerate(self._specs_or_none()):
            if s is None:
                continue
            obj = self.objects[self.object_ids.index(s.objects[0])].pose.p[i]
            reg = self.receptacles[self.receptacle_ids.index(s.receptacles[0])].pose.p[i]
            u = reg[:2] - obj[:2]
            u = u / torch.clamp(torch.linalg.norm(u), min=1e-6)
            behind = obj[:2] - BEHIND_M * u
            reach[i] = torch.linalg.norm(tcp[i, :2] - behind) + torch.abs(tcp[i, 2] - 0.02)
        return (
            (1 - torch.tanh(5 * reach)) + (1 - torch.tanh(5 * info["distance"])) + 3 * info["success"].float()
        )

    def compute_normalized_dense_reward(self, obs, action, info):
        return self.compute_dense_reward(obs, action, info) / 5.0

    # ------------------------------------------------------------------ oracle
    def privileged(self) -> list[dict[str, np.ndarray]]:
        """True state for the push oracle, per env, in the robot-base frame: ``family`` ("push"), TCP and its
        target, object and region poses, the object's footprint radius and height, the region's inner radius,
        whether the footprint is inside now."""
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
            poly = self._polygons[s.receptacles[0]]
            inradius = float(signed_inside(np.zeros((1, 2)), poly).min())
            inside, _, _ = self._inside(i, s)
            out.append(dict(
                family=FAMILY, tcp_pose=tcp[i], ee_target_pose=target[i],
                object_pose=(base_inv * oa.pose).raw_pose[i].cpu().numpy(),
                receptacle_pose=(base_inv * ra.pose).raw_pose[i].cpu().numpy(),
                object_radius=np.float32(np.linalg.norm(self._footprints[s.objects[0]], axis=1).max()),
                object_height=np.float32(self.store.shape(s.objects[0]).bounds[1][2]),
                region_inradius=np.float32(inradius), inside=np.bool_(inside),
                fingertip_depth=np.float32(self.robot_spec.fingertip_depth),
            ))  # fmt: skip
        return out
