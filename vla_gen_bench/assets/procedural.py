"""Built-in procedural assets: named objects, flat receptacles, table appearances and overlay textures.

Everything is deterministic from a seed and needs no download. Objects and receptacles are *data*: a list of
primitive parts (box / cylinder / convex mesh) with colours, in an object frame whose origin is the centre of the
bottom face (z = 0 is where the object rests). The simulator turns parts into collision + visual shapes.

Pools (names are what the instruction says, so a language model can ground them):
  objects      16 train + 9 unseen (unseen objects use shapes never seen in training)
  receptacles   1 train ("plate") + 16 unseen flat receptacles (~9-12 cm)
  tables       16 train + 5 unseen appearances (unseen ones use material families absent from training)
  overlays     16 textures for the dynamic-texture / dynamic-noise variants
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.10, 0.10),
    "green": (0.15, 0.65, 0.20),
    "blue": (0.12, 0.30, 0.85),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (0.95, 0.50, 0.05),
    "purple": (0.50, 0.20, 0.70),
    "pink": (0.95, 0.45, 0.70),
    "white": (0.92, 0.92, 0.90),
    "black": (0.08, 0.08, 0.08),
    "teal": (0.05, 0.60, 0.60),
    "brown": (0.45, 0.28, 0.12),
    "gray": (0.50, 0.50, 0.52),
    "gold": (0.85, 0.68, 0.20),
    "silver": (0.75, 0.76, 0.78),
}

IDENTITY_Q = (1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Part:
    """One primitive of an object. ``size``: box half-extents (3); cylinder (radius, half_height) with its axis
    along the object's z; mesh: unused (``vertices`` of a convex hull instead)."""

    kind: str  # "box" | "cylinder" | "mesh"
    size: tuple[float, ...] = ()
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = IDENTITY_Q  # wxyz
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    vertices: tuple[tuple[float, float, float], ...] = ()
    collision: bool = True


@dataclass(frozen=True)
class ShapeAsset:
    """An object or receptacle: named, split-tagged, a tuple of parts."""

    id: str
    kind: str  # "object" | "receptacle"
    name: str
    split: str  # "train" | "unseen"
    parts: tuple[Part, ...]
    density: float = 500.0
    params: dict = field(default_factory=dict, compare=False, hash=False)
    grasp: tuple[float, float, float] | None = None
    """(x, y, yaw) in the object frame where a parallel gripper should grasp, yaw = direction the fingers close
    along; None = centre of the bounding box, across its narrower horizontal side."""

    @property
    def half_extents(self) -> np.ndarray:
        """Half sizes (3,) of the object-frame axis-aligned bounding box."""
        lo, hi = self.bounds
        return (hi - lo) / 2

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        pts = np.concatenate([_part_corners(p) for p in self.parts])
        return pts.min(0), pts.max(0)

    @property
    def grasp_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the grasp in the object frame (see ``grasp``)."""
        return self.grasp if self.grasp is not None else bbox_grasp(*self.bounds)


def _rotate(q, v):
    w, x, y, z = q
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return v @ r.T


def bbox_grasp(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float, float]:
    """(x, y, yaw) grasp at the bounding-box centre, fingers closing across its narrower horizontal side."""
    c = (lo + hi) / 2
    return float(c[0]), float(c[1]), 0.0 if (hi - lo)[0] <= (hi - lo)[1] else math.pi / 2


def _part_corners(p: Part) -> np.ndarray:
    if p.kind == "box":
        hx, hy, hz = p.size
        local = np.array([[sx * hx, sy * hy, sz * hz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    elif p.kind == "cylinder":
        r, h = p.size
        ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring = np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
        local = np.concatenate([np.c_[ring, np.full(16, -h)], np.c_[ring, np.full(16, h)]])
    else:
        local = np.asarray(p.vertices, dtype=float)
    return _rotate(p.quat, local) + np.asarray(p.pos)


def _yaw_q(yaw: float) -> tuple[float, float, float, float]:
    return (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))


def _prism(n: int, radius: float, height: float, phase: float = 0.0, radii=None) -> tuple:
    radii = radii or [radius] * n
    ang = [phase + 2 * math.pi * i / n for i in range(n)]
    ring = [(r * math.cos(a), r * math.sin(a)) for r, a in zip(radii, ang, strict=False)]
    return tuple((x, y, z) for z in (0.0, height) for x, y in ring)


# --------------------------------------------------------------------------- shapes (object frame, bottom at z=0)
GRASPS: dict[str, tuple[float, float, float]] = {
    # shapes whose bounding-box centre is not a good grasp: (x, y, closing yaw) in the object frame
    "L block": (0.008, -0.012, math.pi / 2),
    "T block": (0.0, -0.015, 0.0),
    "cross block": (0.0, 0.0, 0.0),
}


def shape_parts(shape: str, rgb: tuple[float, float, float]) -> tuple[Part, ...]:
    c = rgb
    dark = tuple(0.6 * v for v in rgb)
    if shape == "cube":
        return (Part("box", (0.02, 0.02, 0.02), (0, 0, 0.02), color=c),)
    if shape == "block":
        return (Part("box", (0.035, 0.017, 0.02), (0, 0, 0.02), color=c),)
    if shape == "cylinder":
        return (Part("cylinder", (0.02, 0.03), (0, 0, 0.03), color=c),)
    if shape == "hex prism":
        return (Part("mesh", vertices=_prism(6, 0.024, 0.04), color=c),)
    if shape == "triangular prism":
        return (Part("mesh", vertices=_prism(3, 0.03, 0.04, phase=math.pi / 2), color=c),)
    if shape == "cross block":
        return (
            Part("box", (0.026, 0.01, 0.018), (0, 0, 0.018), color=c),
            Part("box", (0.01, 0.026, 0.018), (0, 0, 0.018), color=c),
        )
    if shape == "L block":
        return (
            Part("box", (0.035, 0.012, 0.018), (0, -0.012, 0.018), color=c),
            Part("box", (0.012, 0.024, 0.018), (-0.023, 0.024, 0.018), color=c),
        )
    if shape == "T block":
        return (
            Part("box", (0.035, 0.011, 0.018), (0, 0.024, 0.018), color=c),
            Part("box", (0.011, 0.024, 0.018), (0, -0.011, 0.018), color=c),
        )
    if shape == "star block":
        h = 0.035
        parts = [Part("mesh", vertices=_prism(5, 0.016, h, phase=math.pi / 2), color=c)]
        for i in range(5):
            a = math.pi / 2 + 2 * math.pi * i / 5
            tip = (0.031 * math.cos(a), 0.031 * math.sin(a))
            b1 = (0.016 * math.cos(a - 0.63), 0.016 * math.sin(a - 0.63))
            b2 = (0.016 * math.cos(a + 0.63), 0.016 * math.sin(a + 0.63))
            verts = tuple((x, y, z) for z in (0.0, h) for x, y in (tip, b1, b2))
            parts.append(Part("mesh", vertices=verts, color=c))
        return tuple(parts)
    if shape == "mug":
        return (
            Part("cylinder", (0.022, 0.03), (0, 0, 0.03), color=c),
            Part("box", (0.004, 0.006, 0.018), (0.03, 0, 0.032), color=dark),
            Part("box", (0.006, 0.006, 0.003), (0.025, 0, 0.047), color=dark),
            Part("box", (0.006, 0.006, 0.003), (0.025, 0, 0.017), color=dark),
        )
    if shape == "bottle":
        return (
            Part("cylinder", (0.019, 0.028), (0, 0, 0.028), color=c),
            Part("cylinder", (0.009, 0.014), (0, 0, 0.07), color=dark),
        )
    if shape == "dumbbell":
        along_y = (0.7071068, 0.7071068, 0.0, 0.0)  # cylinder axis z -> y
        return (
            Part("box", (0.009, 0.026, 0.009), (0, 0, 0.017), color=c),
            Part("cylinder", (0.017, 0.01), (0, 0.035, 0.017), quat=along_y, color=dark),
            Part("cylinder", (0.017, 0.01), (0, -0.035, 0.017), quat=along_y, color=dark),
        )
    if shape == "arch":
        return (
            Part("box", (0.035, 0.015, 0.007), (0, 0, 0.035), color=c),
            Part("box", (0.009, 0.015, 0.014), (-0.026, 0, 0.014), color=c),
            Part("box", (0.009, 0.015, 0.014), (0.026, 0, 0.014), color=c),
        )
    if shape == "pyramid":
        base = [(-0.025, -0.025), (0.025, -0.025), (0.025, 0.025), (-0.025, 0.025)]
        top = [(-0.01, -0.01), (0.01, -0.01), (0.01, 0.01), (-0.01, 0.01)]
        verts = tuple((x, y, 0.0) for x, y in base) + tuple((x, y, 0.04) for x, y in top)
        return (Part("mesh", vertices=verts, color=c),)
    raise KeyError(shape)


TRAIN_OBJECTS = [
    ("red", "cube"), ("green", "cylinder"), ("blue", "block"), ("yellow", "hex prism"),
    ("orange", "triangular prism"), ("purple", "cross block"), ("red", "L block"), ("green", "T block"),
    ("blue", "cube"), ("yellow", "cylinder"), ("orange", "block"), ("purple", "hex prism"),
    ("white", "cube"), ("pink", "cylinder"), ("teal", "triangular prism"), ("brown", "block"),
]  # fmt: skip
UNSEEN_OBJECTS = [
    ("black", "star block"), ("white", "mug"), ("green", "bottle"), ("red", "dumbbell"), ("blue", "arch"),
    ("yellow", "pyramid"), ("pink", "star block"), ("orange", "mug"), ("teal", "bottle"),
]  # fmt: skip


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def objects() -> list[ShapeAsset]:
    out = []
    for split, pool in (("train", TRAIN_OBJECTS), ("unseen", UNSEEN_OBJECTS)):
        for color, shape in pool:
            name = f"{color} {shape}"
            density = 300.0 if shape in ("mug", "bottle", "dumbbell") else 500.0
            out.append(
                ShapeAsset(
                    id=f"obj_{_slug(name)}", kind="object", name=name, split=split,
                    parts=shape_parts(shape, COLORS[color]), density=density,
                    params={"color": color, "shape": shape}, grasp=GRASPS.get(shape),
                )
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------- receptacles (flat, ~9-12 cm)
def _disc(r: float, t: float, rgb, rim: float = 0.0) -> tuple[Part, ...]:
    parts = [Part("cylinder", (r, t / 2), (0, 0, t / 2), color=rgb)]
    if rim:
        # a visual-only rim ring so the plate reads as a plate; collision stays one flat disc
        for i in range(12):
            a = 2 * math.pi * i / 12
            parts.append(
                Part("box", (0.004, r * 0.27, 0.002), ((r - 0.004) * math.cos(a), (r - 0.004) * math.sin(a), t + 0.002),
                     quat=_yaw_q(a), color=tuple(0.85 * v for v in rgb), collision=False)
            )  # fmt: skip
    return tuple(parts)


def _slab(hx: float, hy: float, t: float, rgb) -> tuple[Part, ...]:
    return (Part("box", (hx, hy, t / 2), (0, 0, t / 2), color=rgb),)


def _checker(hx: float, hy: float, t: float, a, b, n: int = 4) -> tuple[Part, ...]:
    parts = [Part("box", (hx, hy, t / 2), (0, 0, t / 2), color=a)]
    sx, sy = 2 * hx / n, 2 * hy / n
    for i in range(n):
        for j in range(n):
            if (i + j) % 2:
                parts.append(Part("box", (sx / 2, sy / 2, 0.0008), (-hx + sx * (i + 0.5), -hy + sy * (j + 0.5), t + 0.0008),
                                  color=b, collision=False))  # fmt: skip
    return tuple(parts)


def receptacles() -> list[ShapeAsset]:
    C = COLORS
    spec: list[tuple[str, str, tuple[Part, ...]]] = [
        ("train", "plate", _disc(0.055, 0.008, C["white"], rim=1)),
        ("unseen", "blue tray", _slab(0.06, 0.045, 0.01, C["blue"])),
        ("unseen", "red placemat", _slab(0.06, 0.05, 0.004, C["red"])),
        ("unseen", "green cutting board", _slab(0.065, 0.045, 0.012, C["green"])),
        ("unseen", "yellow napkin", _slab(0.05, 0.05, 0.003, C["yellow"])),
        ("unseen", "black frying pan", _disc(0.05, 0.01, C["black"]) + (
            Part("box", (0.04, 0.008, 0.004), (0.088, 0, 0.006), color=C["black"], collision=False),)),
        ("unseen", "wooden board", _slab(0.06, 0.04, 0.014, C["brown"])),
        ("unseen", "purple coaster", _disc(0.048, 0.006, C["purple"])),
        ("unseen", "orange dish", _disc(0.052, 0.009, C["orange"], rim=1)),
        ("unseen", "pink towel", _slab(0.06, 0.045, 0.005, C["pink"])),
        ("unseen", "teal tile", _slab(0.05, 0.05, 0.008, C["teal"])),
        ("unseen", "white notepad", _slab(0.045, 0.06, 0.01, C["white"])),
        ("unseen", "gray tablet", _slab(0.06, 0.042, 0.007, C["gray"])),
        ("unseen", "chess board", _checker(0.055, 0.055, 0.01, C["white"], C["black"])),
        ("unseen", "gold disk", _disc(0.05, 0.004, C["gold"])),
        ("unseen", "silver baking sheet", _slab(0.065, 0.05, 0.006, C["silver"])),
        ("unseen", "checkered mouse pad", _checker(0.055, 0.045, 0.004, C["blue"], C["yellow"], n=6)),
    ]  # fmt: skip
    return [
        ShapeAsset(
            id=f"rec_{_slug(name)}", kind="receptacle", name=name, split=split, parts=parts, density=800.0
        )
        for split, name, parts in spec
    ]


# --------------------------------------------------------------------------- table appearances and overlays
@dataclass(frozen=True)
class TextureSpec:
    """A procedural image: ``family`` names the generator, ``colors`` its palette, ``seed`` its noise."""

    id: str
    kind: str  # "table" | "overlay"
    name: str
    split: str
    family: str
    colors: tuple[tuple[float, float, float], ...]
    seed: int
    tile_m: float = 0.4  # metres of table covered by one texture tile (tables only)


TABLE_SPECS = [
    # train: wood, plastic, fabric, tile, painted families
    ("train", "oak wood table", "wood", ("#b07a45", "#8a5a2e")),
    ("train", "dark walnut table", "wood", ("#5c3b22", "#3d2614")),
    ("train", "pale birch table", "wood", ("#e0c9a0", "#c2a878")),
    ("train", "red plastic table", "plastic", ("#b83232",)),
    ("train", "blue plastic table", "plastic", ("#3a5fb0",)),
    ("train", "white plastic table", "plastic", ("#e6e6e2",)),
    ("train", "green felt table", "fabric", ("#2f7a3b", "#256630")),
    ("train", "gray linen table", "fabric", ("#9c9a94", "#86847e")),
    ("train", "beige canvas table", "fabric", ("#d8c8a8", "#c4b290")),
    ("train", "white tiled table", "tile", ("#f0f0ec", "#b8b8b4")),
    ("train", "blue tiled table", "tile", ("#6f90c8", "#e8e8e8")),
    ("train", "yellow painted desk", "painted", ("#e6c440", "#cfa92a")),
    ("train", "pink painted desk", "painted", ("#e39ab8", "#cf7fa0")),
    ("train", "orange painted desk", "painted", ("#e8873a", "#cc6f24")),
    ("train", "cherry wood table", "wood", ("#8e3b2a", "#6a2a1c")),
    ("train", "black plastic table", "plastic", ("#2a2a2c",)),
    # unseen: material families absent from training
    ("unseen", "white marble table", "marble", ("#efefeb", "#8f8f95")),
    ("unseen", "gray stone table", "stone", ("#7d7b76", "#5e5c58")),
    ("unseen", "glass table", "glass", ("#bfe3e8", "#ffffff")),
    ("unseen", "brushed metal table", "metal", ("#a9adb2", "#8c9096")),
    ("unseen", "terrazzo table", "terrazzo", ("#e8e2d6", "#c25a3a", "#3a6ea8")),
]

OVERLAY_FAMILIES = ["stripes", "checker", "dots", "waves", "noise", "plaid", "rings", "gradient"]


def _hex(h: str) -> tuple[float, float, float]:
    return tuple(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5))


def tables() -> list[TextureSpec]:
    return [
        TextureSpec(id=f"table_{_slug(name)}", kind="table", name=name, split=split, family=fam,
                    colors=tuple(_hex(c) for c in cols), seed=1000 + i)
        for i, (split, name, fam, cols) in enumerate(TABLE_SPECS)
    ]  # fmt: skip


def overlays(n: int = 16) -> list[TextureSpec]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        fam = OVERLAY_FAMILIES[i % len(OVERLAY_FAMILIES)]
        cols = tuple(tuple(float(v) for v in rng.uniform(0, 1, 3)) for _ in range(3))
        out.append(TextureSpec(id=f"overlay_{i:02d}_{fam}", kind="overlay", name=f"{fam} {i}", split="unseen",
                               family=fam, colors=cols, seed=2000 + i))  # fmt: skip
    return out


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Tileable value noise in [0, 1] (bilinear upsampling of a periodic grid)."""
    g = rng.uniform(0, 1, (cells, cells))
    t = np.arange(size) * cells / size
    i0 = np.floor(t).astype(int)
    f = t - i0
    f = f * f * (3 - 2 * f)
    i1 = (i0 + 1) % cells
    a = g[i0][:, i0] * (1 - f)[None, :] + g[i0][:, i1] * f[None, :]
    b = g[i1][:, i0] * (1 - f)[None, :] + g[i1][:, i1] * f[None, :]
    return a * (1 - f)[:, None] + b * f[:, None]


def _fbm(rng, size, octaves=(4, 8, 16, 32)):
    n = sum(_smooth_noise(rng, size, c) / (k + 1) for k, c in enumerate(octaves))
    return (n - n.min()) / (np.ptp(n) + 1e-9)


def render_texture(spec: TextureSpec, size: int = 256) -> np.ndarray:
    """Deterministically render a procedural texture to an (size, size, 3) uint8 image (tileable for tables)."""
    rng = np.random.default_rng(spec.seed)
    cols = [np.asarray(c) for c in spec.colors]
    yy, xx = np.mgrid[0:size, 0:size] / size
    fam = spec.family

    def mix(a, b, t):
        a, b = (np.asarray(v).reshape((1, 1, 3)) if np.ndim(v) == 1 else np.asarray(v) for v in (a, b))
        return a * (1 - t[..., None]) + b * t[..., None]

    if fam == "wood":
        n = _fbm(rng, size)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * yy + 3.0 * n))
        img = mix(cols[0], cols[1], t**2)
    elif fam == "plastic":
        img = np.broadcast_to(cols[0], (size, size, 3)) * (
            0.97 + 0.06 * _smooth_noise(rng, size, 64)[..., None]
        )
    elif fam == "fabric":
        weave = ((np.sin(2 * np.pi * 48 * xx) > 0) ^ (np.sin(2 * np.pi * 48 * yy) > 0)).astype(float)
        img = mix(cols[0], cols[1], 0.35 * weave + 0.3 * _fbm(rng, size))
    elif fam == "tile":
        grout = ((xx * 4) % 1 < 0.05) | ((yy * 4) % 1 < 0.05)
        img = np.where(
            grout[..., None],
            cols[1][None, None],
            cols[0][None, None] * (0.95 + 0.1 * _fbm(rng, size)[..., None]),
        )
    elif fam == "painted":
        img = mix(cols[0], cols[1], 0.6 * _fbm(rng, size, (2, 4, 8)))
    elif fam == "marble":
        n = _fbm(rng, size, (4, 8, 16, 32, 64))
        veins = np.abs(np.sin(2 * np.pi * (2 * xx + 4 * n))) ** 0.15
        img = mix(cols[1], cols[0], veins)
    elif fam == "stone":
        img = mix(cols[0], cols[1], _fbm(rng, size, (8, 16, 32, 64)))
    elif fam == "glass":
        streak = 0.5 + 0.5 * np.sin(2 * np.pi * (1.5 * xx + 1.5 * yy))
        img = mix(cols[0], cols[1], 0.4 * streak**6 + 0.1 * _fbm(rng, size))
    elif fam == "metal":
        brushed = _smooth_noise(rng, size, 128).mean(axis=0, keepdims=True).repeat(size, 0)
        img = mix(cols[0], cols[1], 0.3 * brushed + 0.7 * np.abs(np.sin(np.pi * yy)) * 0.3)
    elif fam == "terrazzo":
        img = np.broadcast_to(cols[0], (size, size, 3)).copy()
        for _ in range(140):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.006, 0.02)
            d = np.hypot(((xx - cx + 0.5) % 1) - 0.5, ((yy - cy + 0.5) % 1) - 0.5)
            img[d < r] = cols[1 + int(rng.integers(0, len(cols) - 1))]
    # overlay families (high-contrast patterns)
    elif fam == "stripes":
        f, ang = rng.uniform(6, 16), rng.uniform(0, np.pi)
        img = mix(
            cols[0],
            cols[1],
            (np.sin(2 * np.pi * f * (np.cos(ang) * xx + np.sin(ang) * yy)) > 0).astype(float),
        )
    elif fam == "checker":
        k = int(rng.integers(4, 12))
        img = mix(cols[0], cols[1], (((xx * k).astype(int) + (yy * k).astype(int)) % 2).astype(float))
    elif fam == "dots":
        k = int(rng.integers(5, 12))
        d = np.hypot((xx * k) % 1 - 0.5, (yy * k) % 1 - 0.5)
        img = mix(cols[0], cols[2], (d < 0.3).astype(float))
    elif fam == "waves":
        img = mix(cols[0], cols[1], 0.5 + 0.5 * np.sin(2 * np.pi * (5 * xx + 2 * np.sin(2 * np.pi * 3 * yy))))
    elif fam == "noise":
        img = mix(cols[0], cols[1], _fbm(rng, size, (16, 32, 64, 128)))
    elif fam == "plaid":
        a = (np.sin(2 * np.pi * 8 * xx) > 0.3).astype(float)
        b = (np.sin(2 * np.pi * 8 * yy) > 0.3).astype(float)
        img = mix(mix(cols[0], cols[1], a), np.broadcast_to(cols[2], (size, size, 3)), 0.5 * b)
    elif fam == "rings":
        r = np.hypot(xx - 0.5, yy - 0.5)
        img = mix(cols[0], cols[1], (np.sin(2 * np.pi * 14 * r) > 0).astype(float))
    elif fam == "gradient":
        img = mix(mix(cols[0], cols[1], xx), np.broadcast_to(cols[2], (size, size, 3)), yy)
    else:
        raise KeyError(f"unknown texture family {fam!r}")
    return np.clip(np.asarray(img) * 255 + 0.5, 0, 255).astype(np.uint8)
