"""``VgbStack-v1``: stack {object} on {base}, the precise-placement family (``vla_gen_bench.families``, ``stack``).

The put_on task's machinery is reused as it is (table and parking shelf, actors, table image composition, cameras,
robots, overlays, the mid-episode reposition, the per-step statistics update in ``step``): :class:`StackEnv`
subclasses :class:`~vla_gen_bench.envs.put_on_receptacle.PutOnReceptacleEnv` and replaces success (on the base's
top face and stable for :data:`STABLE_STEPS` steps), the outcome labels, the reward and the oracle's privileged
state.
"""

from __future__ import annotations

import numpy as np
import torch
from mani_skill.utils.registration import register_env

from vla_gen_bench.assets.family_store import family_store
from vla_gen_bench.assets.push import rotate_xy, signed_inside
from vla_gen_bench.assets.stack import CENTRE_MARGIN, top_polygon
from vla_gen_bench.assets.store import default_store
from vla_gen_bench.envs.put_on_receptacle import GRASP_MIN_N, MAX_EPISODE_STEPS, PutOnReceptacleEnv
from vla_gen_bench.families import get_family

ENV_ID = "VgbStack-v1"
FAMILY = "stack"
STABLE_STEPS = 10  # control steps (2 s at 5 Hz) the piece must stay on top, released, for success
Z_ABOVE_TOL = 0.01  # m: the piece's bottom at most this far above the base's top ...
Z_BELOW_TOL = 0.005  # ... and at most this far below it (contact penetration, a base slightly tilted)
UPRIGHT_COS = 0.95  # the piece's and the base's z axes at most ~18 degrees from vertical
REST_SPEED = 0.02  # m/s: the piece is resting below this speed
NEAR_BASE = (
    0.05  # m beyond the base's outline: a release this close counts as "misplaced", farther as "dropped"
)
LABELS = get_family(FAMILY).failure_labels


def _up_z(q: np.ndarray) -> float:
    """z component of the z axis of a frame with wxyz quaternion ``q`` (1: upright)."""
    return float(1 - 2 * (q[1] ** 2 + q[2] ** 2))


@register_env(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)
class StackEnv(PutOnReceptacleEnv):
    """
    **Task Description:**
    A Panda arm must stack the named piece on the named base block ("stack the {object} on the {receptacle}").
    The piece is a cube, cuboid, short cylinder, prism, bar or block of 3.6-5.6 cm; the base a heavier block with a flat top
    6.4-8.4 cm across and 3-5 cm tall (:mod:`vla_gen_bench.assets.stack`). The scene holds 1-2 pieces (the target
    first) and 1-2 bases. Control, horizon, cameras, robots and image composition are the put_on task's
    (:class:`~vla_gen_bench.envs.put_on_receptacle.PutOnReceptacleEnv`): 5 Hz, 80 steps, 7-D end-effector delta.

    **Randomizations:**
    None of its own: an episode is an :class:`~vla_gen_bench.episode.EpisodeSpec` from the stack variants'
    manifests (``variant="stack_ind"`` by default). The control arm: a train piece and a train base, a train
    table, piece and base on two cells of the 6x6 training grid 12-22 cm apart, yaw in {0, pi/4, pi/2, 3pi/4}.

    **Success Conditions:**
    The piece is *on top* when its bottom is between 5 mm below and 1 cm above the base's top face, its centre lies
    at least 1 cm inside the top face's outline, piece and base stand upright, the piece is not grasped and moves
    slower than 2 cm/s. Success: on top for the last :data:`STABLE_STEPS` consecutive control steps (counted once
    per step in ``step``; ``evaluate`` only reads the count). Read at the final step; ``success_once`` too. Failure
    labels (:data:`vla_gen_bench.families.STACK_LABELS`): ``never_grasped``, ``wrong_object`` (a distractor was
    grasped, the piece never), ``dropped`` (released away from the base), ``misplaced`` (released within 5 cm of
    the base, not on top), ``toppled`` (on top at some step, not now), ``timeout`` (held at the end, or on top for
    fewer than :data:`STABLE_STEPS` steps). Dense reward: TCP towards the piece (full once grasped or on top),
    piece's bottom towards the base's top centre, plus a success bonus: in [0, 5].
    """

    def __init__(self, *args, asset_store=None, variant=None, **kwargs):
        self.family = get_family(FAMILY)
        store = family_store(self.family, asset_store or default_store())
        if variant is None or isinstance(variant, str):
            from vla_gen_bench.variants import get_variant

            variant = get_variant(variant or self.family.control)
        if variant.family != FAMILY:
            raise ValueError(f"variant {variant.name!r} is of the {variant.family} family, not {FAMILY}; pick a "
                             f"stack_* variant (see 'vgb list')")  # fmt: skip
        if kwargs.get("rules", "vgb") != "vgb":
            raise ValueError(
                "the stack family has the vgb rules only; the rl4vla rules are the paper's family"
            )
        self.failure_labels = LABELS
        super().__init__(*args, asset_store=store, variant=variant, **kwargs)

    # ------------------------------------------------------------------ scene
    def _load_scene(self, options: dict):
        super()._load_scene(
            options
        )  # table and parking (_build_table_and_parking), one actor per piece and base
        self._tops = {i: np.asarray(top_polygon(self.store.shape(i).params["shape"]))
                      for i in self.receptacle_ids}  # fmt: skip  # (n, 2) counter-clockwise, base frame
        self._base_h = {i: float(self.store.shape(i).bounds[1][2]) for i in self.receptacle_ids}
        self._obj_h = {i: float(self.store.shape(i).bounds[1][2]) for i in self.object_ids}

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        b = self.num_envs
        if not hasattr(self, "_on_streak"):
            self._on_streak = torch.zeros(
                b, dtype=torch.int32, device=self.device
            )  # (b,) steps on top in a row
            self._on_once = torch.zeros(b, dtype=torch.bool, device=self.device)  # (b,) on top at some step
        super()._initialize_episode(env_idx, options)
        self._on_streak[env_idx] = 0
        self._on_once[env_idx] = False

    # ------------------------------------------------------------------ success and labels
    def _pose_np(self, actor, i: int) -> np.ndarray:
        return actor.pose.raw_pose[i].detach().cpu().numpy().astype(np.float64)

    def _placement(self, i: int, spec) -> tuple[bool, float, float, float]:
        """(geometrically on the top face: height, centre and both upright; the piece's centre's distance inside the
        top outline (< 0: outside); its bottom's height above the base's top; xy distance between the centres)."""
        obj = self._pose_np(self.objects[self.object_ids.index(spec.objects[0])], i)
        base = self._pose_np(self.receptacles[self.receptacle_ids.index(spec.receptacles[0])], i)
        q_inv = base[3:] * np.array([1.0, -1.0, -1.0, -1.0])
        rel = rotate_xy((obj[:2] - base[:2])[None], q_inv)  # (1, 2) the piece's centre in the base's frame
        inside = float(signed_inside(rel, self._tops[spec.receptacles[0]])[0])
        dz = float(obj[2] - (base[2] + self._base_h[spec.receptacles[0]]))
        upright = _up_z(obj[3:]) >= UPRIGHT_COS and _up_z(base[3:]) >= UPRIGHT_COS
        ok = upright and inside >= CENTRE_MARGIN and -Z_BELOW_TOL <= dz <= Z_ABOVE_TOL
        return ok, inside, dz, float(np.linalg.norm(obj[:2] - base[:2]))

    def _read_scene(self) -> dict[str, torch.Tensor]:
        """Each (b,): on top now (placed, released, resting), grasped, a distractor grasped, near the base, the
        distance between the piece's bottom and the base's top centre. Reads only."""
        b = self.num_envs
        z = lambda: torch.zeros(b, dtype=torch.bool, device=self.device)  # noqa: E731
        on_top, grasped, wrong, near = z(), z(), z(), z()
        dist = torch.zeros(b, device=self.device)
        for i, s in enumerate(self._specs):
            if s is None:
                continue
            oa = self.objects[self.object_ids.index(s.objects[0])]
            placed, inside, dz, d_xy = self._placement(i, s)
            grasped[i] = self.agent.is_grasping(oa, min_force=GRASP_MIN_N)[i]
            resting = float(torch.linalg.norm(oa.linear_velocity[i])) < REST_SPEED
            on_top[i] = placed and resting and not bool(grasped[i])
            near[i] = inside >= -NEAR_BASE
            dist[i] = float(np.hypot(d_xy, dz))
            for oid in s.objects[1:]:
                wrong[i] |= self.agent.is_grasping(
                    self.objects[self.object_ids.index(oid)], min_force=GRASP_MIN_N
                )[i]
        return dict(on_top=on_top, is_grasped=grasped, wrong_grasped=wrong, near_base=near, distance=dist)

    def _update_episode_stats(self):
        """Once per control step (``step``): read the scene, then advance the on-top streak (success: at least
        :data:`STABLE_STEPS`), on top once, success once, ever grasped and a distractor grasped."""
        r = self._readings = self._read_scene()
        self._on_streak = torch.where(r["on_top"], self._on_streak + 1, torch.zeros_like(self._on_streak))
        self._on_once |= r["on_top"]
        self._success_once |= self._on_streak >= STABLE_STEPS
        self._ever_grasped |= r["is_grasped"]
        self._wrong_grasp |= r["wrong_grasped"]

    def evaluate(self):
        if not hasattr(self, "_specs"):
            return dict(success=torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))
        r = self._readings if self._readings is not None else self._read_scene()
        success = self._on_streak >= STABLE_STEPS  # (b,) bool
        on_top, grasped, ever = r["on_top"], r["is_grasped"], self._ever_grasped
        label = torch.full((self.num_envs,), LABELS.index("dropped"), dtype=torch.long, device=self.device)
        label[~ever] = LABELS.index("never_grasped")
        label[~ever & self._wrong_grasp] = LABELS.index("wrong_object")
        label[ever & ~grasped & r["near_base"] & ~on_top] = LABELS.index("misplaced")
        label[self._on_once & ~on_top] = LABELS.index("toppled")
        label[(ever & grasped) | (on_top & ~success)] = LABELS.index("timeout")
        label[success] = LABELS.index("success")
        return dict(
            success=success.clone(), success_once=self._success_once.clone(), is_grasped=grasped.clone(),
            ever_grasped=ever.clone(), consecutive_grasp=torch.zeros_like(success),
            wrong_object_grasped=self._wrong_grasp.clone(), on_top=on_top.clone(),
            stable_steps=self._on_streak.clone(), failure=label, distance=r["distance"].clone(),
        )  # fmt: skip

    def compute_dense_reward(self, obs, action, info):
        """TCP towards the piece's centre (1 once it is grasped or on top), the piece's bottom towards the base's
        top centre, 3 for success: in [0, 5]."""
        tcp = self.agent.tcp.pose.p  # (b, 3)
        reach = torch.zeros(self.num_envs, device=self.device)
        for i, s in enumerate(self._specs_or_none()):
            if s is None:
                continue
            obj = self.objects[self.object_ids.index(s.objects[0])].pose.p[i]
            centre = obj + torch.tensor([0.0, 0.0, self._obj_h[s.objects[0]] / 2], device=self.device)
            reach[i] = torch.linalg.norm(tcp[i] - centre)
        reach_term = torch.where(
            info["is_grasped"] | info["on_top"], torch.ones_like(reach), 1 - torch.tanh(5 * reach)
        )
        return reach_term + (1 - torch.tanh(5 * info["distance"])) + 3 * info["success"].float()

    def compute_normalized_dense_reward(self, obs, action, info):
        return self.compute_dense_reward(obs, action, info) / 5.0

    # ------------------------------------------------------------------ oracle
    def privileged(self) -> list[dict[str, np.ndarray]]:
        """The put_on oracle's true state (robot-base frame; ``receptacle_height``: the base's top above its bottom)
        plus ``family`` ("stack"), ``on_top`` and ``stable_steps``."""
        out = super().privileged()
        for i, p in enumerate(out):
            if p:
                p.update(family=FAMILY, on_top=np.bool_(bool(self._on_streak[i] > 0)),
                         stable_steps=np.int32(int(self._on_streak[i])))  # fmt: skip
        return out
