"""AssetStore: every object, receptacle, table appearance and overlay texture resolves through here.

A store is a *pack*: a folder with ``manifest.json`` (one entry per asset: id, kind, split, source, name, params,
seed, sha256, license) and the files the entries name. The pack hash (sha256 over the sorted (id, sha256) pairs) is
written into every result row, so numbers are only ever compared within one pack.

``AssetStore.procedural()`` is the built-in pack: deterministic from code + seeds, materialised into the cache by
``vgb assets build`` (or lazily on first use). Nothing downloads.

A *table pack* (generated with SD + ControlNet or imported, see :mod:`vla_gen_bench.assets.packs`) replaces the table
appearances of a base pack: :meth:`AssetStore.with_tables` keeps the base's objects, receptacles and overlays and
takes every table from the table pack (never a mix), and its files resolve from the table pack's folder. Table
entries whose ``params["view"]`` is set are pre-rendered policy-camera views rather than tiling textures.

``AssetStore.rl4vla(path)`` reads a folder in RL4VLA's layout (:mod:`vla_gen_bench.assets.rl4vla`): its objects and
receptacles are mesh files, and its pack hash is the folder's content hash (``source["content_hash"]``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.assets import procedural
from vla_gen_bench.paths import cache_dir

KINDS = ("object", "receptacle", "table", "overlay")
POOLS = ("train", "unseen")
"""The asset pools: ``train`` (seen in training) and ``unseen`` (held out); a manifest entry's ``split`` key."""
PROCEDURAL_VERSION = 1
TEXTURE_SIZE = 256


class AssetError(KeyError):
    """Unknown asset id / kind / split, or a malformed pack. The message says what to do."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class AssetEntry:
    """One asset's line in a pack's ``manifest.json`` (the field names are the file's keys)."""

    id: str
    kind: str
    split: str
    source: str
    name: str
    params: dict[str, Any]
    seed: int | None
    sha256: str
    license: str
    file: str | None = None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shape_digest(a: procedural.ShapeAsset) -> str:
    payload = json.dumps(
        {"parts": [asdict(p) for p in a.parts], "density": a.density, "name": a.name, "grasp": a.grasp},
        sort_keys=True,
    )
    return _sha(payload.encode())


def _code_fingerprint() -> str:
    """Hash of the procedural generator's source: a pack built by older code is rebuilt, never silently reused."""
    return _sha(Path(procedural.__file__).read_bytes())[:16]


def _stored_fingerprint(root: Path) -> str | None:
    try:
        return json.loads((Path(root) / "manifest.json").read_text()).get("code")
    except (OSError, json.JSONDecodeError):
        return None


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class AssetStore:
    """A loaded asset pack. Use :meth:`procedural` for the built-in one."""

    def __init__(
        self,
        root: Path,
        entries: list[AssetEntry],
        shapes: dict[str, procedural.ShapeAsset],
        roots: dict[str, Path] | None = None,
        table_pack: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
    ):
        """A store over ``entries`` whose files are relative to ``root``.

        Args:
            root: folder the entries' ``file`` paths are relative to.
            entries: the manifest entries.
            shapes: geometry of the objects and receptacles, by id.
            roots: per-entry folder overriding ``root`` (entries taken from another pack).
            table_pack: ``{"name", "hash", "source", "root", "view"}`` of the table pack whose tables this store
                uses (None for a plain pack).
            source: where a store not built from a manifest came from, e.g. ``{"kind": "rl4vla", "root",
                "content_hash"}``; a ``content_hash`` there is the store's :attr:`pack_hash`.
        """
        self.root = Path(root)
        self.entries = {e.id: e for e in entries}
        self._shapes = shapes
        self._roots = {k: Path(v) for k, v in (roots or {}).items()}
        self.table_pack = dict(table_pack) if table_pack else None
        self.source = dict(source) if source else None
        self._images: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------- construction
    @classmethod
    def procedural(cls, root: Path | None = None, build: bool = True) -> AssetStore:
        """The built-in pack; textures are rendered into ``root`` (cache by default) on first use."""
        root = Path(root) if root else cache_dir() / "assets" / f"procedural_v{PROCEDURAL_VERSION}"
        shapes = {a.id: a for a in procedural.objects() + procedural.receptacles()}
        if build and _code_fingerprint() != _stored_fingerprint(root):
            return cls.build_procedural(
                root
            )  # first use, or the generator code changed since the pack was built
        if not (root / "manifest.json").exists():
            raise AssetError(f"no asset pack at {root}; run 'vgb assets build'")
        return cls.load(root, shapes=shapes)

    @classmethod
    def build_procedural(cls, root: Path) -> AssetStore:
        """Materialise the procedural pack into ``root`` (textures as PNG + manifest.json); deterministic."""
        from PIL import Image

        root = Path(root)
        (root / "textures").mkdir(parents=True, exist_ok=True)
        entries: list[AssetEntry] = []
        shapes = {}
        for a in procedural.objects() + procedural.receptacles():
            shapes[a.id] = a
            entries.append(AssetEntry(a.id, a.kind, a.split, "procedural", a.name, dict(a.params),
                                      None, _shape_digest(a), "CC0 (generated)"))  # fmt: skip
        for t in procedural.tables() + procedural.overlays():
            img = procedural.render_texture(t, TEXTURE_SIZE)
            rel = f"textures/{t.id}.png"
            Image.fromarray(img).save(root / rel)
            params = {"family": t.family, "colors": [list(c) for c in t.colors], "size": TEXTURE_SIZE}
            if t.kind == "table":
                params["tile_m"] = t.tile_m
            entries.append(AssetEntry(t.id, t.kind, t.split, "procedural", t.name, params, t.seed,
                                      _sha(img.tobytes()), "CC0 (generated)", rel))  # fmt: skip
        manifest = {
            "pack": "procedural",
            "version": PROCEDURAL_VERSION,
            "code": _code_fingerprint(),
            "entries": [asdict(e) for e in entries],
        }
        tmp = root / f"manifest.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, root / "manifest.json")
        return cls(root, entries, shapes)

    @classmethod
    def load(cls, root: Path, shapes: dict[str, procedural.ShapeAsset] | None = None) -> AssetStore:
        root = Path(root)
        try:
            raw = json.loads((root / "manifest.json").read_text())
            entries = [AssetEntry(**e) for e in raw["entries"]]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise AssetError(f"malformed asset pack manifest {root / 'manifest.json'}: {e}; rebuild it "
                             "('vgb assets build --force' for the procedural pack)") from e  # fmt: skip
        return cls(
            root, entries, shapes or {a.id: a for a in procedural.objects() + procedural.receptacles()}
        )

    @classmethod
    def rl4vla(cls, path: Path | str | None = None) -> AssetStore:
        """A store over a folder in RL4VLA's layout (see :func:`vla_gen_bench.assets.rl4vla.load_rl4vla`)."""
        from vla_gen_bench.assets.rl4vla import load_rl4vla

        return load_rl4vla(path)

    @classmethod
    def with_tables(
        cls, base: AssetStore, tables: list[AssetEntry], root: Path, table_pack: dict[str, Any]
    ) -> AssetStore:
        """A store with ``base``'s objects, receptacles and overlays and *only* the given tables (files in ``root``).

        Raises:
            AssetError: no tables, a non-table entry, or a table id that clashes with one of ``base``'s other assets.
        """
        if not tables:
            raise AssetError(f"table pack {table_pack.get('name')!r} has no tables")
        keep = [e for e in base.entries.values() if e.kind != "table"]
        taken = {e.id for e in keep}
        for t in tables:
            if t.kind != "table":
                raise AssetError(f"table pack entry {t.id!r} is a {t.kind}, not a table")
            if t.id in taken:
                raise AssetError(f"table pack entry {t.id!r} clashes with an asset of the base pack; rename it")  # fmt: skip
        roots = {e.id: base._roots.get(e.id, base.root) for e in keep}
        roots.update({t.id: Path(root) for t in tables})
        return cls(base.root, keep + list(tables), base._shapes, roots=roots, table_pack=table_pack)

    # ----------------------------------------------------------------- queries
    @property
    def pack_hash(self) -> str:
        """Content hash of the whole store (16 hex digits): every asset, so a table pack changes it. A store read
        from a folder (``source["content_hash"]``, e.g. RL4VLA's) reports that folder's content hash."""
        if self.source and self.source.get("content_hash"):
            return str(self.source["content_hash"])
        pairs = sorted((e.id, e.sha256) for e in self.entries.values())
        return _sha(json.dumps(pairs).encode())[:16]

    def ids(self, kind: str, pool: str | None = None) -> list[str]:
        """Asset ids of one kind (and pool: ``train`` or ``unseen``), in manifest order."""
        if kind not in KINDS:
            raise AssetError(
                f"unknown asset kind {kind!r}{did_you_mean(kind, list(KINDS))}; allowed: {KINDS}"
            )
        if pool is not None and pool not in POOLS:
            raise AssetError(
                f"unknown asset pool {pool!r}{did_you_mean(pool, list(POOLS))}; allowed: {POOLS}"
            )
        return [e.id for e in self.entries.values() if e.kind == kind and (pool is None or e.split == pool)]

    def entry(self, asset_id: str) -> AssetEntry:
        try:
            return self.entries[asset_id]
        except KeyError:
            raise AssetError(
                f"unknown asset id {asset_id!r}{did_you_mean(asset_id, list(self.entries))}; "
                "see 'vgb assets list'"
            ) from None

    def shape(self, asset_id: str) -> procedural.ShapeAsset:
        """Geometry of an object or receptacle."""
        e = self.entry(asset_id)
        if e.kind not in ("object", "receptacle"):
            raise AssetError(f"asset {asset_id!r} is a {e.kind}, not an object or receptacle")
        return self._shapes[asset_id]

    def name(self, asset_id: str) -> str:
        return self.entry(asset_id).name

    def image(self, asset_id: str) -> np.ndarray:
        """(H, W, 3) uint8 texture of a table or overlay (cached in memory)."""
        if asset_id not in self._images:
            from PIL import Image

            e = self.entry(asset_id)
            path = self.path(asset_id)
            if not path.exists():
                how = ("regenerate or re-import the table pack" if self.table_pack and e.kind == "table"
                       else "rebuild the pack ('vgb assets build --force')")  # fmt: skip
                raise AssetError(f"asset file missing: {path}; {how}")
            self._images[asset_id] = np.asarray(Image.open(path).convert("RGB"))
        return self._images[asset_id]

    def path(self, asset_id: str) -> Path:
        """File of a table or overlay image."""
        e = self.entry(asset_id)
        if e.file is None:
            raise AssetError(f"asset {asset_id!r} ({e.kind}) has no image")
        return self._roots.get(asset_id, self.root) / e.file

    def verify(self) -> list[str]:
        """Re-hash every texture file; return a list of problems (empty when the pack is intact)."""
        problems = []
        for e in self.entries.values():
            if e.file is not None:
                self._images.pop(e.id, None)
                try:
                    got = _sha(self.image(e.id).tobytes())
                except AssetError as err:
                    problems.append(str(err))
                    continue
                if got != e.sha256:
                    problems.append(f"{e.id}: sha256 {got[:12]} != manifest {e.sha256[:12]}")
        return problems


_DEFAULT: AssetStore | None = None


def default_store() -> AssetStore:
    """The procedural pack in the cache, built on first use (process-wide singleton)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = AssetStore.procedural()
    return _DEFAULT
