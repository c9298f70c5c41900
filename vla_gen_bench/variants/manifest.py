"""Episode manifests: the fixed initial configuration of episode ``k`` of a variant for a seed.

``episode(variant, seed, k)`` is a pure function of its arguments (and the asset pack's ids): two runs of a variant
with the same seeds see identical episodes, and episode ``k`` of every variant starts from the same base draw as
episode ``k`` of the control arm (same target object, table, cells and yaw wherever the variant's factors leave them
alone), which makes paired comparisons meaningful.

:func:`episode` is the one place an episode is made. Evaluation takes its work items' episodes from it (a run
profile's quirks, :meth:`vla_gen_bench.eval.profiles.Profile.episode`, act on its result), and so do demo
collection, RL rollouts and contact sheets; the task env takes a ready :class:`~vla_gen_bench.episode.EpisodeSpec`
in ``reset(options={"episode": spec})``, and a reset without one takes episode 0 of the env's variant (default the
control arm) for a manifest seed drawn from the env's episode RNG (:meth:`Variant.sample`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from vla_gen_bench.assets.family_store import family_store
from vla_gen_bench.episode import YAWS, EpisodeSpec, cell_pairs, grid_cells
from vla_gen_bench.variants.factors import THIRD_CELL_RULES, Draft, family_of, family_pairs

# One fixed RNG stream per factor field: adding a factor to a variant never shifts another factor's draws.
_STREAMS = {"positions": 1, "table": 2, "objects": 3, "receptacles": 4, "distractor": 5, "instructions": 6,
            "overlay": 7, "robot_init": 8, "reposition": 9}  # fmt: skip

_CELLS = grid_cells()
_PAIRS = cell_pairs(_CELLS)


@dataclass(frozen=True)
class ManifestEpisode:
    """One fixed episode of a variant's episode manifest: episode ``episode`` of ``seed`` and its configuration."""

    variant: str
    seed: int
    episode: int
    spec: EpisodeSpec

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "seed": self.seed,
            "episode": self.episode,
            "spec": self.spec.to_dict(),
        }


def _check_index(seed: int, k: int) -> None:
    if int(seed) < 0 or int(k) < 0:
        raise ValueError(f"seeds and episode indices must be >= 0 (got seed={seed}, episode={k})")


def _pairs_of(family) -> np.ndarray:
    if family.name == "put_on":
        return _PAIRS
    if family.name not in _FAMILY_PAIRS:
        _FAMILY_PAIRS[family.name] = family_pairs(_CELLS, family)
    return _FAMILY_PAIRS[family.name]


_FAMILY_PAIRS: dict[str, np.ndarray] = {}


def base_draw(seed: int, k: int, store) -> dict:
    """The in-distribution draw of episode ``k`` for ``seed`` (shared by every variant of the family ``store``
    answers for: a family's view of the store draws its objects, targets and cell pairs)."""
    _check_index(seed, k)
    pairs = _pairs_of(family_of(store))
    rng = np.random.default_rng([int(seed), int(k)])
    objs, recs, tables = (
        store.ids("object", "train"),
        store.ids("receptacle", "train"),
        store.ids("table", "train"),
    )
    return {
        "object": objs[int(rng.integers(len(objs)))],
        "receptacle": recs[int(rng.integers(len(recs)))],
        "table": tables[int(rng.integers(len(tables)))],
        "pair": tuple(int(x) for x in pairs[int(rng.integers(len(pairs)))]),
        "yaw": float(YAWS[int(rng.integers(len(YAWS)))]),
    }


def episode(variant, seed: int, k: int, store=None, third_cells: str = "vgb") -> EpisodeSpec:
    """Episode ``k`` of ``variant`` (a :class:`Variant` or its name) for ``seed``.

    ``third_cells``: how a distractor's or reposition target's cell is drawn, ``vgb`` (the manifests of the
    benchmark) or ``rl4vla`` (RL4VLA's triple set, uniformly; used by the rl4vla profiles).
    """
    from vla_gen_bench.families import get_family
    from vla_gen_bench.variants.catalog import get_variant

    if third_cells not in THIRD_CELL_RULES:
        raise ValueError(f"third_cells must be one of {', '.join(THIRD_CELL_RULES)}; got {third_cells!r}")
    v = get_variant(variant)
    family = get_family(v.family)
    store = family_store(family, store or _default_store())
    if family.layout == "cabinet":
        from vla_gen_bench.variants.drawer import drawer_episode

        return drawer_episode(v, family, seed, k, store, _STREAMS)
    base = base_draw(seed, k, store)
    d = Draft(cells=_CELLS, obj_cell=base["pair"][0], rec_cell=base["pair"][1], yaw=base["yaw"],
              objects=[base["object"]], receptacles=[base["receptacle"]], table=base["table"],
              third_cells=third_cells, template=family.train_template, pair_range=family.pair_range)  # fmt: skip
    for name, factor in v.factors():
        factor.apply(d, base, np.random.default_rng([int(seed), int(k), _STREAMS[name]]), store)
    d.instruction = d.template.format(
        object=store.name(d.objects[0]), receptacle=store.name(d.receptacles[0])
    )
    d.meta.update({"variant": v.name, "seed": int(seed), "episode": int(k)})
    d.meta.setdefault("matched", "cells")
    return d.to_spec()


def manifest(variant, seeds: list[int] | tuple[int, ...], n: int, store=None) -> list[ManifestEpisode]:
    """Episodes ``0..n-1`` of ``variant`` for each seed, in (seed, episode) order."""
    from vla_gen_bench.variants.catalog import get_variant

    v = get_variant(variant)
    store = store or _default_store()
    return [ManifestEpisode(v.name, int(s), k, episode(v, s, k, store)) for s in seeds for k in range(int(n))]


def manifest_hash(entries: list[ManifestEpisode]) -> str:
    """Content hash of a list of manifest entries (every field of every spec)."""
    payload = [e.to_dict() for e in entries]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_fingerprint(variant, store=None, n: int = 4) -> str:
    """Hash of the first ``n`` episodes of seeds 0 and 1: detects any change in how a variant's episodes are made."""
    return manifest_hash(manifest(variant, (0, 1), n, store))


def _default_store():
    from vla_gen_bench.assets.store import default_store

    return default_store()


# ---------------------------------------------------------------------------------------- training pools
class TrainingPoolError(ValueError):
    """A training configuration that uses something from a test pool."""


def check_training_spec(spec: EpisodeSpec, store=None, family: str = "put_on") -> None:
    """Refuse a training episode of a task family that overlaps a test pool (unseen assets, overlays, paraphrased
    instructions, off-grid positions or yaws, joint offsets, repositioning)."""
    from vla_gen_bench.families import get_family

    fam = get_family(family)
    store = family_store(fam, store or _default_store())
    problems = []
    for kind, ids in (("object", spec.objects), ("receptacle", spec.receptacles), ("table", (spec.table,))):
        bad = [a for a in ids if a not in store.ids(kind, "train")]
        if bad:
            problems.append(f"{kind}(s) {bad} are not in the training pool")
    if spec.overlay is not None:
        problems.append(f"overlay {spec.overlay.texture} is a test-time perturbation")
    known = set(store.ids("object")) | set(store.ids("receptacle"))
    allowed = {fam.train_template.format(object=store.name(o), receptacle=store.name(spec.receptacles[0]))
               for o in spec.objects if o in known and spec.receptacles[0] in known}  # fmt: skip
    if allowed and spec.instruction not in allowed:
        problems.append(
            f"instruction {spec.instruction!r} does not use the training template {fam.train_template!r}"
        )
    if fam.layout == "cabinet":
        problems += _cabinet_layout_problems(spec)
    else:
        for xy in (*spec.object_xy, *spec.receptacle_xy):
            if np.min(np.linalg.norm(_CELLS - np.asarray(xy), axis=1)) > 1e-6:
                problems.append(f"position {tuple(round(c, 4) for c in xy)} is not a training-grid cell")
        if any(min(abs(y - t) for t in YAWS) > 1e-6 for y in spec.object_yaw):
            problems.append(f"object yaw(s) {spec.object_yaw} are not training yaws")
    if any(abs(x) > 0 for x in spec.qpos_offset):
        problems.append("initial joint offsets are a test-time perturbation")
    if spec.reposition is not None:
        problems.append("mid-episode repositioning is a test-time perturbation")
    if problems:
        raise TrainingPoolError("training configuration overlaps a test pool: " + "; ".join(problems))


def _cabinet_layout_problems(spec: EpisodeSpec) -> list[str]:
    """A cabinet-layout episode outside the training placement: the drawer front's centre outside the training box
    or the cabinet's yaw beyond the training jitter (:mod:`vla_gen_bench.assets.cabinets`' ranges)."""
    import math

    from vla_gen_bench.assets import cabinets as CB

    out = []
    eps = 1e-6
    for cab_id, xy, yaw in zip(spec.receptacles, spec.receptacle_xy, spec.receptacle_yaw, strict=True):
        try:
            depth = CB.get_cabinet(cab_id).depth
        except Exception:  # noqa: BLE001 - not a cabinet: the pool check above already names it
            continue
        # the inverse of cabinets.cabinet_centre: the front is half the depth along the front's outward normal
        front = (xy[0] - math.cos(yaw) * depth / 2, xy[1] - math.sin(yaw) * depth / 2)
        (x0, x1), (y0, y1) = CB.TRAIN_FRONT_X, CB.TRAIN_FRONT_Y
        if not (x0 - eps <= front[0] <= x1 + eps and y0 - eps <= front[1] <= y1 + eps):
            out.append(f"drawer front at {tuple(round(c, 4) for c in front)} is outside the training box "
                       f"(x in {CB.TRAIN_FRONT_X}, y in {CB.TRAIN_FRONT_Y})")  # fmt: skip
        if abs((yaw - CB.BASE_YAW + math.pi) % (2 * math.pi) - math.pi) > CB.TRAIN_YAW_JITTER + eps:
            out.append(f"cabinet yaw {yaw:.3f} is beyond the training jitter (+-{CB.TRAIN_YAW_JITTER} rad)")
    return out
