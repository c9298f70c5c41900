"""Procedural assets of the stack family: graspable top pieces and the base blocks they are stacked on.

A generator of its own, like :mod:`vla_gen_bench.assets.push`: the built-in pack's hash does not cover these, and
:func:`pack_hash` is recorded separately for the stack family. Same conventions as the built-in shapes: the frame's
origin is the centre of the bottom face, and every shape is centred on it (its top face's centre is straight above).

Pools (names are what the instruction says):
  top pieces  6 train (cubes, cuboids, short cylinders) + 5 unseen (hexagonal and octagonal prisms, a bar, a tall
              block; unseen colours), 3.6-5.6 cm across, 3.2-5 cm tall: the Panda's open fingers (8 cm) take
              each across its narrower side
  bases       4 train (square, long and round blocks, a thick slab) + 4 unseen (pentagonal, hexagonal, heptagonal
              and octagonal blocks; unseen colours): flat tops 6.4-8.4 cm across, 3-5 cm tall, heavier than the
              pieces; every piece fits on every base (:func:`fits`, test)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict

import numpy as np

from vla_gen_bench.assets.procedural import COLORS, Part, ShapeAsset, _prism

OBJECT_KIND = "stack_object"
BASE_KIND = "base"
BASE_DENSITY = 1500.0  # kg/m^3: a base is ~3x a piece's weight per volume, so a nudge does not slide it away
CENTRE_MARGIN = 0.01  # m: the piece's centre must lie this far inside the base's top outline (success)
PLACE_TOL = 0.015  # m: a piece set down this far off the base's centre must still count as on top (fits())

TRAIN_OBJECTS = [("red", "cube"), ("blue", "cube"), ("green", "cuboid"), ("yellow", "cuboid"),
                 ("orange", "cylinder"), ("purple", "cylinder")]  # fmt: skip
UNSEEN_OBJECTS = [("pink", "hexagonal prism"), ("teal", "octagonal prism"), ("white", "bar"),
                  ("gold", "tall block"), ("pink", "bar")]  # fmt: skip
TRAIN_BASES = [("gray", "square block"), ("brown", "long block"), ("silver", "round block"),
               ("black", "thick slab")]  # fmt: skip
UNSEEN_BASES = [("white", "hexagonal block"), ("gold", "octagonal block"), ("teal", "pentagonal block"),
                ("pink", "heptagonal block")]  # fmt: skip


def _box(hx: float, hy: float, h: float, rgb) -> tuple[Part, ...]:
    return (Part("box", (hx, hy, h / 2), (0, 0, h / 2), color=rgb),)


def _object_parts(shape: str, rgb) -> tuple[Part, ...]:
    if shape == "cube":
        return _box(0.02, 0.02, 0.04, rgb)
    if shape == "cuboid":
        return _box(0.025, 0.0175, 0.035, rgb)
    if shape == "cylinder":
        return (Part("mesh", vertices=_prism(24, 0.021, 0.035), color=rgb),)
    if shape == "hexagonal prism":  # flats at +-y: the fingers close across two parallel faces
        return (Part("mesh", vertices=_prism(6, 0.023, 0.04), color=rgb),)
    if shape == "octagonal prism":
        return (Part("mesh", vertices=_prism(8, 0.023, 0.032, phase=math.pi / 8), color=rgb),)
    if shape == "bar":
        return _box(0.028, 0.015, 0.032, rgb)
    if shape == "tall block":
        return _box(0.018, 0.018, 0.05, rgb)
    raise KeyError(shape)


def top_polygon(shape: str) -> tuple[tuple[float, float], ...]:
    """A base's top face outline in its own frame, counter-clockwise (the success test's convex polygon)."""
    if shape in ("square block", "thick slab", "long block"):
        hx, hy = {"square block": (0.035, 0.035), "thick slab": (0.038, 0.038), "long block": (0.042, 0.032)}[
            shape
        ]
        return ((hx, hy), (-hx, hy), (-hx, -hy), (hx, -hy))
    n, r, phase = {"round block": (32, 0.036, 0.0), "pentagonal block": (5, 0.042, math.pi / 2),
                   "hexagonal block": (6, 0.04, 0.0), "heptagonal block": (7, 0.04, math.pi / 2),
                   "octagonal block": (8, 0.039, math.pi / 8)}[shape]  # fmt: skip
    return tuple((r * math.cos(phase + 2 * math.pi * i / n), r * math.sin(phase + 2 * math.pi * i / n))
                 for i in range(n))  # fmt: skip


BASE_HEIGHT = {"square block": 0.04, "long block": 0.035, "round block": 0.045, "thick slab": 0.03,
               "pentagonal block": 0.05, "hexagonal block": 0.04, "heptagonal block": 0.035,
               "octagonal block": 0.032}  # fmt: skip


def _base_parts(shape: str, rgb) -> tuple[Part, ...]:
    h = BASE_HEIGHT[shape]
    poly = top_polygon(shape)
    if len(poly) == 4:
        (hx, hy) = poly[0]
        return _box(hx, hy, h, rgb)
    return (Part("mesh", vertices=tuple((x, y, z) for z in (0.0, h) for x, y in poly), color=rgb),)


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def objects() -> list[ShapeAsset]:
    return [ShapeAsset(id=f"stack_{_slug(f'{c} {s}')}", kind=OBJECT_KIND, name=f"{c} {s}", split=split,
                       parts=_object_parts(s, COLORS[c]), params={"color": c, "shape": s})
            for split, pool in (("train", TRAIN_OBJECTS), ("unseen", UNSEEN_OBJECTS)) for c, s in pool]  # fmt: skip


def bases() -> list[ShapeAsset]:
    return [ShapeAsset(id=f"base_{_slug(f'{c} {s}')}", kind=BASE_KIND, name=f"{c} {s}", split=split,
                       parts=_base_parts(s, COLORS[c]), density=BASE_DENSITY, params={"color": c, "shape": s})
            for split, pool in (("train", TRAIN_BASES), ("unseen", UNSEEN_BASES)) for c, s in pool]  # fmt: skip


def shapes() -> list[ShapeAsset]:
    return objects() + bases()


def pack_hash() -> str:
    """Content hash of the stack family's assets (16 hex digits), recorded beside the pack hash of a run."""
    payload = [(a.id, a.kind, a.split, a.name, a.density, [asdict(p) for p in a.parts]) for a in shapes()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def base_inradius(base: ShapeAsset) -> float:
    """How far the base's top face's centre is from its outline."""
    from vla_gen_bench.assets.push import signed_inside

    return float(signed_inside(np.zeros((1, 2)), np.asarray(top_polygon(base.params["shape"])))[0])


def footprint_radius(piece: ShapeAsset) -> float:
    """The largest distance of the piece's footprint from its centre."""
    from vla_gen_bench.assets.procedural import _part_corners

    pts = np.concatenate([_part_corners(p) for p in piece.parts])[:, :2]
    return float(np.linalg.norm(pts, axis=1).max())


def fits(piece: ShapeAsset, base: ShapeAsset) -> bool:
    """A piece set down up to :data:`PLACE_TOL` off the base's centre counts as on top (its centre stays
    :data:`CENTRE_MARGIN` inside the top outline), and the piece covers no more than the base's top (its footprint
    radius at most the base's inradius plus 1 cm: overhang, never a piece wider than its support)."""
    r_in = base_inradius(base)
    return r_in - CENTRE_MARGIN >= PLACE_TOL and footprint_radius(piece) <= r_in + 0.01
