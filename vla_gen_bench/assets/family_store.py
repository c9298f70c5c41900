"""A family's view of an asset store: the family's own shapes play "object" and "receptacle", everything else (tables,
overlays, the pack hash) is the base store's.

The variant factors and the task envs ask a store for ``ids("object", pool)``, ``shape``, ``name``; through this
view the same factor code draws push objects and target regions for the push family, and the base pack's objects and
receptacles for put_on (whose view is the base store itself, so nothing about it changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from vla_gen_bench.assets.store import POOLS, AssetError, AssetStore, did_you_mean


@dataclass(frozen=True)
class FamilyAsset:
    """A family asset that is no :class:`~vla_gen_bench.assets.procedural.ShapeAsset` (a cabinet, a handle): what
    the factors and the records ask of it. The env builds it from its generator's own spec."""

    id: str
    kind: str
    split: str
    name: str
    params: dict = field(default_factory=dict, compare=False)


def _cabinet_assets(mod) -> list[FamilyAsset]:
    """The drawer families' cabinets (kind ``cabinet``) and handles (kind ``handle``) of :mod:`.cabinets`."""
    cabs = [FamilyAsset(c.id, "cabinet", c.split, c.name, {"depth": c.depth, "width": c.width, "height": c.height,
                                                           "travel": c.travel}) for c in mod.CABINETS]  # fmt: skip
    handles = [FamilyAsset(h.id, "handle", h.split, h.name, {"grip": h.grip, "grip_width": h.grip_width})
               for h in mod.HANDLES]  # fmt: skip
    return cabs + handles


def _family_assets(mod) -> list:
    return mod.shapes() if hasattr(mod, "shapes") else _cabinet_assets(mod)


class FamilyStore:
    """``base`` with ``shapes`` (the family's objects and receptacles) answering for the kinds they play.

    Args:
        base: the run's store (tables, overlays and its pack hash come from it).
        family: the :class:`~vla_gen_bench.families.Family` whose view this is.
        shapes: the family's :class:`~vla_gen_bench.assets.procedural.ShapeAsset` (or :class:`FamilyAsset`) list.
        assets_hash: content hash of ``shapes`` (recorded beside the base pack hash).
    """

    def __init__(self, base: AssetStore, family, shapes: list, assets_hash: str):
        self.base = base
        self.family = family
        self.assets_hash = assets_hash
        self._shapes = {a.id: a for a in shapes}
        self._plays = {"object": family.object_kind, "receptacle": family.receptacle_kind}

    def __getattr__(self, name: str) -> Any:  # pack_hash, table_pack, source, image, path, verify, ...
        return getattr(self.base, name)

    def ids(self, kind: str, pool: str | None = None) -> list[str]:
        if kind not in self._plays:
            return self.base.ids(kind, pool)
        if pool is not None and pool not in POOLS:
            raise AssetError(
                f"unknown asset pool {pool!r}{did_you_mean(pool, list(POOLS))}; allowed: {POOLS}"
            )
        want = self._plays[kind]
        return [a.id for a in self._shapes.values() if a.kind == want and (pool is None or a.split == pool)]

    def shape(self, asset_id: str):
        if asset_id in self._shapes:
            return self._shapes[asset_id]
        return self.base.shape(asset_id)

    def name(self, asset_id: str) -> str:
        if asset_id in self._shapes:
            return self._shapes[asset_id].name
        return self.base.name(asset_id)

    def entry(self, asset_id: str):
        if asset_id in self._shapes:
            a = self._shapes[asset_id]
            from vla_gen_bench.assets.store import AssetEntry

            return AssetEntry(a.id, a.kind, a.split, "procedural", a.name, dict(a.params), None, self.assets_hash,
                              "CC0 (generated)")  # fmt: skip
        try:
            return self.base.entry(asset_id)
        except AssetError:
            raise AssetError(f"unknown asset id {asset_id!r}{did_you_mean(asset_id, list(self._shapes))} for the "
                             f"{self.family.name} family; see 'vgb describe'") from None  # fmt: skip


def family_store(family, base):
    """The view of ``base`` for a task family (a :class:`~vla_gen_bench.families.Family` or its name): a
    :class:`FamilyStore` over the family's own generator, or ``base`` itself for a family on the base pack's objects
    and receptacles (put_on). Another family's view is unwrapped first."""
    from vla_gen_bench.families import get_family

    f = get_family(family)
    if f.assets is None:
        return getattr(base, "base", base) if isinstance(base, FamilyStore) else base
    if isinstance(base, FamilyStore) and base.family is f:
        return base
    base = base.base if isinstance(base, FamilyStore) else base
    mod = import_module(f"vla_gen_bench.assets.{f.assets}")
    return FamilyStore(base, f, _family_assets(mod), mod.pack_hash())


def family_assets_hash(family) -> str | None:
    """Content hash of a family's own assets (None for a family on the base pack)."""
    from vla_gen_bench.families import get_family

    f = get_family(family)
    return None if f.assets is None else import_module(f"vla_gen_bench.assets.{f.assets}").pack_hash()
