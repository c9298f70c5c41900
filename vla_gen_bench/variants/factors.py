"""Factors of variation: frozen dataclasses that turn the in-distribution draw of an episode into a variant's draw.

(A variant's *factors* say what it changes: table pool, overlay, distractor, ...; its *axis* is the category it is
scored under: vision, semantics or execution, see :data:`vla_gen_bench.variants.catalog.AXES`.)

An episode is built in two steps (see :mod:`vla_gen_bench.variants.manifest`):

1. the **base draw** — object, table, cell pair and yaw indices from the in-distribution pools — comes from an RNG
   keyed by ``(seed, episode)`` alone, so episode *k* of every variant starts from the same draw as the control arm;
2. each factor of the variant then edits a mutable :class:`Draft` through its ``apply`` hook, drawing whatever it
   needs from its *own* RNG stream (keyed by ``(seed, episode, factor)``), so changing one factor never shifts
   another's draws.

The defaults of every factor reproduce the in-distribution setting (RL4VLA Main-v3, train split). Each factor also
says how many distinct values it contributes (:meth:`count`) and what it does (:meth:`describe`).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vla_gen_bench.episode import (
    GRID_CENTER,
    GRID_HALF_EDGE,
    GRID_N,
    MIN_PAIR_DIST,
    TRAIN_TEMPLATE,
    YAWS,
    EpisodeSpec,
    Overlay,
    Reposition,
    cell_pairs,
    grid_cells,
)
from vla_gen_bench.families import PUT_ON_PARAPHRASES as PARAPHRASES  # noqa: F401 - its old home
from vla_gen_bench.families import Family, get_family

Pool = Literal["train", "unseen"]
"""An asset pool a factor draws from: the training pool or the unseen one (``assets.store.POOLS``; asset manifests and
factor definitions keep the key ``split`` for it). Not a variant's split (``train`` / ``test``, ``catalog.Split``)."""

# Yaws of the unseen-position setting (RL4VLA Position-v1): none of them is a training yaw.
UNSEEN_YAWS = (-math.pi / 8, -3 * math.pi / 8, -5 * math.pi / 8, -7 * math.pi / 8)

# Minimum distances of the third cell (RL4VLA MultiCarrot / MultiPlate / PositionChangeTo triples).
FAR = 0.15
EPS = 1e-9
THIRD_CELL_RULES = ("vgb", "rl4vla")
_TRAIN_GRID = grid_cells()


def family_of(store) -> Family:
    """The family whose episodes a store answers for: a family's view of a store
    (:meth:`vla_gen_bench.families.Family.store`) names it; a plain store is put_on's."""
    return getattr(store, "family", None) or get_family("put_on")


def family_pairs(cells: np.ndarray, family: Family) -> np.ndarray:
    """(k, 2) (object cell, target cell) index pairs a family allows on ``cells``: farther apart than its minimum
    distance and, where it has one, at most its maximum (put_on: :func:`cell_pairs` as it always was)."""
    return pairs_in_range(cells, *family.pair_range)


def pairs_in_range(cells: np.ndarray, lo: float, hi: float = math.inf) -> np.ndarray:
    """(k, 2) index pairs of distinct cells farther apart than ``lo`` and at most ``hi`` (up to float rounding)."""
    pairs = cell_pairs(cells, lo)
    if math.isfinite(hi):
        d = np.linalg.norm(cells[pairs[:, 0]] - cells[pairs[:, 1]], axis=1)
        pairs = pairs[d <= hi + EPS]
    return pairs


def rl4vla_grid() -> np.ndarray:
    """(36, 2) the training grid in RL4VLA's own frame and float64 arithmetic: normalised {0, 0.2, ..., 1} x 2 - 1,
    times the 0.075 m half edge, plus its centre (-0.16, 0). Same cell order as :func:`grid_cells`."""
    g = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    unit = np.array([(a, b) for a in g for b in g]) * 2 - 1
    return unit * np.array([GRID_HALF_EDGE, GRID_HALF_EDGE]) + np.array([-0.16, 0.0])


@functools.lru_cache(maxsize=8)
def rl4vla_triples(from_object: float, from_receptacle: float) -> tuple[np.ndarray, np.ndarray]:
    """RL4VLA's third-cell triples on the training grid: ``pairs`` (784, 2) (object cell, receptacle cell) in the
    order of ``cell_pairs(grid_cells())``, and ``ok`` (784, 36) whether each cell may be the third one.

    Its strict ``>`` test on float64 distances admits part of the cells that are exactly 15 cm away (rounding
    decides which), hence 2,104 triples where an exact test gives 1,896."""
    cells = rl4vla_grid()
    d = np.linalg.norm(cells[:, None] - cells[None], axis=-1)  # (36, 36)
    pairs = np.argwhere(d > MIN_PAIR_DIST)
    ok = (d[pairs[:, 0]] > from_object) & (d[pairs[:, 1]] > from_receptacle)
    pairs.flags.writeable = ok.flags.writeable = False  # cached: shared by every caller
    return pairs, ok


@functools.lru_cache(maxsize=8)
def _rl4vla_coupling(from_object: float, from_receptacle: float):
    """Per pair row: its index by (object cell, receptacle cell), the probability of keeping it, the cumulative
    remainder to re-draw from, and its third cells (see :meth:`Draft._pick_rl4vla_third_cell`)."""
    pairs, ok = rl4vla_triples(from_object, from_receptacle)
    row = np.full((GRID_N * GRID_N,) * 2, -1)
    row[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    n = ok.sum(1)
    target, base = n / n.sum(), 1.0 / len(pairs)
    keep = np.minimum(1.0, target / base)
    rest = np.cumsum(np.maximum(target - base, 0.0))
    return row, keep, rest / rest[-1], [np.nonzero(r)[0] for r in ok]


@dataclass
class Draft:
    """The episode under construction. Index 0 of objects/receptacles is the target."""

    cells: np.ndarray  # (n, 2) xy of the position grid in use
    obj_cell: int
    rec_cell: int
    yaw: float
    objects: list[str]
    receptacles: list[str]
    table: str
    template: str = TRAIN_TEMPLATE
    third_cell: int | None = None
    object_xy: list[tuple[float, float]] = field(default_factory=list)
    receptacle_xy: list[tuple[float, float]] = field(default_factory=list)
    object_yaw: list[float] = field(default_factory=list)
    qpos_offset: tuple[float, ...] = (0.0,) * 7
    overlay: Overlay | None = None
    reposition: Reposition | None = None
    meta: dict = field(default_factory=dict)
    third_cells: str = "vgb"
    """How a third cell is drawn (:meth:`pick_third_cell`): ``vgb`` or ``rl4vla`` (the rl4vla profiles)."""
    pair_range: tuple[float, float] = (MIN_PAIR_DIST, math.inf)
    """The family's (min, max) object-target cell distance, kept when :meth:`pick_third_cell` re-draws the pair."""

    def xy(self, cell: int) -> tuple[float, float]:
        return (float(self.cells[cell, 0]), float(self.cells[cell, 1]))

    def pick_third_cell(self, rng: np.random.Generator, from_object: float, from_receptacle: float) -> int:
        """A third cell at least ``from_object`` / ``from_receptacle`` away from the target's and receptacle's cells.

        Keeps the base pair when it admits one (the episode stays matched to the control arm), else keeps the
        object cell and re-draws the receptacle cell, else re-draws both; ``meta["matched"]`` records which.
        With ``third_cells="rl4vla"``, see :meth:`_pick_rl4vla_third_cell`.
        """
        if self.third_cells == "rl4vla":
            return self._pick_rl4vla_third_cell(rng, from_object, from_receptacle)
        d = np.linalg.norm(self.cells[:, None] - self.cells[None], axis=-1)
        d = d - EPS  # "farther than" must not depend on float rounding (3-4-5 cells are exactly 15 cm apart)
        ok = np.nonzero((d[self.obj_cell] > from_object) & (d[self.rec_cell] > from_receptacle))[0]
        if len(ok):
            self.meta.setdefault("matched", "cells")
            return int(rng.choice(ok))
        triples = [(i, j, c) for i, j in pairs_in_range(self.cells, *self.pair_range) for c in range(len(self.cells))
                   if d[i, c] > from_object and d[j, c] > from_receptacle]  # fmt: skip
        same_obj = [t for t in triples if t[0] == self.obj_cell]
        pool = same_obj or triples
        self.meta["matched"] = "object_cell" if same_obj else "none"
        i, j, c = pool[int(rng.integers(len(pool)))]
        self.obj_cell, self.rec_cell = int(i), int(j)
        return int(c)

    def _pick_rl4vla_third_cell(self, rng: np.random.Generator, from_object: float, from_receptacle: float):
        """A triple drawn uniformly from RL4VLA's set (:func:`rl4vla_triples`), as its uniform ``episode_id`` does.

        The draft's pair is the base draw's, uniform over the 784 pairs, while a uniform triple makes pair p
        likely in proportion to its n_p third cells. A maximal coupling keeps the base pair with probability
        min(1, 784 n_p / N) (N = all triples), else re-draws the pair from the remainder max(0, n_p / N - 1/784):
        the pair is then exactly n_p / N likely and stays matched to the control arm as often as that allows
        (61 % of episodes for the 2,104 triples). The third cell is uniform among the pair's n_p.
        """
        if self.cells.shape != _TRAIN_GRID.shape or not np.allclose(self.cells, _TRAIN_GRID):
            raise VariantError("RL4VLA's third-cell triples are defined on the 6x6 training grid only; use "
                               "third_cells=vgb for variants that move the grid")  # fmt: skip
        pairs, _ = rl4vla_triples(float(from_object), float(from_receptacle))
        rows, keep, rest_cdf, thirds = _rl4vla_coupling(float(from_object), float(from_receptacle))
        row = int(rows[self.obj_cell, self.rec_cell])
        if rng.random() < keep[row]:
            self.meta.setdefault("matched", "cells")
        else:
            row = int(np.searchsorted(rest_cdf, rng.random(), side="right"))
            i, j = (int(x) for x in pairs[row])
            self.meta["matched"] = "object_cell" if i == self.obj_cell else "none"
            self.obj_cell, self.rec_cell = i, j
        return int(thirds[row][int(rng.integers(len(thirds[row])))])

    def to_spec(self) -> EpisodeSpec:
        if not self.object_xy:
            self.object_xy = [self.xy(self.obj_cell)]
            self.object_yaw = [self.yaw]
        if not self.receptacle_xy:
            self.receptacle_xy = [self.xy(self.rec_cell)]
        return EpisodeSpec(
            objects=tuple(self.objects), receptacles=tuple(self.receptacles), table=self.table,
            object_xy=tuple(self.object_xy), object_yaw=tuple(self.object_yaw),
            receptacle_xy=tuple(self.receptacle_xy), instruction=self.instruction,
            qpos_offset=tuple(float(x) for x in self.qpos_offset), overlay=self.overlay,
            reposition=self.reposition, meta=dict(self.meta),
        )  # fmt: skip

    instruction: str = ""


class VariantError(KeyError):
    """Unknown variant or suite name, or a variant the asset pack cannot build; the message says what to do."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def _pick(rng: np.random.Generator, pool: list | tuple, what: str = "choices"):
    if not pool:
        raise VariantError(f"no {what} to draw from: the asset pack lacks them (see 'vgb assets list')")
    return pool[int(rng.integers(len(pool)))]


# --------------------------------------------------------------------------------------------- factors
@dataclass(frozen=True)
class PositionGrid:
    """Where the target object and the receptacle start.

    ``ring=0``: the 6x6 training grid (3 cm pitch) with the base draw's cell pair and yaw (matched to the control
    arm). ``ring=r``: only the cells r pitches outside the training grid (RL4VLA Position-v1 is ring 1), with yaws
    from ``UNSEEN_YAWS``. ``scale`` stretches the grid about its centre (1.0 = the paper's spacing).
    """

    ring: int = 0
    scale: float = 1.0

    def cells(self) -> np.ndarray:
        return grid_cells(GRID_N, GRID_HALF_EDGE * self.scale, GRID_CENTER, ring=self.ring)

    @property
    def is_train(self) -> bool:
        return self.ring == 0 and self.scale == 1.0

    def yaws(self) -> tuple[float, ...]:
        return YAWS if self.is_train else UNSEEN_YAWS

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        if self.is_train:
            return  # the base draw already is the training grid
        d.cells = self.cells()
        pairs = family_pairs(d.cells, family_of(store))
        d.obj_cell, d.rec_cell = (int(x) for x in pairs[int(rng.integers(len(pairs)))])
        d.yaw = float(_pick(rng, self.yaws()))
        d.meta["matched"] = "none"

    def count(self, store, third: tuple[float, float] | None = None) -> int:
        """Cell pairs (or triples whose third cell is farther than ``third`` = (from object, from receptacle)) x yaws."""
        cells = self.cells()
        pairs = family_pairs(cells, family_of(store))
        if third is None:
            return len(pairs) * len(self.yaws())
        d = np.linalg.norm(cells[:, None] - cells[None], axis=-1) - EPS
        triples = sum(int(((d[i] > third[0]) & (d[j] > third[1])).sum()) for i, j in pairs)
        return triples * len(self.yaws())

    def describe(self, family: str | Family = "put_on") -> str:
        f = get_family(family)
        if f.name != "put_on":
            lo, hi = f.pair_range
            n = len(family_pairs(self.cells(), f))
            where = (
                "training 6x6 grid, 3 cm pitch"
                if self.is_train
                else f"cells {self.ring} pitch(es) outside the training grid"
            )
            yaws = (
                "yaw in {0, 45, 90, 135} deg"
                if self.is_train
                else "unseen yaws {-22.5, -67.5, -112.5, -157.5} deg"
            )
            return f"{where}, object and target {100 * lo:g}-{100 * hi:g} cm apart ({n} pairs), {yaws}"
        if self.is_train:
            return (
                "training 6x6 grid, 3 cm pitch, pairs > 7 cm apart (784 pairs), yaw in {0, 45, 90, 135} deg"
            )
        where = f"cells {self.ring} pitch(es) outside the training grid" if self.ring else "grid"
        return f"{where} (scale {self.scale:g}), {len(cell_pairs(self.cells()))} pairs, unseen yaws {{-22.5, -67.5, -112.5, -157.5}} deg"


@dataclass(frozen=True)
class TablePool:
    """Which table appearance the episode's background shows."""

    split: Pool = "train"

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        if self.split != "train":
            d.table = _pick(rng, store.ids("table", self.split), f"{self.split} tables")

    def count(self, store) -> int:
        return len(store.ids("table", self.split))

    def describe(self) -> str:
        return f"table from the {self.split} pool"


@dataclass(frozen=True)
class ObjectPool:
    """Which object is the target."""

    split: Pool = "train"

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        if self.split != "train":
            d.objects = [_pick(rng, store.ids("object", self.split), f"{self.split} objects")]

    def count(self, store) -> int:
        return len(store.ids("object", self.split))

    def describe(self) -> str:
        return f"target object from the {self.split} pool"


@dataclass(frozen=True)
class ReceptaclePool:
    """Which receptacle is the target."""

    split: Pool = "train"

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        if self.split != "train":
            d.receptacles = [_pick(rng, store.ids("receptacle", self.split), f"{self.split} receptacles")]

    def count(self, store) -> int:
        return len(store.ids("receptacle", self.split))

    def describe(self) -> str:
        return f"target receptacle from the {self.split} pool"


@dataclass(frozen=True)
class Distractor:
    """A second object or receptacle in the scene that the instruction does not name.

    ``kind="object"``: a distractor object from ``pool``, placed > 15 cm from the target and > 7 cm from the
    receptacle, with the target's yaw (RL4VLA MultiCarrot). ``kind="receptacle"``: a distractor receptacle from
    ``pool``, > 15 cm from the target receptacle and > 7 cm from the object (RL4VLA MultiPlate).
    """

    kind: Literal["object", "receptacle"] = "object"
    pool: Pool = "train"

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        target = d.objects[0] if self.kind == "object" else d.receptacles[0]
        names = {store.name(target)}
        choices = [a for a in store.ids(self.kind, self.pool) if a != target and store.name(a) not in names]
        other = _pick(rng, choices)
        if self.kind == "object":
            c = d.pick_third_cell(rng, *self.third_cell_distances())
            d.objects.append(other)
            d.object_xy = [d.xy(d.obj_cell), d.xy(c)]
            d.object_yaw = [d.yaw, d.yaw]
        else:
            c = d.pick_third_cell(rng, *self.third_cell_distances())
            d.receptacles.append(other)
            d.receptacle_xy = [d.xy(d.rec_cell), d.xy(c)]
        d.third_cell = c

    def third_cell_distances(self) -> tuple[float, float]:
        return (FAR, MIN_PAIR_DIST) if self.kind == "object" else (MIN_PAIR_DIST, FAR)

    def count(self, store) -> int:
        return len(store.ids(self.kind, self.pool))

    def describe(self) -> str:
        return f"plus one distractor {self.kind} from the {self.pool} pool (not named by the instruction)"


@dataclass(frozen=True)
class Instructions:
    """The instruction template: the family's training template, or one of its paraphrases (put_on's:
    :data:`PARAPHRASES`)."""

    split: Pool = "train"

    def templates(self, store=None) -> tuple[str, ...]:
        """The pool's templates for the family ``store`` answers for (put_on for a plain store or None)."""
        return family_of(store).templates(self.split)

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        if self.split != "train":
            d.template = _pick(rng, self.templates(store))

    def count(self, store) -> int:
        return len(self.templates(store))

    def describe(self, family: str | Family = "put_on") -> str:
        f = get_family(family)
        if self.split == "train":
            return f"training template '{f.train_template}'"
        return f"one of {len(f.paraphrases)} paraphrases of the training template"


@dataclass(frozen=True)
class OverlayFactor:
    """An image-space perturbation of the policy's view; physics is untouched.

    ``kind="texture"``: a texture blended with weight ``alpha`` over the foreground (robot, objects, receptacles)
    inside its bounding box, re-fitted every frame. ``kind="noise"``: a texture window that follows the foreground
    blended over the whole image. Texture from the overlay pool (RL4VLA VisionTexture / VisionWhole).
    """

    kind: Literal["texture", "noise"]
    alpha: float

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        d.overlay = Overlay(self.kind, _pick(rng, store.ids("overlay")), float(self.alpha))

    def count(self, store) -> int:
        return len(store.ids("overlay"))

    def describe(self) -> str:
        where = "the foreground's bounding box" if self.kind == "texture" else "the whole image"
        return f"dynamic {self.kind} overlay on {where}, alpha {self.alpha:g}"


def _pose_offsets() -> np.ndarray:
    """Panda analogue of RL4VLA EEPose-v1: joints 1-6 offset by {-0.15, -0.08, 0, 0.08, 0.15} rad, the wrist
    rotation (joint 7) by {-0.6, -0.3, 0, 0.3, 0.6} rad; rows with |shoulder + elbow| (joints 2, 4) > 0.25 rad and
    the all-zero row are excluded."""
    small = (-0.15, -0.08, 0.0, 0.08, 0.15)
    wrist = (-0.6, -0.3, 0.0, 0.3, 0.6)
    rows = np.array(
        list(itertools.product(small, small, small, small, small, small, wrist)), dtype=np.float64
    )
    keep = (np.abs(rows[:, 1] + rows[:, 3]) <= 0.25 + 1e-9) & np.any(rows != 0, axis=1)
    return rows[keep]


_OFFSETS: np.ndarray | None = None


@dataclass(frozen=True)
class RobotInit:
    """Offsets added to the arm's initial joint positions, from the offset table scaled by ``scale``."""

    scale: float = 1.0

    @staticmethod
    def table() -> np.ndarray:
        global _OFFSETS
        if _OFFSETS is None:
            _OFFSETS = _pose_offsets()
        return _OFFSETS

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        rows = self.table()
        d.qpos_offset = tuple(float(x) for x in rows[int(rng.integers(len(rows)))] * self.scale)

    def count(self, store) -> int:
        return len(self.table())

    def describe(self) -> str:
        return (f"initial joint offsets x{self.scale:g}: joints 1-6 in {{-0.15..0.15}} rad, wrist {{-0.6..0.6}} rad, "
                f"{len(self.table())} offset rows")  # fmt: skip


@dataclass(frozen=True)
class RepositionFactor:
    """The target object is teleported, right after action ``at_step``, to a third cell > 15 cm from where it
    started and > 7 cm from the receptacle (RL4VLA PositionChangeTo: step 5)."""

    at_step: int = 5

    def third_cell_distances(self) -> tuple[float, float]:
        return (FAR, MIN_PAIR_DIST)

    def apply(self, d: Draft, base: dict, rng: np.random.Generator, store) -> None:
        c = d.pick_third_cell(rng, *self.third_cell_distances())
        d.third_cell = c
        d.reposition = Reposition(int(self.at_step), d.xy(c))

    def count(self, store) -> int:
        return 1

    def describe(self) -> str:
        return f"object moved to another cell (> 15 cm away) right after step {self.at_step}"
