"""Table packs: versioned sets of table images seen from the policy camera (generated or imported).

A pack is a folder::

    manifest.json     format, name, source, pack_hash, view (the camera), entries (one per table, in the
                      AssetStore manifest format: id, kind="table", split, source, name, params, seed, sha256,
                      license, file), plus how the images were made (generator, control, gates, rejected, ...)
    tables/*.png      the images, at the camera's size
    control/          the render and condition images a generated pack was conditioned on
    generation/       settings, models and the per-attempt log of a generated pack (resume state)

Every table entry has ``params["view"]``: the env uses the image as the background of the policy view directly
(resized if the camera size differs) instead of projecting a tiling texture. The pack hash is derived from the
content only (view, and each table's id, split and image sha256), so it identifies what an evaluation sees.

:func:`load_pack` returns an :class:`~vla_gen_bench.assets.store.AssetStore` whose tables are the pack's and only
the pack's; objects, receptacles and overlays come from the base (procedural) pack.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.assets.store import POOLS, AssetEntry, AssetError, AssetStore, did_you_mean
from vla_gen_bench.paths import cache_dir

PACK_FORMAT = "vgb-table-pack"
PACK_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def packs_dir() -> Path:
    """Where named packs live: ``$VGB_CACHE/assets/packs``."""
    return cache_dir() / "assets" / "packs"


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise AssetError(
            f"invalid pack name {name!r}: use letters, digits, '_', '-', '.' (at most 64 characters)"
        )
    return name


def list_packs() -> list[str]:
    """Names of the packs in :func:`packs_dir` that have a manifest."""
    d = packs_dir()
    return sorted(p.name for p in d.iterdir() if (p / "manifest.json").exists()) if d.exists() else []


def resolve_pack(name_or_path: str | Path) -> Path:
    """Folder of a pack given by name (in :func:`packs_dir`) or by path."""
    p = Path(name_or_path).expanduser()
    if p.is_dir() and (p / "manifest.json").exists():
        return p
    s = str(name_or_path)
    if _NAME.match(s) and (packs_dir() / s / "manifest.json").exists():
        return packs_dir() / s
    for d in (p, packs_dir() / s if _NAME.match(s) else None):
        if d is not None and (d / "generation" / "settings.json").exists():
            raise AssetError(f"table pack in {d} is incomplete: its generation did not finish; re-run the same "
                             "'vgb assets generate-tables' command to resume it")  # fmt: skip
    if p.is_dir():
        raise AssetError(f"{p} is not a table pack (no manifest.json); generate one with 'vgb assets "
                         "generate-tables' or import images with 'vgb assets import-tables'")  # fmt: skip
    names = list_packs()
    hint = did_you_mean(s, names) + (f"; available packs: {', '.join(names)}" if names else "; no packs yet")
    raise AssetError(f"unknown table pack {s!r} (looked in {packs_dir()}){hint}. Create it with 'vgb assets "
                     f"generate-tables --pack {s}' or 'vgb assets import-tables --pack {s} --from DIR'")  # fmt: skip


def table_entry(id: str, split: str, source: str, name: str, params: dict, seed: int | None, sha256: str,
                license: str, file: str) -> AssetEntry:  # fmt: skip
    """A table's manifest entry (``params`` must hold ``view``)."""
    if "view" not in params:
        raise ValueError("a table pack entry needs params['view']")
    return AssetEntry(id=id, kind="table", split=split, source=source, name=name, params=params, seed=seed,
                      sha256=sha256, license=license, file=file)  # fmt: skip


def compute_pack_hash(entries: list[AssetEntry] | list[dict], view: Mapping[str, Any]) -> str:
    """Content hash of a pack (16 hex digits): the view and every table's id, split and image sha256."""
    rows = sorted((e["id"], e["split"], e["sha256"]) if isinstance(e, dict) else (e.id, e.split, e.sha256)
                  for e in entries)  # fmt: skip
    payload = json.dumps({"view": dict(view), "tables": rows}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def write_manifest(root: Path, name: str, source: str, view: Mapping[str, Any], entries: list[AssetEntry],
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write ``root/manifest.json`` atomically; return it. Deterministic for the same inputs."""
    ids = [e.id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise AssetError(f"duplicate table ids in pack {name!r}: {dupes}")
    manifest = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "name": name,
        "source": source,
        "pack_hash": compute_pack_hash(entries, view),
        "view": dict(view),
        "counts": {s: sum(e.split == s for e in entries) for s in POOLS},
        **dict(extra or {}),
        "entries": [asdict(e) for e in entries],
    }
    root = Path(root)
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    tmp.replace(root / "manifest.json")
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """The validated manifest of the pack in ``root`` (structure only; :func:`verify_pack` checks the files).

    Raises:
        AssetError: missing or malformed manifest, naming the problem and what to do.
    """
    root = Path(root)
    path = root / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise AssetError(f"no manifest.json in {root}: not a table pack, or its generation did not finish "
                         "(re-run the same 'vgb assets generate-tables' command to resume)") from None  # fmt: skip
    except (OSError, json.JSONDecodeError) as e:
        raise AssetError(
            f"malformed table pack manifest {path}: {e}; regenerate or re-import the pack"
        ) from e
    if not isinstance(raw, dict) or raw.get("format") != PACK_FORMAT:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise AssetError(f"{path} is not a table pack manifest (format {got!r}, expected {PACK_FORMAT!r}); the "
                         "procedural pack is used without --asset-pack")  # fmt: skip
    if raw.get("version") != PACK_VERSION:
        raise AssetError(f"{path}: pack format version {raw.get('version')!r} is not supported (this vla-gen-bench "
                         f"reads version {PACK_VERSION}); regenerate the pack with this version")  # fmt: skip
    missing = [k for k in ("name", "source", "pack_hash", "view", "entries") if k not in raw]
    if missing:
        raise AssetError(f"malformed table pack manifest {path}: missing {missing}")
    entries = []
    for n, e in enumerate(raw["entries"]):
        try:
            entry = AssetEntry(**e)
        except TypeError as err:
            raise AssetError(f"malformed table pack manifest {path}: entry #{n}: {err}") from None
        where = f"{path}: entry {entry.id!r}"
        if entry.kind != "table":
            raise AssetError(f"{where} is a {entry.kind!r}; a table pack holds only tables")
        if entry.split not in POOLS:
            raise AssetError(f"{where}: unknown split {entry.split!r}; allowed: {POOLS}")
        if not isinstance(entry.params, dict) or "view" not in entry.params:
            raise AssetError(f"{where}: params['view'] is missing (every table must be a camera view)")
        f = entry.file
        if not f or Path(f).is_absolute() or ".." in Path(f).parts:
            raise AssetError(f"{where}: file {f!r} must be a path inside the pack")
        entries.append(entry)
    raw["entries"] = entries
    return raw


def verify_pack(root: Path, manifest: dict[str, Any] | None = None) -> list[str]:
    """Problems of the pack in ``root`` (empty when intact): missing images, sha256 or pack-hash mismatches."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    m = manifest or read_manifest(root)
    problems = []
    for e in m["entries"]:
        path = root / e.file
        if not path.exists():
            problems.append(f"{e.id}: image file missing: {path}")
            continue
        try:
            img = np.asarray(Image.open(path).convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            problems.append(f"{e.id}: cannot read {path}: {err}")
            continue
        got = hashlib.sha256(img.tobytes()).hexdigest()
        if got != e.sha256:
            problems.append(f"{e.id}: image sha256 {got[:12]}... does not match the manifest's {e.sha256[:12]}... "
                            f"({path} changed after the pack was made)")  # fmt: skip
    want = compute_pack_hash(m["entries"], m["view"])
    if want != m["pack_hash"]:
        problems.append(
            f"pack_hash {m['pack_hash']} does not match the content ({want}): the manifest was edited"
        )
    if not any(e.split == "train" for e in m["entries"]):
        problems.append("no train tables (the in-distribution setting needs at least one)")
    return problems


def load_pack(name_or_path: str | Path, base: AssetStore | None = None, verify: bool = True) -> AssetStore:
    """An AssetStore whose tables are the pack's (only) and whose other assets come from ``base``.

    Args:
        name_or_path: pack name (in ``$VGB_CACHE/assets/packs``) or folder.
        base: pack of objects, receptacles and overlays (default: the built-in procedural pack).
        verify: re-hash every image against the manifest (a few ms per image).
    Raises:
        AssetError: unknown pack, malformed manifest, missing or altered images.
    """
    from vla_gen_bench.assets.store import default_store

    root = resolve_pack(name_or_path)
    m = read_manifest(root)
    if verify:
        problems = verify_pack(root, m)
        if problems:
            raise AssetError(f"table pack {m['name']!r} ({root}) is not intact:\n  " + "\n  ".join(problems) +
                             "\nregenerate it ('vgb assets generate-tables' with the same options resumes and "
                             "replaces missing images) or re-import it")  # fmt: skip
    info = {
        "name": m["name"],
        "hash": m["pack_hash"],
        "source": m["source"],
        "root": str(root),
        "view": m["view"],
    }
    return AssetStore.with_tables(base or default_store(), m["entries"], root, info)


def _camera_view(camera: Any) -> dict[str, Any]:
    if isinstance(camera, Mapping):
        return dict(camera)
    fov = (
        camera.fov_y if getattr(camera, "fx", None) is None else 2 * math.atan(camera.height / 2 / camera.fx)
    )
    return {"width": camera.width, "height": camera.height, "fov_y": fov, "eye": list(camera.eye),
            "target": list(camera.target)}  # fmt: skip


def check_view(store: AssetStore, camera: Any) -> None:
    """Refuse a generated pack made for another camera frustum (its tables would not line up with the scene).

    Args:
        store: a store from :func:`load_pack` (a plain store passes).
        camera: the run's camera: a ``CameraSpec`` or a view dict (``envs.table_render.view_spec``). The size
            may differ (images are resized); aspect ratio, field of view and pose must match.
    Raises:
        AssetError: the pack is camera-aligned and the frustum differs. Imported packs are never aligned and pass.
    """
    pack = store.table_pack
    if not pack or not pack["view"].get("aligned"):
        return
    v, c = pack["view"], _camera_view(camera)
    diffs = []
    if abs(v["width"] / v["height"] - c["width"] / c["height"]) > 1e-3:
        diffs.append(f"aspect {v['width']}x{v['height']} vs {c['width']}x{c['height']}")
    if abs(v["fov_y"] - c["fov_y"]) > 1e-4:
        diffs.append(
            f"vertical field of view {math.degrees(v['fov_y']):.2f} vs {math.degrees(c['fov_y']):.2f} deg"
        )
    for k in ("eye", "target"):
        if np.abs(np.asarray(v[k]) - np.asarray(c[k])).max() > 1e-5:
            diffs.append(f"camera {k} {v[k]} vs {list(c[k])}")
    if diffs:
        raise AssetError(f"table pack {pack['name']!r} was made for camera {v.get('camera')!r} and does not line "
                         f"up with this run's camera ({'; '.join(diffs)}); generate a pack for it: 'vgb assets "
                         f"generate-tables --camera ...'")  # fmt: skip


# ---------------------------------------------------------------------------- importer
def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") or "image"


def fit_image(img: np.ndarray, width: int, height: int, fit: str = "crop") -> np.ndarray:
    """Resize to (width, height): ``crop`` keeps the aspect ratio (centre crop first), ``stretch`` does not."""
    from PIL import Image

    if fit not in ("crop", "stretch"):
        raise AssetError(f"unknown fit {fit!r}; allowed: crop, stretch")
    pil = Image.fromarray(img)
    if fit == "crop":
        w, h = pil.size
        target = width / height
        if w / h > target:  # too wide
            cw = round(h * target)
            pil = pil.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
        elif w / h < target:
            ch = round(w / target)
            pil = pil.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.LANCZOS)
    return np.asarray(pil)


def import_tables(
    src: Path,
    root: Path,
    name: str,
    view: Mapping[str, Any],
    unseen: str | None = None,
    fit: str = "crop",
    license: str = "unknown (imported; check the terms of the source)",
    dup_max: float = 0.04,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Import a folder of table images (e.g. RL4VLA's 640x480 photographs) as a pack for ``view``'s camera.

    Images are resized to the camera's size. They are *not* aligned with the simulated table (a photograph's table
    edge is wherever the photographer's camera put it): the pack's view says ``aligned: false``.

    Args:
        src: folder searched recursively for .png/.jpg/.jpeg/.webp/.bmp files (sorted by relative path).
        root: pack folder to create.
        name: pack name.
        view: the camera (``envs.table_render.view_spec``).
        unseen: glob (on the relative path or file name) of the images that form the unseen split; the rest are
            train. None: all train.
        fit: ``crop`` (centre crop to the camera's aspect ratio, then resize) or ``stretch``.
        dup_max: thumbnail distance at or below which two images count as near-duplicates; a duplicate across
            the splits is an error (it would leak a training table into the unseen split).
        overwrite: replace an existing pack in ``root``.
    Raises:
        AssetError: no images, an unseen glob that matches nothing or everything, unreadable images, duplicates
            across splits, or an existing pack without ``overwrite``.
    """
    from PIL import Image, UnidentifiedImageError

    from vla_gen_bench.assets.sdgen import nearest, thumbnail

    src, root = Path(src), Path(root)
    if not src.is_dir():
        raise AssetError(f"--from {src}: not a folder")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AssetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {src}")
    rels = [f.relative_to(src).as_posix() for f in files]
    if unseen is None:
        splits = ["train"] * len(files)
    else:
        splits = ["unseen" if fnmatch.fnmatch(r, unseen) or fnmatch.fnmatch(Path(r).name, unseen) else "train"
                  for r in rels]  # fmt: skip
        if "unseen" not in splits:
            raise AssetError(f"--unseen {unseen!r} matches none of the {len(files)} images under {src}")
    if "train" not in splits:
        raise AssetError(f"--unseen {unseen!r} matches every image; at least one must stay in train")
    if (root / "manifest.json").exists() or (root / "tables").exists():
        if not overwrite:
            raise AssetError(f"a pack already exists in {root}; pass --overwrite to replace it")
        shutil.rmtree(root)
    (root / "tables").mkdir(parents=True, exist_ok=True)
    w, h = int(view["width"]), int(view["height"])
    pack_view = {**dict(view), "aligned": False, "fit": fit}
    entries, thumbs, warnings_ = [], {}, []
    used: set[str] = set()
    for f, rel, split in zip(files, rels, splits, strict=True):
        data = f.read_bytes()
        try:
            with Image.open(f) as im:
                orig = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise AssetError(f"cannot read image {f}: {e}") from e
        img = fit_image(orig, w, h, fit)
        tid = "img_" + _slug(Path(rel).stem)
        if tid in used:
            tid = "img_" + _slug(rel.rsplit(".", 1)[0])
        k = 2
        while tid in used:
            tid, k = f"{tid}_{k}", k + 1
        used.add(tid)
        dist, other = nearest(img, thumbs)
        if other is not None and dist <= dup_max:
            other_split = next(e.split for e in entries if e.id == other)
            if other_split != split:
                raise AssetError(f"{rel} ({split}) is a near-duplicate of {other} ({other_split}), distance "
                                 f"{dist:.4f} <= {dup_max}: it would leak a training table into the unseen split")  # fmt: skip
            warnings_.append(f"{rel} is a near-duplicate of {other} (distance {dist:.4f})")
        thumbs[tid] = thumbnail(img)
        file = f"tables/{tid}.png"
        Image.fromarray(img).save(root / file, format="PNG")
        params = {"view": pack_view, "original": rel, "original_size": [int(orig.shape[1]), int(orig.shape[0])],
                  "original_sha256": hashlib.sha256(data).hexdigest(),
                  "scores": {"dup_distance": None if other is None else round(dist, 4), "dup_of": other}}  # fmt: skip
        entries.append(table_entry(tid, split, "import", Path(rel).stem.replace("_", " "), params, None,
                                   hashlib.sha256(img.tobytes()).hexdigest(), license, file))  # fmt: skip
    extra = {"imported_from": {"files": len(files), "unseen_glob": unseen, "fit": fit}, "warnings": warnings_}
    return write_manifest(root, name, "import", view=pack_view, entries=entries, extra=extra)
