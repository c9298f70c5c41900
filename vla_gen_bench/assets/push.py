"""Procedural assets of the push family: flat-bottomed objects that slide (boxes, pucks, prisms) and flat target
regions (a thin coloured patch flush with the table, no collision).

A generator of its own, beside :mod:`vla_gen_bench.assets.procedural`: the built-in pack's hash (carried by every
committed result of the put_on family) does not cover these, and :func:`pack_hash` is recorded separately for the
push family. Same conventions as the built-in shapes: the object frame's origin is the centre of the bottom face.

Pools (names are what the instruction says):
  push objects   8 train (cube, box, puck, hex puck) + 6 unseen (triangle, pentagon, octagon prisms, a wide
                 slab; unseen colours) — footprints within a 3.1 cm radius, so each fits inside every region
  regions        5 train (squares, circles) + 5 unseen (hexagons, diamonds, octagons; unseen colours) — at least
                 10.4 cm across in every direction, 1 mm thick, drawn over the table
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict

import numpy as np

from vla_gen_bench.assets.procedural import COLORS, Part, ShapeAsset, _prism

OBJECT_KIND = "push_object"
REGION_KIND = "region"
REGION_THICKNESS = 0.001
# colours the unseen pools use and the train pools never do (and the other way round)
TRAIN_OBJECTS = [("red", "cube"), ("blue", "cube"), ("green", "box"), ("yellow", "box"), ("orange", "puck"),
                 ("purple", "puck"), ("red", "hex puck"), ("blue", "hex puck")]  # fmt: skip
UNSEEN_OBJECTS = [("teal", "triangle prism"), ("pink", "pentagon prism"), ("white", "octagon puck"),
                  ("gold", "slab"), ("teal", "pentagon prism"), ("pink", "slab")]  # fmt: skip
TRAIN_REGIONS = [("green", "square"), ("yellow", "square"), ("blue", "circle"), ("orange", "circle"),
                 ("purple", "square")]  # fmt: skip
UNSEEN_REGIONS = [("pink", "hexagon"), ("teal", "diamond"), ("white", "octagon"), ("gold", "hexagon"),
                  ("black", "diamond")]  # fmt: skip


def _object_parts(shape: str, rgb) -> tuple[Part, ...]:
    if shape == "cube":
        return (Part("box", (0.02, 0.02, 0.02), (0, 0, 0.02), color=rgb),)
    if shape == "box":
        return (Part("box", (0.026, 0.018, 0.018), (0, 0, 0.018), color=rgb),)
    if shape == "slab":
        return (Part("box", (0.025, 0.018, 0.012), (0, 0, 0.012), color=rgb),)
    if shape == "puck":
        return (Part("mesh", vertices=_prism(24, 0.024, 0.022), color=rgb),)
    if shape == "hex puck":
        return (Part("mesh", vertices=_prism(6, 0.025, 0.025), color=rgb),)
    if shape == "triangle prism":
        return (Part("mesh", vertices=_prism(3, 0.03, 0.03, phase=math.pi / 2), color=rgb),)
    if shape == "pentagon prism":
        return (Part("mesh", vertices=_prism(5, 0.026, 0.03, phase=math.pi / 2), color=rgb),)
    if shape == "octagon puck":
        return (Part("mesh", vertices=_prism(8, 0.026, 0.02, phase=math.pi / 8), color=rgb),)
    raise KeyError(shape)


def region_polygon(shape: str) -> tuple[tuple[float, float], ...]:
    """The region's outline in its own frame, counter-clockwise (the success test's convex polygon)."""
    n, r, phase = {"square": (4, 0.055 * math.sqrt(2), math.pi / 4), "circle": (32, 0.058, 0.0),
                   "hexagon": (6, 0.062, 0.0), "diamond": (4, 0.074, 0.0),
                   "octagon": (8, 0.058, math.pi / 8)}[shape]  # fmt: skip
    return tuple((r * math.cos(phase + 2 * math.pi * i / n), r * math.sin(phase + 2 * math.pi * i / n))
                 for i in range(n))  # fmt: skip


def _region_parts(shape: str, rgb) -> tuple[Part, ...]:
    verts = tuple((x, y, z) for z in (0.0, REGION_THICKNESS) for x, y in region_polygon(shape))
    return (Part("mesh", vertices=verts, color=rgb, collision=False),)


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def objects() -> list[ShapeAsset]:
    return [ShapeAsset(id=f"push_{_slug(f'{c} {s}')}", kind=OBJECT_KIND, name=f"{c} {s}", split=split,
                       parts=_object_parts(s, COLORS[c]), params={"color": c, "shape": s})
            for split, pool in (("train", TRAIN_OBJECTS), ("unseen", UNSEEN_OBJECTS)) for c, s in pool]  # fmt: skip


def regions() -> list[ShapeAsset]:
    return [ShapeAsset(id=f"region_{_slug(f'{c} {s}')}", kind=REGION_KIND, name=f"{c} {s}", split=split,
                       parts=_region_parts(s, COLORS[c]), params={"color": c, "shape": s})
            for split, pool in (("train", TRAIN_REGIONS), ("unseen", UNSEEN_REGIONS)) for c, s in pool]  # fmt: skip


def shapes() -> list[ShapeAsset]:
    return objects() + regions()


def footprint(shape: ShapeAsset) -> np.ndarray:
    """(k, 2) xy outline points of an object's footprint in its frame (every part's corners)."""
    from vla_gen_bench.assets.procedural import _part_corners

    pts = np.concatenate([_part_corners(p) for p in shape.parts])[:, :2]
    return np.unique(np.round(pts, 6), axis=0)


def inner_radius(shape: ShapeAsset) -> float:
    """A region's inner radius: how far its centre is from its outline (the largest footprint radius it holds
    at any yaw)."""
    return float(signed_inside(np.zeros((1, 2)), np.asarray(region_polygon(shape.params["shape"])))[0])


def pack_hash() -> str:
    """Content hash of the push family's assets (16 hex digits), recorded beside the pack hash of a run."""
    payload = [(a.id, a.kind, a.split, a.name, [asdict(p) for p in a.parts]) for a in shapes()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def rotate_xy(pts: np.ndarray, q) -> np.ndarray:
    """(k, 2) points of a frame rotated by quaternion ``q`` (wxyz), projected on the table."""
    w, x, y, z = q
    r = np.array(
        [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z)], [2 * (x * y + w * z), 1 - 2 * (x * x + z * z)]]
    )
    return pts @ r.T


def signed_inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(k,) each point's distance inside a convex counter-clockwise polygon (negative: outside by that much)."""
    a, b = poly, np.roll(poly, -1, axis=0)  # (n, 2) edges a -> b
    e = b - a
    n = np.stack([-e[:, 1], e[:, 0]], 1) / np.linalg.norm(e, axis=1, keepdims=True)  # inward normals
    return ((pts[:, None, :] - a[None]) * n[None]).sum(-1).min(1)
