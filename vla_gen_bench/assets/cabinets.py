"""Procedural cabinets and drawer handles for the drawer family (``VgbDrawer-v1``): pure data.

A cabinet is a carcass (top, bottom, sides and back plates around a front opening) with one drawer on a prismatic
joint; a handle is a few primitive parts screwed to the drawer front. Both are deterministic data with ids
(``cab_*``, ``handle_*``) and a train / unseen split, like the procedural object pool; nothing is downloaded.

The simulator's articulation is built from these parts by :func:`vla_gen_bench.envs.drawer.build_cabinet`.

Frames. The cabinet frame has its origin at the centre of the carcass's bottom face, z up, and the drawer front
facing -x (the drawer slides out along -x). A handle frame sits on the outer face of the drawer front, at the
handle's mount height: x out of the front (the pull axis), y along the front's width, z up. Every handle is gripped
the same way: fingers pointing down, closing along the handle frame's y (across the pull axis) at ``grip``, so the
hand stands parallel to the front. Handles are mounted high enough that the hand clears the carcass top
(:data:`HAND_CLEARANCE`).

Pools:
  cabinets  4 train + 3 unseen (unseen sizes and colours)
  handles   3 train (round knob, vertical bar, pull tab) + 3 unseen (T-bar, ring, square knob)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla_gen_bench.assets.procedural import COLORS, Part

WALL = 0.012  # carcass plate thickness (m)
FRONT_T = 0.015  # drawer front thickness
GAP = 0.002  # clearance between the drawer and the carcass on every side
# the Panda hand's lowest point is ~3.7 cm above the TCP: a grip is at most this far below the cabinet's top
HAND_CLEARANCE = 0.032
JOINT_FRICTION = 0.5  # N: the drawer stays where it is left
JOINT_DAMPING = 5.0  # N s/m
CARCASS_DENSITY = 500.0
DRAWER_DENSITY = 300.0
_X_TO_Z = (0.7071068, 0.0, 0.7071068, 0.0)  # a part cylinder (axis z) lying along x


@dataclass(frozen=True)
class CabinetSpec:
    """A cabinet: outer size, drawer travel and colours. ``name`` is what an instruction says."""

    id: str
    name: str
    split: str  # "train" | "unseen"
    depth: float  # outer size along the pull axis (m)
    width: float
    height: float
    travel: float  # joint upper limit: how far the drawer slides out (m)
    carcass_color: tuple[float, float, float]
    front_color: tuple[float, float, float]

    @property
    def mount_z(self) -> float:
        """Height of the handle mount above the cabinet's bottom: the grip is at most :data:`HAND_CLEARANCE` below
        the carcass top, so the hand (closing across the pull axis) passes above it."""
        return self.height - HAND_CLEARANCE + 0.004


@dataclass(frozen=True)
class HandleSpec:
    """A handle: parts in the handle frame and where the fingers close on it (``grip``: x, y, z in that frame)."""

    id: str
    name: str
    split: str
    parts: tuple[Part, ...]
    grip: tuple[float, float, float]
    grip_width: float  # extent of the gripped element across the pull axis (m): how far the fingers open

    @property
    def reach(self) -> float:
        """How far the handle sticks out of the front (m)."""
        return max(_part_max_x(p) for p in self.parts)


def _part_max_x(p: Part) -> float:
    if p.kind == "box":
        return p.pos[0] + p.size[0]
    if p.quat == _X_TO_Z:  # a cylinder lying along x
        return p.pos[0] + p.size[1]
    return p.pos[0] + p.size[0]


def _c(name: str) -> tuple[float, float, float]:
    return COLORS[name]


_WOOD = (0.62, 0.45, 0.28)
_STEEL = (0.70, 0.71, 0.73)
_BRASS = (0.78, 0.62, 0.25)

CABINETS: tuple[CabinetSpec, ...] = (
    CabinetSpec("cab_white_small", "white cabinet", "train", 0.22, 0.26, 0.11, 0.14, _c("white"), _c("gray")),
    CabinetSpec(
        "cab_oak_medium", "wooden cabinet", "train", 0.24, 0.28, 0.12, 0.15, _WOOD, (0.55, 0.38, 0.22)
    ),
    CabinetSpec("cab_gray_wide", "gray cabinet", "train", 0.22, 0.32, 0.11, 0.14, _c("gray"), _c("white")),
    CabinetSpec("cab_blue_low", "blue cabinet", "train", 0.24, 0.26, 0.10, 0.15, _c("blue"), _c("white")),
    CabinetSpec("cab_red_narrow", "red cabinet", "unseen", 0.20, 0.22, 0.12, 0.13, _c("red"), _c("black")),
    CabinetSpec(
        "cab_black_tall", "black cabinet", "unseen", 0.24, 0.26, 0.14, 0.15, _c("black"), _c("silver")
    ),
    CabinetSpec(
        "cab_green_deep", "green cabinet", "unseen", 0.27, 0.30, 0.12, 0.16, _c("green"), _c("yellow")
    ),
)


def _bar_x(length: float, r: float, x0: float, z: float, color) -> Part:
    """A round bar lying along the pull axis from ``x0`` to ``x0 + length``."""
    return Part("cylinder", (r, length / 2), (x0 + length / 2, 0.0, z), _X_TO_Z, color)


def _box(half, pos, color) -> Part:
    return Part("box", tuple(half), tuple(pos), color=color)


def _ring(radius: float, thick: float, cx: float, color, n: int = 8) -> tuple[Part, ...]:
    """A loop standing in the x-z plane (thin across the pull axis) centred ``cx`` out of the front."""
    parts = []
    seg = 2 * radius * math.tan(math.pi / n) + 0.002
    for k in range(n):
        a = 2 * math.pi * k / n
        # a box tangent to the circle at angle a (measured in the x-z plane), turned about y
        q = (math.cos(-a / 2), 0.0, math.sin(-a / 2), 0.0)
        parts.append(Part("box", (thick / 2, thick / 2, seg / 2),
                          (cx + radius * math.cos(a), 0.0, radius * math.sin(a)), q, color))  # fmt: skip
    return tuple(parts)


HANDLES: tuple[HandleSpec, ...] = (
    HandleSpec("handle_round_knob", "round knob", "train",
               (_bar_x(0.02, 0.006, 0.0, 0.0, _STEEL), _bar_x(0.016, 0.016, 0.02, 0.0, _STEEL)),
               grip=(0.028, 0.0, 0.0), grip_width=0.032),
    HandleSpec("handle_vertical_bar", "bar handle", "train",
               (_box((0.0125, 0.004, 0.004), (0.0125, 0.0, 0.016), _STEEL),
                _box((0.0125, 0.004, 0.004), (0.0125, 0.0, -0.016), _STEEL),
                Part("cylinder", (0.007, 0.026), (0.031, 0.0, 0.0), color=_STEEL)),
               grip=(0.031, 0.0, 0.006), grip_width=0.014),
    HandleSpec("handle_pull_tab", "pull tab", "train",
               (_box((0.018, 0.004, 0.014), (0.018, 0.0, 0.0), _c("black")),),
               grip=(0.024, 0.0, 0.002), grip_width=0.008),
    HandleSpec("handle_t_bar", "T-handle", "unseen",
               (_bar_x(0.022, 0.005, 0.0, 0.0, _BRASS), _box((0.006, 0.006, 0.026), (0.028, 0.0, 0.0), _BRASS)),
               grip=(0.028, 0.0, 0.006), grip_width=0.012),
    HandleSpec("handle_ring", "ring pull", "unseen",
               (_bar_x(0.012, 0.004, 0.0, 0.0, _BRASS), *_ring(0.018, 0.006, 0.031, _BRASS)),
               grip=(0.031, 0.0, 0.018), grip_width=0.006),
    HandleSpec("handle_square_knob", "square knob", "unseen",
               (_box((0.01, 0.005, 0.005), (0.01, 0.0, 0.0), _c("black")),
                _box((0.009, 0.013, 0.013), (0.029, 0.0, 0.0), _c("black"))),
               grip=(0.029, 0.0, 0.0), grip_width=0.026),
)  # fmt: skip

_CAB = {c.id: c for c in CABINETS}
_HANDLE = {h.id: h for h in HANDLES}
assert len(_CAB) == len(CABINETS) and len(_HANDLE) == len(HANDLES), "duplicate cabinet or handle ids"


def cabinet_ids(split: str | None = None) -> list[str]:
    """Cabinet ids (of one split: ``train`` or ``unseen``), in a fixed order."""
    return [c.id for c in CABINETS if split is None or c.split == split]


def handle_ids(split: str | None = None) -> list[str]:
    """Handle ids (of one split), in a fixed order."""
    return [h.id for h in HANDLES if split is None or h.split == split]


def pack_hash() -> str:
    """sha256 (16 hex) of every cabinet and handle spec and the geometry constants: changes when any asset does."""
    import hashlib

    data = repr((CABINETS, HANDLES, WALL, FRONT_T, GAP, HAND_CLEARANCE, JOINT_FRICTION, JOINT_DAMPING,
                 CARCASS_DENSITY, DRAWER_DENSITY))  # fmt: skip
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _unknown(kind: str, asset_id: str, known: list[str]) -> KeyError:
    from vla_gen_bench.assets.store import AssetError, did_you_mean

    return AssetError(
        f"unknown {kind} {asset_id!r}{did_you_mean(asset_id, known)} (allowed: {', '.join(known)})"
    )


def get_cabinet(cabinet_id: str) -> CabinetSpec:
    if cabinet_id not in _CAB:
        raise _unknown("cabinet", cabinet_id, cabinet_ids())
    return _CAB[cabinet_id]


def get_handle(handle_id: str) -> HandleSpec:
    if handle_id not in _HANDLE:
        raise _unknown("handle", handle_id, handle_ids())
    return _HANDLE[handle_id]


# ---------------------------------------------------------------------- geometry in the cabinet frame
def carcass_parts(cab: CabinetSpec) -> tuple[Part, ...]:
    """The fixed body: bottom, top, two sides and the back, open at the front (-x)."""
    d, w, h, t = cab.depth, cab.width, cab.height, WALL
    col = cab.carcass_color
    return (
        _box((d / 2, w / 2, t / 2), (0.0, 0.0, t / 2), col),  # bottom
        _box((d / 2, w / 2, t / 2), (0.0, 0.0, h - t / 2), col),  # top
        _box((d / 2, t / 2, h / 2 - t), (0.0, w / 2 - t / 2, h / 2), col),  # sides
        _box((d / 2, t / 2, h / 2 - t), (0.0, -w / 2 + t / 2, h / 2), col),
        _box((t / 2, w / 2 - t, h / 2 - t), (d / 2 - t / 2, 0.0, h / 2), col),  # back
    )


def drawer_parts(cab: CabinetSpec) -> tuple[Part, ...]:
    """The sliding drawer at the closed position: a front flush with the carcass and an open-top box behind it."""
    d, w, h, t = cab.depth, cab.width, cab.height, WALL
    inner_w, inner_h = w - 2 * t - 2 * GAP, h - 2 * t - 2 * GAP
    box_d = d - t - FRONT_T - 2 * GAP  # from the front's inner face to just before the back
    x_front = -d / 2 + FRONT_T / 2
    x_box = -d / 2 + FRONT_T + box_d / 2
    z_mid = h / 2
    wall = 0.006
    col, inner = cab.front_color, tuple(0.85 * c for c in cab.carcass_color)
    return (
        _box((FRONT_T / 2, inner_w / 2, inner_h / 2), (x_front, 0.0, z_mid), col),
        _box((box_d / 2, inner_w / 2, wall / 2), (x_box, 0.0, t + GAP + wall / 2), inner),  # bottom
        _box((box_d / 2, wall / 2, inner_h / 2 - 0.01), (x_box, inner_w / 2 - wall / 2, z_mid - 0.01), inner),
        _box(
            (box_d / 2, wall / 2, inner_h / 2 - 0.01), (x_box, -inner_w / 2 + wall / 2, z_mid - 0.01), inner
        ),
        _box(
            (wall / 2, inner_w / 2, inner_h / 2 - 0.01),
            (x_box + box_d / 2 - wall / 2, 0.0, z_mid - 0.01),
            inner,
        ),
    )


def handle_to_cabinet(cab: CabinetSpec, p: tuple[float, float, float]) -> tuple[float, float, float]:
    """A point of the handle frame in the cabinet frame (drawer closed): x out of the front is the cabinet's -x."""
    return (-cab.depth / 2 - p[0], -p[1], cab.mount_z + p[2])


def handle_parts(cab: CabinetSpec, handle: HandleSpec) -> tuple[Part, ...]:
    """The handle's parts in the cabinet frame (drawer closed): turned 180 degrees about z, moved to the mount."""
    turn = (0.0, 0.0, 0.0, 1.0)
    return tuple(
        Part(p.kind, p.size, handle_to_cabinet(cab, p.pos), _qmul(turn, p.quat), p.color, p.vertices)
        for p in handle.parts
    )


def _qmul(a, b) -> tuple[float, float, float, float]:
    """Hamilton product of two wxyz quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)  # fmt: skip


def grip_point(cab: CabinetSpec, handle: HandleSpec) -> tuple[float, float, float]:
    """Where the TCP closes on the handle, in the cabinet frame with the drawer closed."""
    return handle_to_cabinet(cab, handle.grip)


# ---------------------------------------------------------------------- episodes
# The cabinet stands on the robot's left, between the robot and the default camera (at +x +y), with its front
# facing +x: the camera sees the front and the handle about 30 degrees off its normal, and nothing of the arm lies
# between them (the arm at rest is in the plane y = 0, behind the cabinet from the camera). The drawer slides out
# along +x, away from the robot base (x = -0.615), within the Panda's reach. The hand at rest is at x = 0 (clear of
# the front), so a distractor goes in front of the front beside the drawer's path on the robot's side (-y), where
# the camera sees it below the hand.
BASE_YAW = math.pi  # cabinet frame -x (its front) -> world +x
TRAIN_YAW_JITTER = 0.15  # rad, uniform around BASE_YAW
UNSEEN_YAW_JITTER = (0.15, 0.25)  # rad: |jitter| in this range, either side
TRAIN_FRONT_X = (-0.16, -0.10)  # world x of the closed drawer's front (m)
TRAIN_FRONT_Y = (0.075, 0.12)  # world y of the drawer front's centre
UNSEEN_FRONT_X = ((-0.21, -0.17), (-0.09, -0.06))  # just outside the training box, either side
UNSEEN_FRONT_Y = ((0.03, 0.06), (0.13, 0.15))
ROBOT_POSE_TRIES = 200  # offset rows drawn for unseen_robot_pose until one starts the hand clear
DISTRACTOR_GAP = (0.04, 0.07)  # m between the cabinet's side and a distractor's centre (across the front)
DISTRACTOR_AHEAD = (
    0.05,
    0.11,
)  # m a distractor's centre stands in front of the drawer front (along the pull)
SETTINGS = ("ind", "unseen_handles", "unseen_cabinets", "unseen_instructions", "unseen_positions",
            "unseen_robot_pose", "distractor", "pushback")  # fmt: skip
PUSHBACK_STEP = 25  # the drawer is pushed back right after this many actions (the oracle is done by then)
TEMPLATES = {
    ("open", "train"): ("open the drawer of the {cabinet}",),
    ("close", "train"): ("close the drawer of the {cabinet}",),
    ("open", "unseen"): ("pull the {cabinet}'s drawer out", "slide the drawer of the {cabinet} open",
                         "pull out the drawer with the {handle}", "open the {cabinet}'s drawer by its {handle}"),
    ("close", "unseen"): ("push the {cabinet}'s drawer shut", "slide the drawer of the {cabinet} closed",
                          "push in the drawer with the {handle}", "shut the {cabinet}'s drawer"),
}  # fmt: skip


def drawer_instruction(mode: str, cabinet_id: str, handle_id: str, template: str) -> str:
    return template.format(cabinet=get_cabinet(cabinet_id).name, handle=get_handle(handle_id).name)


def cabinet_centre(front_xy: tuple[float, float], yaw: float, depth: float) -> tuple[float, float]:
    """The cabinet's centre (its frame's origin, as ``receptacle_xy``) from its front's centre: half the depth
    behind it, against the front's outward normal (the cabinet frame's -x turned by ``yaw``)."""
    nx, ny = -math.cos(yaw), -math.sin(yaw)
    return (front_xy[0] - nx * depth / 2, front_xy[1] - ny * depth / 2)


def distractor_xy(cab: CabinetSpec, centre, yaw: float, ahead: float, gap: float) -> tuple[float, float]:
    """World xy of a distractor ``ahead`` m in front of the drawer front and ``gap`` m beside the cabinet's +y side
    (world -y at the base yaw: the robot's side), clear of the drawer's path."""
    along, side = -cab.depth / 2 - ahead, cab.width / 2 + gap  # a point of the cabinet frame
    c, s = math.cos(yaw), math.sin(yaw)
    return (float(centre[0] + c * along - s * side), float(centre[1] + s * along + c * side))


def drawer_episode(rng, store, mode: str, setting: str = "ind", robot_offsets=None):
    """One drawer :class:`~vla_gen_bench.episode.EpisodeSpec` of a setting (:data:`SETTINGS`), drawn with ``rng``
    (a ``numpy.random.Generator``) from the store's tables and objects and this module's cabinets and handles.

    ``receptacles[0]`` is the cabinet, ``receptacle_xy/yaw[0]`` its pose; ``objects[0]`` the handle (its xy/yaw are
    unused: zeros); ``objects[1:]`` distractors beside the cabinet; ``reposition`` the push-back (its xy unused).
    ``unseen_robot_pose`` draws from ``robot_offsets``, the (n, 7) robot-pose offset table
    (``vla_gen_bench.variants.factors.RobotInit.table()``; the assets room imports no other room).
    """
    from vla_gen_bench.episode import EpisodeSpec, Reposition

    if mode not in ("open", "close"):
        raise ValueError(f"unknown drawer mode {mode!r}; allowed: open, close")
    if setting not in SETTINGS:
        raise ValueError(f"unknown drawer setting {setting!r}; allowed: {', '.join(SETTINGS)}")
    if setting == "unseen_robot_pose" and robot_offsets is None:
        raise ValueError("unseen_robot_pose draws from the robot-pose offset table: pass "
                         "robot_offsets=RobotInit.table() (vla_gen_bench.variants.factors)")  # fmt: skip
    pick = lambda ids: ids[int(rng.integers(len(ids)))]  # noqa: E731
    cab_id = pick(cabinet_ids("unseen" if setting == "unseen_cabinets" else "train"))
    handle_id = pick(handle_ids("unseen" if setting == "unseen_handles" else "train"))
    cab = get_cabinet(cab_id)
    if setting == "unseen_positions":
        fx = rng.uniform(*UNSEEN_FRONT_X[int(rng.integers(2))])
        fy = rng.uniform(*UNSEEN_FRONT_Y[int(rng.integers(2))])
        yaw = BASE_YAW + float(rng.choice((-1, 1))) * rng.uniform(*UNSEEN_YAW_JITTER)
    else:
        fx, fy = rng.uniform(*TRAIN_FRONT_X), rng.uniform(*TRAIN_FRONT_Y)
        yaw = BASE_YAW + rng.uniform(-TRAIN_YAW_JITTER, TRAIN_YAW_JITTER)
    centre = cabinet_centre((float(fx), float(fy)), float(yaw), cab.depth)
    objects, xy, yaws = [handle_id], [(0.0, 0.0)], [0.0]
    if setting == "distractor":
        # in front of the front, beside the drawer's path on the robot's side (-y), in the camera's view
        obj = pick(store.ids("object", "train"))
        objects.append(obj)
        ahead, gap = rng.uniform(*DISTRACTOR_AHEAD), rng.uniform(*DISTRACTOR_GAP)
        xy.append(distractor_xy(cab, centre, float(yaw), ahead, gap))
        yaws.append(float(rng.uniform(0, math.pi)))
    split = "unseen" if setting == "unseen_instructions" else "train"
    template = pick(TEMPLATES[(mode, split)])
    qpos = (0.0,) * 7
    if setting == "unseen_robot_pose":
        qpos = clear_robot_offset(rng, robot_offsets, cab, centre, float(yaw))
    table = pick(store.ids("table", "train"))
    return EpisodeSpec(
        objects=tuple(objects), receptacles=(cab_id,), table=table,
        object_xy=tuple((float(a), float(b)) for a, b in xy), object_yaw=tuple(yaws),
        receptacle_xy=((float(centre[0]), float(centre[1])),), receptacle_yaw=(float(yaw),),
        instruction=drawer_instruction(mode, cab_id, handle_id, template), qpos_offset=qpos,
        reposition=Reposition(PUSHBACK_STEP, (0.0, 0.0)) if setting == "pushback" else None,
    )  # fmt: skip


# ---------------------------------------------------------------------- the arm's start, clear of the cabinet
PANDA_REST = (0.0, math.pi / 8, 0.0, -5 * math.pi / 8, 0.0, 3 * math.pi / 4, math.pi / 4)  # robots.REST_QPOS
PANDA_BASE = (-0.615, 0.0, 0.0)
# Franka's modified DH parameters (a, d, alpha) of joints 1-7; then the flange (d = 0.107), the hand turned -45
# degrees, and the TCP 0.1034 m down the hand's z.
_PANDA_DH = ((0.0, 0.333, 0.0), (0.0, 0.0, -math.pi / 2), (0.0, 0.316, math.pi / 2), (0.0825, 0.0, math.pi / 2),
             (-0.0825, 0.384, -math.pi / 2), (0.0, 0.0, math.pi / 2), (0.088, 0.0, math.pi / 2))  # fmt: skip
# points of the hand and fingers in the hand frame (x across, y along the fingers' closing axis, z down to the TCP)
_HAND_POINTS = tuple((x, y, z) for x in (-0.032, 0.032) for y in (-0.104, -0.052, 0.0, 0.052, 0.104)
                     for z in (-0.026, 0.066)) + tuple((x, y, z) for x in (-0.011, 0.011) for y in (-0.066, 0.066)
                                                       for z in (0.06, 0.113))  # fmt: skip
START_CLEARANCE = 0.01  # m the hand keeps from the cabinet's box (its handle included) at the start


def _dh(a: float, d: float, alpha: float, theta: float):
    import numpy as np

    ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
    return np.array(
        [[ct, -st, 0, a], [st * ca, ct * ca, -sa, -d * sa], [st * sa, ct * sa, ca, d * ca], [0, 0, 0, 1]]
    )


def _hand_frame(qpos_offset):
    """(4, 4) pose of the Panda's hand in its base frame at the rest configuration plus ``qpos_offset``."""
    import numpy as np

    m = np.eye(4)
    for (a, d, alpha), q in zip(_PANDA_DH, np.add(PANDA_REST, qpos_offset), strict=True):
        m = m @ _dh(a, d, alpha, float(q))
    return m @ _dh(0.0, 0.107, 0.0, 0.0) @ _dh(0.0, 0.0, 0.0, -math.pi / 4)


def tcp_position(qpos_offset):
    """(3,) world position of the Panda's TCP at the rest configuration plus ``qpos_offset``."""
    import numpy as np

    return (_hand_frame(qpos_offset) @ np.array([0.0, 0.0, 0.1034, 1.0]))[:3] + np.asarray(PANDA_BASE)


def hand_points(qpos_offset):
    """(k, 3) world points on the Panda's hand and fingers (open) at the rest configuration plus ``qpos_offset``."""
    import numpy as np

    pts = np.c_[np.asarray(_HAND_POINTS), np.ones(len(_HAND_POINTS))] @ _hand_frame(qpos_offset).T
    return pts[:, :3] + np.asarray(PANDA_BASE)


def hand_clear_of_cabinet(
    qpos_offset, cab: CabinetSpec, centre, yaw: float, handle_reach: float = 0.05
) -> bool:
    """Whether the hand starts outside the cabinet's box (its handle's reach in front included) by
    :data:`START_CLEARANCE`: an arm offset that starts the hand inside the carcass is no episode."""
    import numpy as np

    p = hand_points(qpos_offset)[:, :2] - np.asarray(centre)
    c, s = math.cos(yaw), math.sin(yaw)
    x, y = c * p[:, 0] + s * p[:, 1], -s * p[:, 0] + c * p[:, 1]  # into the cabinet frame
    z = hand_points(qpos_offset)[:, 2]
    m = START_CLEARANCE
    inside = ((x > -cab.depth / 2 - handle_reach - m) & (x < cab.depth / 2 + m) & (np.abs(y) < cab.width / 2 + m)
              & (z < cab.height + m))  # fmt: skip
    return not bool(inside.any())


def clear_robot_offset(rng, rows, cab: CabinetSpec, centre, yaw: float) -> tuple[float, ...]:
    """A row of the robot-pose offset table ``rows`` (n, 7) drawn with ``rng`` whose hand starts clear of this
    cabinet (up to :data:`ROBOT_POSE_TRIES` draws)."""
    for _ in range(ROBOT_POSE_TRIES):
        row = tuple(float(x) for x in rows[int(rng.integers(len(rows)))])
        if hand_clear_of_cabinet(row, cab, centre, yaw):
            return row
    raise RuntimeError(f"no robot-pose offset in {ROBOT_POSE_TRIES} draws starts the hand clear of {cab.id} at "
                       f"{tuple(round(v, 3) for v in centre)}; move the cabinet's placement range")  # fmt: skip
