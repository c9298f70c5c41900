"""Write a synthetic asset folder in RL4VLA's layout (the real one is not redistributable and not on CI machines).

Same structure and field names as RL4VLA's ``ManiSkill/mani_skill/assets/carrot``: ``more_carrot`` (25 objects),
``more_plate`` (17 receptacles), ``more_table`` (21 table images + 21 textures), each with its ``model_db.json``.
Meshes are a few procedurally generated shapes (trimesh), around their origin like RL4VLA's (bbox min z < 0; the
boxes' origin is off their bbox centre, ``BOX_ORIGIN_OFFSET``);
collision files hold several convex pieces where the shape has them. Images are seeded noise over a colour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OBJECT_NAMES = (
    "carrot", "kitchen shovel", "bread", "plastic bottle", "7up can", "zuchinni", "ketchup bottle", "watering can",
    "pipe", "toy bear", "fast food cup", "plant", "banana", "hamburger", "golf ball", "BBQ sauce",
    "travel cup", "pepper", "nonstop can", "potato", "baguette", "champagne glass", "kitchen spoon", "onion", "cup",
)  # fmt: skip
RECEPTACLE_NAMES = (
    "plate", "cloth", "carpet", "newspaper", "sheet metal", "drawing tablet", "tomato slice", "pizza", "flat bowl",
    "gramophone disk", "frying pan", "mouse pad", "cutting board", "chess board", "manhole cover", "envelope", "notepad",
)  # fmt: skip
# the box objects (every 4th, from the first) have their bbox centre this far in -x of their origin (RL4VLA spoon: 13 mm)
BOX_ORIGIN_OFFSET = 0.02
TABLE_NAMES = ("table", *(f"table {i}" for i in range(2, 22)))


def _object_meshes(i: int):
    """(collision pieces, visual mesh) of object i: a box, a cylinder, an L of two boxes, or a sphere."""
    import trimesh

    kind = i % 4
    if kind == 0:  # the success test's reference point (the origin) is not the bbox centre
        pieces = [trimesh.creation.box((0.05, 0.03, 0.04))]
        pieces[0].apply_translation((-BOX_ORIGIN_OFFSET, 0.0, 0.0))
    elif kind == 1:
        pieces = [trimesh.creation.cylinder(radius=0.02, height=0.06, sections=24)]
    elif kind == 2:  # two convex pieces: the collision file must be read as several hulls
        a = trimesh.creation.box((0.06, 0.025, 0.03))
        b = trimesh.creation.box((0.025, 0.025, 0.03))
        b.apply_translation((0.0, 0.025, 0.0))
        pieces = [a, b]
    else:
        pieces = [trimesh.creation.icosphere(subdivisions=2, radius=0.022)]
    return pieces, trimesh.util.concatenate(pieces)


def _receptacle_meshes(i: int):
    import trimesh

    if i % 2 == 0:
        m = trimesh.creation.cylinder(radius=0.055, height=0.012, sections=32)
    else:
        m = trimesh.creation.box((0.11, 0.09, 0.01))
    return [m], m


def _write_item(folder: Path, pieces, visual, color, visual_name: str = "textured.glb") -> dict:
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    # collision.obj: one "o" block per convex piece (what RL4VLA's decomposed files hold)
    lines, base = [], 0
    for k, p in enumerate(pieces):
        lines.append(f"o piece_{k}")
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in p.vertices]
        lines += [f"f {a + 1 + base} {b + 1 + base} {c + 1 + base}" for a, b, c in p.faces]
        base += len(p.vertices)
    (folder / "collision.obj").write_text("\n".join(lines) + "\n")
    vis = visual.copy()
    material = trimesh.visual.material.PBRMaterial(baseColorFactor=[*color, 255])
    vis.visual = trimesh.visual.TextureVisuals(material=material)
    vis.export(str(folder / visual_name))
    lo, hi = visual.bounds
    return {"bbox": {"min": [round(float(x), 6) for x in lo], "max": [round(float(x), 6) for x in hi]}}


def write_rl4vla_folder(root: Path, seed: int = 0) -> Path:
    """Write the synthetic folder under ``root`` and return it (the folder to pass as ``--rl4vla-assets``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for kind, names, meshes in (("more_carrot", OBJECT_NAMES, _object_meshes),
                                ("more_plate", RECEPTACLE_NAMES, _receptacle_meshes)):  # fmt: skip
        db = {}
        for i, name in enumerate(names):
            key = f"{i + 1:03d}_{name}_1" if i else f"{i + 1:03d}_{name}_simpler"
            pieces, visual = meshes(i)
            color = [int(c) for c in rng.integers(30, 230, 3)]
            # item 3 has a textured.obj next to its glb: RL4VLA loads .obj first, then .dae, then .glb
            entry = _write_item(root / kind / key, pieces, visual, color)
            if i == 2:
                _write_item(root / kind / key, pieces, visual, color, "textured.obj")
            db[key] = {"name": name, **entry, "scales": [1.0], "density": float(rng.integers(400, 1200))}
        (root / kind / "model_db.json").write_text(json.dumps(db, indent=2))
    tables = {}
    (root / "more_table" / "imgs").mkdir(parents=True, exist_ok=True)
    (root / "more_table" / "textures").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(TABLE_NAMES):
        key = f"{i + 1:03d}_{name}_1.png"
        base = rng.integers(40, 220, 3)
        img = np.clip(base + rng.normal(0, 12, (480, 640, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "more_table" / "imgs" / key)
        tex = np.clip(rng.integers(0, 255, 3) + rng.normal(0, 40, (480, 640, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(tex).save(root / "more_table" / "textures" / f"{i + 1:03d}.png")
        tables[key] = {"name": name, "texture": f"{i + 1:03d}.png", "offset": [0.0, 0.0, 0.0],
                       "mix": 0.0 if i == 0 else 1.0}  # fmt: skip
    (root / "more_table" / "model_db.json").write_text(json.dumps(tables, indent=2))
    return root
