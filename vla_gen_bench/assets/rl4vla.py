"""Asset source ``rl4vla``: objects, receptacles, tables and overlay textures read from a folder in RL4VLA's layout.

The folder is RL4VLA's ``ManiSkill/mani_skill/assets/carrot`` (or any folder laid out the same way)::

    more_carrot/model_db.json          {"<item folder>": {"name", "bbox": {"min", "max"}, "scales", "density"}, ...}
    more_carrot/<item folder>/collision.obj     convex pieces (already decomposed)
    more_carrot/<item folder>/textured.glb      visual (textured.obj / textured.dae are used first when present)
    more_plate/...                     the same for receptacles
    more_table/model_db.json           {"<image file>": {"name", "texture", "mix", "offset"}, ...}
    more_table/imgs/<image file>       640x480 table photographs seen from the paper's camera
    more_table/textures/<texture>      textures of the dynamic-texture / dynamic-noise variants

Splits follow the paper (spec rl4vla.md §2-§3), in ``model_db.json`` order: objects 16 train + the rest unseen;
receptacles 1 train (the plate) + the rest unseen; tables 16 train + the rest unseen; overlays = the textures of
table entries 2-17 (RL4VLA's texture pool, idx 1-16). Objects and receptacles become mesh assets
(:class:`MeshAsset`): the task builds them from the files (``PutOnReceptacleEnv._build_mesh_asset``), with the
bounding box, scale and density from ``model_db.json``, and every asset's actor frame moved to the bottom of its
bounding box (the task's convention: z = 0 is where an asset rests).

The store's pack hash is the folder's content hash (every file under the three folders), so results are only
compared between runs on identical files. Nothing here downloads: missing or incomplete folders raise
:class:`~vla_gen_bench.assets.store.AssetError` naming what to fetch and where it goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.assets.grasp import GraspPlan, plan_grasp
from vla_gen_bench.assets.procedural import bbox_grasp
from vla_gen_bench.assets.store import AssetEntry, AssetError, AssetStore

FOLDERS = {"object": "more_carrot", "receptacle": "more_plate", "table": "more_table"}
TRAIN_COUNT = {"object": 16, "receptacle": 1, "table": 16}
OVERLAY_ENTRIES = (1, 17)  # table entries [1, 17) lend their texture to the overlay pool (textures 002-017)
VISUAL_FILES = (
    "textured.obj",
    "textured.dae",
    "textured.glb",
)  # first one present wins (as RL4VLA loads them)
COLLISION_FILE = "collision.obj"
REPO_SUBDIR = Path("ManiSkill/mani_skill/assets/carrot")
ENV_VAR = "VGB_RL4VLA_ASSETS"
SOURCE = "https://github.com/gen-robot/RL4VLA"
HOW_TO_GET = (f"clone {SOURCE} with git-lfs ('git lfs install && git clone {SOURCE}', or 'git lfs pull' in an existing "
              f"clone) and pass its folder {REPO_SUBDIR} (or the clone itself) as --rl4vla-assets, or set ${ENV_VAR}; "
              "see docs/paper_profile.md")  # fmt: skip
VIEW = {"camera": "rl4vla", "width": 640, "height": 480}
LICENSE = "as distributed by RL4VLA (gen-robot/RL4VLA); not redistributed by vla-gen-bench"


@dataclass(frozen=True)
class MeshAsset:
    """An object or receptacle given by mesh files (duck-types :class:`~vla_gen_bench.assets.procedural.ShapeAsset`
    for the task: ``bounds``, ``half_extents``, ``grasp_pose``, ``density``; plus the files to build it from)."""

    id: str
    kind: str  # "object" | "receptacle"
    name: str
    split: str  # "train" | "unseen"
    collision_file: Path
    visual_file: Path
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]
    scale: float = 1.0
    density: float = 1000.0
    params: dict = field(default_factory=dict, compare=False, hash=False)
    grasp: tuple[float, float, float] | None = None

    @property
    def mesh_offset(self) -> tuple[float, float, float]:
        """Translation applied to the meshes so the actor frame is at the bottom of the bounding box (xy unchanged)."""
        return (0.0, 0.0, -float(self.bbox_min[2]) * self.scale)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box in the actor frame (bottom at z = 0), scaled."""
        off = np.asarray(self.mesh_offset)
        return np.asarray(self.bbox_min) * self.scale + off, np.asarray(self.bbox_max) * self.scale + off

    @property
    def half_extents(self) -> np.ndarray:
        lo, hi = self.bounds
        return (hi - lo) / 2

    @property
    def grasp_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the grasp: ``grasp`` when given, else planned from the collision pieces
        (:func:`~vla_gen_bench.assets.grasp.plan_grasp`: across the footprint's principal axis, near the centre of
        mass), else the bounding-box centre across its narrower side when the file cannot be read."""
        if self.grasp is not None:
            return self.grasp
        plan = self.grasp_plan
        return (plan.x, plan.y, plan.yaw) if plan is not None else bbox_grasp(*self.bounds)

    @property
    def grasp_height(self) -> float | None:
        """Height above the bottom at which the fingers should pinch (the planned slice's widest level), or None."""
        plan = self.grasp_plan
        return plan.z if plan is not None else None

    @cached_property
    def grasp_plan(self) -> GraspPlan | None:
        """The grasp planned from ``collision_file`` (scaled, bottom at z = 0); None when it holds no vertices."""
        off = np.asarray(self.mesh_offset)
        pieces = [v * self.scale + off for v in read_obj_pieces(self.collision_file)]
        try:
            return plan_grasp(pieces)
        except ValueError:
            return None


def read_obj_pieces(path: Path) -> list[np.ndarray]:
    """The vertices of each object (``o``) or group (``g``) of a Wavefront OBJ file, as SAPIEN splits a collision file
    into convex pieces; one piece when the file names none. Only vertices that the piece's faces use."""
    verts: list[tuple[float, float, float]] = []
    pieces: list[set[int]] = [set()]
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            tag, _, rest = line.strip().partition(" ")
            if tag == "v":
                verts.append(tuple(float(x) for x in rest.split()[:3]))
            elif tag in ("o", "g") and pieces[-1]:
                pieces.append(set())
            elif tag == "f":
                for tok in rest.split():
                    i = int(tok.split("/")[0])
                    pieces[-1].add(i - 1 if i > 0 else len(verts) + i)
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    return [v[sorted(p)] for p in pieces if p]


def find_root(path: str | Path | None = None) -> Path:
    """The asset folder: ``path`` (the ``carrot`` folder itself or an RL4VLA clone), else ``$VGB_RL4VLA_ASSETS``.

    Raises:
        AssetError: no path given, or the path holds no RL4VLA layout (says what to get and where).
    """
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        raise AssetError(f"the rl4vla profile needs RL4VLA's asset folder and none was given; {HOW_TO_GET}")
    p = Path(path).expanduser()
    if not p.exists():
        raise AssetError(f"RL4VLA asset folder {p} does not exist; {HOW_TO_GET}")
    for cand in (p, p / REPO_SUBDIR, p / "carrot"):
        if any((cand / f).is_dir() for f in FOLDERS.values()):
            return cand
    raise AssetError(f"{p} is not in RL4VLA's layout (no {', '.join(FOLDERS.values())} folders there or under "
                     f"{REPO_SUBDIR}); {HOW_TO_GET}")  # fmt: skip


def _read_db(root: Path, kind: str) -> dict[str, dict]:
    path = root / FOLDERS[kind] / "model_db.json"
    if not path.exists():
        raise AssetError(f"missing {path}; {HOW_TO_GET}")
    try:
        db = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AssetError(f"{path} is not valid JSON ({e}); re-fetch it ({HOW_TO_GET})") from e
    if not isinstance(db, dict) or not all(isinstance(v, dict) for v in db.values()):
        raise AssetError(f"{path}: expected an object mapping item names to their fields")
    return db


def _is_lfs_pointer(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(40).startswith(b"version https://git-lfs")


def _safe_id(prefix: str, key: str) -> str:
    return f"{prefix}_" + re.sub(r"[^A-Za-z0-9]+", "_", key.removesuffix(".png")).strip("_")


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _folder_sha(folder: Path, extra: Any = None) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder).as_posix()}\0{_file_sha(f)}\n".encode())
    return h.hexdigest()


def content_hash(root: Path) -> str:
    """16 hex digits over every file (relative path + sha256) under the three RL4VLA folders."""
    files = sorted(p for kind in FOLDERS.values() for p in (root / kind).rglob("*") if p.is_file())
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _content_hash(str(root), stamp)


@lru_cache(maxsize=8)
def _content_hash(root: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for path, _size, _mtime in stamp:
        p = Path(path)
        h.update(f"{p.relative_to(root).as_posix()}\0{_file_sha(p)}\n".encode())
    return h.hexdigest()[:16]


def _mesh_assets(root: Path, kind: str, problems: list[str]) -> list[MeshAsset]:
    db = _read_db(root, kind)
    n_train = TRAIN_COUNT[kind]
    if len(db) <= n_train:
        problems.append(f"{root / FOLDERS[kind] / 'model_db.json'} lists {len(db)} {kind}s; the paper's splits need "
                        f"{n_train} train + at least 1 unseen")  # fmt: skip
    out = []
    for i, (key, item) in enumerate(db.items()):
        folder = root / FOLDERS[kind] / key
        where = f"{FOLDERS[kind]}/{key}"
        try:
            lo = tuple(float(x) for x in item["bbox"]["min"])
            hi = tuple(float(x) for x in item["bbox"]["max"])
            name = str(item["name"])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"model_db entry {where!r} lacks name / bbox.min / bbox.max ({e})")
            continue
        if len(lo) != 3 or len(hi) != 3 or any(a >= b for a, b in zip(lo, hi, strict=True)):
            problems.append(f"model_db entry {where!r}: bbox min must be below max in x, y and z")
            continue
        scales = item.get(
            "scales", item.get("scale", [1.0])
        )  # RL4VLA's code reads "scale", its files say "scales"
        scale = float(scales[0] if isinstance(scales, (list, tuple)) else scales)
        collision = folder / COLLISION_FILE
        visual = next((folder / v for v in VISUAL_FILES if (folder / v).exists()), None)
        if not collision.exists():
            problems.append(f"missing {collision}")
            continue
        if visual is None:
            problems.append(f"missing {folder}/textured.glb (or textured.dae / textured.obj)")
            continue
        lfs = [f.name for f in (collision, visual) if _is_lfs_pointer(f)]
        if lfs:
            problems.append(
                f"{where}: {', '.join(lfs)} is a git-lfs pointer, not the file (run 'git lfs pull')"
            )
            continue
        split = "train" if i < n_train else "unseen"
        params = {"rl4vla": key, "bbox": {"min": list(lo), "max": list(hi)}, "scale": scale,
                  "density": float(item.get("density", 1000.0)), "visual": visual.name}  # fmt: skip
        out.append(MeshAsset(_safe_id("obj" if kind == "object" else "rec", key), kind, name, split, collision,
                             visual, lo, hi, scale, float(item.get("density", 1000.0)), params))  # fmt: skip
    return out


def load_rl4vla(path: str | Path | None = None) -> AssetStore:
    """An :class:`AssetStore` over an RL4VLA-layout folder (see the module docstring).

    Args:
        path: the ``carrot`` folder or an RL4VLA clone; None = ``$VGB_RL4VLA_ASSETS``. Every table and texture
            image is decoded once (its pixel hash is the manifest's sha256, as :meth:`AssetStore.verify` checks).

    Raises:
        AssetError: one message listing everything that is missing or malformed, and how to get the files.
    """
    root = find_root(path)
    problems: list[str] = []
    for kind, folder in FOLDERS.items():
        if not (root / folder).is_dir():
            problems.append(f"missing folder {root / folder} ({kind}s)")
    if problems:
        raise AssetError(f"incomplete RL4VLA asset folder {root}: " + "; ".join(problems) + f". {HOW_TO_GET}")
    shapes = _mesh_assets(root, "object", problems) + _mesh_assets(root, "receptacle", problems)
    entries = [AssetEntry(a.id, a.kind, a.split, "rl4vla", a.name, dict(a.params), None,
                          _folder_sha(a.collision_file.parent, a.params), LICENSE) for a in shapes]  # fmt: skip

    tables = _read_db(root, "table")
    if len(tables) < OVERLAY_ENTRIES[1] or len(tables) <= TRAIN_COUNT["table"]:
        problems.append(f"{root / FOLDERS['table'] / 'model_db.json'} lists {len(tables)} tables; the paper's splits "
                        f"need {TRAIN_COUNT['table']} train + at least 1 unseen, and the overlay pool needs "
                        f"{OVERLAY_ENTRIES[1]} entries")  # fmt: skip
    overlays: list[AssetEntry] = []
    for i, (key, item) in enumerate(tables.items()):
        img = Path(FOLDERS["table"]) / "imgs" / key
        sha = _image_sha(root / img, problems)
        if sha is None:
            continue
        params = {"view": dict(VIEW), "rl4vla": key, "texture": item.get("texture"), "mix": item.get("mix")}
        split = "train" if i < TRAIN_COUNT["table"] else "unseen"
        entries.append(AssetEntry(_safe_id("table", key), "table", split, "rl4vla", str(item.get("name", key)),
                                  params, None, sha, LICENSE, img.as_posix()))  # fmt: skip
        if OVERLAY_ENTRIES[0] <= i < OVERLAY_ENTRIES[1]:
            tex = item.get("texture")
            if not tex:
                problems.append(
                    f"more_table/model_db.json entry {key!r} names no texture (the overlay pool needs it)"
                )
                continue
            rel = Path(FOLDERS["table"]) / "textures" / str(tex)
            tsha = _image_sha(root / rel, problems)
            if tsha is not None:
                overlays.append(AssetEntry(_safe_id("tex", str(tex)), "overlay", "unseen", "rl4vla", f"texture {tex}",
                                           {"rl4vla": str(tex), "mix": item.get("mix")}, None, tsha, LICENSE,
                                           rel.as_posix()))  # fmt: skip
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise AssetError(f"RL4VLA asset folder {root} is incomplete or malformed: {shown}. {HOW_TO_GET}")
    source = {"kind": "rl4vla", "root": str(root), "content_hash": content_hash(root)}
    return AssetStore(root, entries + overlays, {a.id: a for a in shapes}, source=source)


def _image_sha(path: Path, problems: list[str]) -> str | None:
    """sha256 of the decoded RGB pixels (what ``AssetStore.verify`` re-computes), or None with a problem noted."""
    if not path.exists():
        problems.append(f"missing {path}")
        return None
    if _is_lfs_pointer(path):
        problems.append(f"{path} is a git-lfs pointer, not the image (run 'git lfs pull')")
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        problems.append(f"{path} is not a readable image ({e})")
        return None
    return hashlib.sha256(pixels.tobytes()).hexdigest()


def lowest_point(shape: MeshAsset) -> float:
    """Lowest z of the asset's collision pieces in its actor frame (scaled; the frame is the bbox bottom, so it is
    0 when ``model_db.json``'s bbox is exact and below 0 where the mesh reaches under it); 0 for an empty file."""
    return _lowest_point(str(shape.collision_file), float(shape.scale), float(shape.mesh_offset[2]))


@lru_cache(maxsize=256)
def _lowest_point(path: str, scale: float, offset_z: float) -> float:
    pieces = read_obj_pieces(Path(path))
    return min((float(v[:, 2].min()) * scale + offset_z for v in pieces if len(v)), default=0.0)
