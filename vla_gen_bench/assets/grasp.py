"""Grasp planning from an object's collision shape (convex pieces), for the scripted oracle.

A bounding box says where an object *could* be; its centre may lie in air (an elbow, a spoon's neck) and its height
says nothing about where the sides bulge. :func:`plan_grasp` reads the convex pieces instead:

* **axis**: the principal axis of the footprint (PCA of the hull vertices in xy); the fingers close across it,
  along the short side;
* **where along it**: the slice (perpendicular to the axis) nearest the pieces' volume centroid such that every
  section under the finger pads (:data:`PAD_HALF` either side) fits the hand (:data:`MAX_WIDTH`) and none flares out
  wider than the grasped slice (:data:`FLARE_M`: a spoon's bowl under one end of the pad), so a long object is held
  near its centre of mass, between parallel sides;
* **height**: the level at which that slice is widest (within its central 60 %; among near-ties, the one nearest
  its mid-height). Flat finger pads pinching *above* the widest level of a
  rounded section squeeze the object down and out of the hand when it is lifted (a pipe lying on its side, a
  spoon's handle); pinching at that level holds it. The policy keeps its fingertips clear of the table on top.

All in the object frame, bottom at z = 0 (the task's convention). An object that no longer stands as it was built
(a pot plant with a slanted base that falls on its side when it is set down, a bottle knocked over) is planned again
in the pose it rests in: :func:`plan_grasp_posed` rotates the pieces and plans on what then lies on the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_WIDTH = 0.055  # widest slice preferred for a grasp (WidowX-250S pads open ~5 cm, the Panda 8)
TIE_M = 0.002  # levels of a section this close to its widest count as "the widest" (sides near vertical)
PAD_HALF = 0.02  # half a finger pad along the object axis, with a margin (WidowX 1.5 cm, Panda 1.1)
FLARE_M = 0.003  # a section under the pad this much wider than the grasped slice is in the way of the fingers
N_SLICES = 61  # candidate grasp positions along the principal axis
N_LEVELS = 24  # heights at which a slice's width is measured


@dataclass(frozen=True)
class GraspPlan:
    """Where a parallel gripper should hold an object (object frame, bottom at z = 0)."""

    x: float
    y: float
    yaw: float
    """Direction (rad, about z) along which the fingers close."""
    z: float
    """Height above the bottom at which the fingers should pinch (the widest level of the grasped slice)."""
    width: float
    """Width of the slice across the closing direction (m)."""


def plan_grasp(pieces: list[np.ndarray]) -> GraspPlan:
    """Plan a grasp from convex pieces, each an (n, 3) array of its vertices in the object frame (bottom at z = 0).

    Raises:
        ValueError: no piece has vertices.
    """
    hulls = [h for h in (_Hull.of(p) for p in pieces) if h is not None]
    if not hulls:
        raise ValueError("plan_grasp needs at least one convex piece with vertices")
    pts = np.concatenate([h.v for h in hulls])
    vols = np.array([h.volume for h in hulls])
    cents = np.array([h.centroid for h in hulls])
    com = (vols[:, None] * cents).sum(0) / vols.sum() if vols.sum() > 0 else pts.mean(0)

    xy = pts[:, :2] - pts[:, :2].mean(0)
    w, v = np.linalg.eigh(np.cov(xy.T)) if len(xy) > 2 else (np.array([0.0, 0.0]), np.eye(2))
    major = v[:, 1] if w[1] > w[0] * 1.0001 else np.array([1.0, 0.0])
    minor = np.array([-major[1], major[0]])
    # slices perpendicular to the major axis; the fingers close along `minor`. A finger pad is PAD_HALF * 2 wide
    # along the axis and first touches the widest section under it, so a slice is judged by its pad window: the
    # widest section within PAD_HALF must fit the hand, and should be no wider than the slice itself (parallel sides,
    # not a spoon's bowl flaring out under one end of the pad). Among such slices, the one nearest the centre of mass.
    along = pts[:, :2] @ major
    lo, hi = float(along.min()), float(along.max())
    step = (hi - lo) / (N_SLICES - 1)
    cands = np.linspace(lo, hi, N_SLICES)
    secs = [_slice(hulls, major, minor, float(s)) for s in cands]
    widths = np.array([sec[0] if sec is not None else 0.0 for sec in secs])
    reach = max(1, int(round(PAD_HALF / step))) if step > 0 else 0
    c_along = float(com[:2] @ major)
    best, best_key = None, None
    for i, sec in enumerate(secs):
        if sec is None or sec[0] <= 0:
            continue
        win = widths[max(0, i - reach) : i + reach + 1].max()
        flare = win - sec[0]
        key = (sec[0] > MAX_WIDTH, flare > FLARE_M, abs(float(cands[i]) - c_along), win)
        if best_key is None or key < best_key:
            best, best_key = (float(cands[i]), win, sec[1], sec[2]), key
    if best is None:  # degenerate: the footprint centre
        c = (pts.min(0) + pts.max(0)) / 2
        return GraspPlan(
            float(c[0]), float(c[1]), _angle(minor), float(c[2]), float(np.ptp(pts[:, :2] @ minor))
        )
    s, width, z, mid = best
    x, y = s * major + mid * minor
    return GraspPlan(float(x), float(y), _angle(minor), float(z), float(width))


TILTED_RAD = 0.1  # an object tipped further than this (from upright) is planned again in its pose (~6 deg)


@dataclass(frozen=True)
class PosedGrasp:
    """A grasp for an object in a given orientation, in a frame at the object's origin with the parent's axes."""

    x: float
    y: float
    z: float
    """Pinch height relative to the object's origin (not its bottom)."""
    yaw: float
    """Direction (rad, about the parent's z) along which the fingers close."""
    bottom: float
    """Height of the object's lowest point relative to its origin (<= 0 for an upright object: 0)."""


def tilt_of(rot: np.ndarray) -> float:
    """Angle (rad) between the object's z axis and the parent's (0: upright)."""
    return math.acos(max(-1.0, min(1.0, float(rot[2, 2]))))


def plan_grasp_posed(pieces: list[np.ndarray], rot: np.ndarray) -> PosedGrasp:
    """Plan a grasp for the object rotated by ``rot`` (3x3, object -> parent frame): the pieces (object frame,
    bottom at z = 0) are rotated and planned on as they then lie (:func:`plan_grasp`).

    Raises:
        ValueError: no piece has vertices.
    """
    rot = np.asarray(rot, dtype=np.float64)
    turned = [np.asarray(p, dtype=np.float64).reshape(-1, 3) @ rot.T for p in pieces]
    turned = [p for p in turned if len(p)]
    if not turned:
        raise ValueError("plan_grasp_posed needs at least one convex piece with vertices")
    lo = min(float(p[:, 2].min()) for p in turned)
    g = plan_grasp([p - (0.0, 0.0, lo) for p in turned])
    return PosedGrasp(g.x, g.y, g.z + lo, g.yaw, lo)


def grasp_in_pose(shape, quat) -> PosedGrasp | None:
    """The grasp for a mesh asset (``collision_file``, ``scale``, ``mesh_offset``, ``grasp_pose``, ``grasp_height``:
    :class:`~vla_gen_bench.assets.rl4vla.MeshAsset`) resting in orientation ``quat`` (wxyz, actor -> parent frame),
    in a frame at the actor's origin with the parent's axes; None for other shapes or an empty collision file.

    Upright (tilted less than :data:`TILTED_RAD`): the asset's own grasp (``grasp_pose``, ``grasp_height``) turned by
    its yaw. Tipped over: planned again on the pieces as they lie (:func:`plan_grasp_posed`; cached per orientation,
    rounded to ~1 deg). ``bottom`` is always the lowest point of the turned pieces.
    """
    path = getattr(shape, "collision_file", None)
    height = getattr(shape, "grasp_height", None)
    if path is None or height is None:
        return None
    key = (str(path), float(shape.scale), tuple(float(v) for v in shape.mesh_offset))
    posed = _POSED.get(key)
    if posed is None:
        from vla_gen_bench.assets.rl4vla import read_obj_pieces  # rl4vla imports this module

        off = np.asarray(key[2])
        posed = _POSED[key] = _Posed([v * key[1] + off for v in read_obj_pieces(Path(path))])
    return posed.at(quat, tuple(float(v) for v in shape.grasp_pose), float(height))


class _Posed:
    """One mesh asset's pieces, its hull points (for the lowest point) and its plans per tipped-over orientation."""

    def __init__(self, pieces: list[np.ndarray]):
        self.pieces = [p for p in pieces if len(p)]
        pts = np.concatenate(self.pieces) if self.pieces else np.zeros((0, 3))
        h = _Hull.of(pts) if len(pts) else None
        self.hull = h.v if h is not None else pts
        self.plans: dict[tuple, PosedGrasp] = {}

    def at(self, quat, upright: tuple[float, float, float], height: float) -> PosedGrasp | None:
        if not self.pieces:
            return None
        q = np.asarray(quat, dtype=np.float64)
        q = q / max(float(np.linalg.norm(q)), 1e-12) * (1.0 if q[0] >= 0 else -1.0)
        rot = _quat_matrix(q)
        bottom = float((self.hull @ rot[2]).min())
        if tilt_of(rot) < TILTED_RAD:
            w, x, y, z = q
            yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
            c, s = math.cos(yaw), math.sin(yaw)
            gx, gy, gyaw = upright
            return PosedGrasp(c * gx - s * gy, s * gx + c * gy, height, yaw + gyaw, bottom)
        key = tuple(np.round(q, 2).tolist())
        if key not in self.plans:
            if len(self.plans) > 256:
                self.plans.clear()
            self.plans[key] = plan_grasp_posed(
                self.pieces, _quat_matrix(np.asarray(key) / np.linalg.norm(key))
            )
        return self.plans[key]


_POSED: dict[tuple, _Posed] = {}


def _quat_matrix(q) -> np.ndarray:
    """Rotation matrix of a unit wxyz quaternion."""
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _angle(d: np.ndarray) -> float:
    """Direction of d folded into [-pi/2, pi/2) (a closing direction is symmetric under pi)."""
    a = math.atan2(float(d[1]), float(d[0]))
    return (a + math.pi / 2) % math.pi - math.pi / 2


@dataclass(frozen=True)
class _Hull:
    v: np.ndarray  # (n, 3) hull vertices
    edges: np.ndarray  # (e, 2) vertex index pairs
    volume: float
    centroid: np.ndarray

    @classmethod
    def of(cls, p) -> _Hull | None:
        from scipy.spatial import ConvexHull, QhullError

        p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
        if not len(p):
            return None
        try:
            h = ConvexHull(p)
        except (QhullError, ValueError):  # flat or degenerate piece: its points, no volume
            n = len(p)
            return cls(
                p,
                np.array([(i, j) for i in range(n) for j in range(i + 1, n)]).reshape(-1, 2),
                0.0,
                p.mean(0),
            )
        keep = h.vertices
        remap = -np.ones(len(p), dtype=int)
        remap[keep] = np.arange(len(keep))
        tri = remap[h.simplices]
        edges = np.unique(
            np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]]), 1), axis=0
        )
        v = p[keep]
        o = v.mean(0)  # volume centroid: a fan of tetrahedra from an interior point
        t = v[tri]
        vol = np.abs(np.einsum("ij,ij->i", t[:, 0] - o, np.cross(t[:, 1] - o, t[:, 2] - o))) / 6
        c = (vol[:, None] * (t.sum(1) + o) / 4).sum(0) / max(vol.sum(), 1e-18)
        return cls(v, edges, float(h.volume), c)

    def section(self, n: np.ndarray, s: float) -> np.ndarray | None:
        """Points whose convex hull is the section with the vertical plane ``(n, 0) . x = s``, or None."""
        d = self.v[:, :2] @ n - s
        if d.min() > 0 or d.max() < 0:
            return None
        a, b = self.edges[:, 0], self.edges[:, 1]
        cross = (d[a] < 0) != (d[b] < 0)
        a, b = a[cross], b[cross]
        t = (d[a] / np.where(d[a] != d[b], d[a] - d[b], 1.0))[:, None]
        q = np.concatenate([self.v[d == 0], self.v[a] + (self.v[b] - self.v[a]) * t])
        return q if len(q) else None


def _slice(hulls: list[_Hull], major, minor, s: float):
    """(width across, height of the widest level, centre across) of the object's section at ``major . p = s``."""
    polys = []
    for h in hulls:
        q = h.section(major, s)
        if q is not None:
            polys.append(_polygon(np.stack([q @ np.r_[minor, 0.0], q[:, 2]], 1)))  # (k, 2): across, z
    if not polys:
        return None
    allpts = np.concatenate(polys)
    width = float(np.ptp(allpts[:, 0]))
    z0, z1 = float(allpts[:, 1].min()), float(allpts[:, 1].max())
    # the central 60 % of the section's height: a tall object is not held by its foot or its rim
    levels = (
        np.linspace(z0 + 0.2 * (z1 - z0), z1 - 0.2 * (z1 - z0), N_LEVELS)
        if z1 - z0 > 1e-6
        else np.array([z0])
    )
    widths = np.array([_width_at(polys, z) for z in levels])
    # the widest level; where the sides are near vertical (within TIE_M of the widest), the one nearest mid-height
    tied = levels[widths >= widths.max() - TIE_M]
    z = float(tied[np.argmin(np.abs(tied - (z0 + z1) / 2))])
    return width, z, float((allpts[:, 0].min() + allpts[:, 0].max()) / 2)


def _polygon(pts: np.ndarray) -> np.ndarray:
    """The convex polygon (ordered vertices) of 2-D points; the points themselves when they are degenerate."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        return pts


def _width_at(polys: list[np.ndarray], z: float) -> float:
    """Extent across of the union of convex polygons (across, z) at height z."""
    xs = []
    for poly in polys:
        a, b = poly, np.roll(poly, -1, 0)
        hit = (a[:, 1] - z) * (b[:, 1] - z) <= 0
        a, b = a[hit], b[hit]
        if not len(a):
            continue
        dz = b[:, 1] - a[:, 1]
        t = np.where(dz != 0, (z - a[:, 1]) / np.where(dz != 0, dz, 1), 0.0)
        xs += list(a[:, 0] + t * (b[:, 0] - a[:, 0]))
    return float(max(xs) - min(xs)) if xs else 0.0
