"""EpisodeSpec: everything that fixes one episode's initial configuration (one line of an episode manifest).

The task reads an EpisodeSpec at reset (``env.reset(options={"episode": spec})``); the variants' episode manifests
(:func:`vla_gen_bench.variants.episode`) are the one place they are made, for a reset without one too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# Workspace: a 6x6 grid with the paper's 3 cm pitch and > 7 cm minimum distance (RL4VLA §2.4), centred in front
# of the Panda (base at x = -0.615) at a comfortable reach of ~0.5 m.
GRID_CENTER = (-0.10, 0.0)
GRID_HALF_EDGE = 0.075
GRID_N = 6
MIN_PAIR_DIST = 0.07
YAWS = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)
TRAIN_TEMPLATE = "put {object} on {receptacle}"
FAILURE_LABELS = ("success", "never_grasped", "wrong_object", "dropped", "misplaced", "timeout")
"""The task's outcome labels, defined once: the env's ``info["failure"]`` indexes them, episode records name them
(``failure``) and every reader (report, leaderboard) checks against them."""


def grid_cells(
    n: int = GRID_N, half_edge: float = GRID_HALF_EDGE, center=GRID_CENTER, ring: int = 0
) -> np.ndarray:
    """(k, 2) xy of grid cells. ``ring=0``: the n x n training grid; ``ring=r``: only the cells r pitches outside it."""
    pitch = 2 * half_edge / (n - 1)
    idx = np.arange(-ring, n + ring)
    pts = np.array([(i, j) for i in idx for j in idx])
    if ring:
        outer = (pts.min(1) == -ring) | (pts.max(1) == n - 1 + ring)
        pts = pts[outer]
    xy = -half_edge + pts * pitch
    return xy + np.asarray(center)


def cell_pairs(cells: np.ndarray, min_dist: float = MIN_PAIR_DIST) -> np.ndarray:
    """(k, 2) index pairs (object cell, receptacle cell) of distinct cells farther apart than ``min_dist``."""
    d = np.linalg.norm(cells[:, None] - cells[None], axis=-1)
    i, j = np.nonzero(d > min_dist)
    return np.stack([i, j], 1)


@dataclass(frozen=True)
class Overlay:
    kind: str  # "texture" (foreground box) | "noise" (whole image)
    texture: str  # overlay asset id
    alpha: float

    def __post_init__(self):
        if self.kind not in ("texture", "noise"):
            raise ValueError(f"overlay kind must be 'texture' or 'noise', got {self.kind!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"overlay alpha must be in [0, 1], got {self.alpha}")


@dataclass(frozen=True)
class Reposition:
    at_step: int  # the object is teleported right after this many actions
    xy: tuple[float, float]
    drop: float | None = None
    """None: set the object down 1 cm above the table (ours). A height in m: put the object's model origin (a mesh
    asset's own origin; a procedural shape's bottom) this high above the table and let it fall (RL4VLA: 0.1305)."""
    settle_s: float = 0.0
    """Simulated seconds of extra physics right after the teleport, inside the same step (RL4VLA: 0.1)."""

    def to_dict(self) -> dict:
        """Fields at their defaults are left out, so episodes written before they existed keep their hashes."""
        d = {"at_step": self.at_step, "xy": self.xy}
        if self.drop is not None or self.settle_s:
            d.update(drop=self.drop, settle_s=self.settle_s)
        return d


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode's initial configuration. Index 0 of ``objects``/``receptacles`` is the target."""

    objects: tuple[str, ...]
    receptacles: tuple[str, ...]
    table: str
    object_xy: tuple[tuple[float, float], ...]
    object_yaw: tuple[float, ...]
    receptacle_xy: tuple[tuple[float, float], ...]
    instruction: str
    receptacle_yaw: tuple[float, ...] = ()
    qpos_offset: tuple[float, ...] = (0.0,) * 7
    overlay: Overlay | None = None
    reposition: Reposition | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.objects or not self.receptacles:
            raise ValueError("an episode needs at least one object and one receptacle")
        if len(self.object_xy) != len(self.objects) or len(self.object_yaw) != len(self.objects):
            raise ValueError("object_xy / object_yaw must have one entry per object")
        if len(self.receptacle_xy) != len(self.receptacles):
            raise ValueError("receptacle_xy must have one entry per receptacle")
        if self.receptacle_yaw and len(self.receptacle_yaw) != len(self.receptacles):
            raise ValueError("receptacle_yaw must be empty or have one entry per receptacle")
        if len(self.qpos_offset) != 7:
            raise ValueError(f"qpos_offset must have 7 arm-joint entries, got {len(self.qpos_offset)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.reposition is not None:
            d["reposition"] = self.reposition.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EpisodeSpec:
        d = dict(d)
        tup = lambda v: tuple(tuple(x) if isinstance(x, list) else x for x in v)  # noqa: E731
        for k in ("objects", "receptacles", "object_yaw", "receptacle_yaw", "qpos_offset"):
            if k in d:
                d[k] = tuple(d[k])
        for k in ("object_xy", "receptacle_xy"):
            d[k] = tup(d[k])
        if d.get("overlay"):
            d["overlay"] = Overlay(**d["overlay"])
        if d.get("reposition"):
            r = dict(d["reposition"])
            r["xy"] = tuple(r["xy"])
            d["reposition"] = Reposition(**r)
        return cls(**d)
