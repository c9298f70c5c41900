"""The variant catalog: one line per variant, suites of variants, and content hashes that identify what was run.

A variant is the one task family plus a tuple of factor settings (defaults = in-distribution), an axis label, a split
and a severity. Adding a variant is adding a line to :data:`CATALOG`; nothing else changes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from vla_gen_bench.variants.factors import (
    Distractor,
    Instructions,
    ObjectPool,
    OverlayFactor,
    PositionGrid,
    ReceptaclePool,
    RepositionFactor,
    RobotInit,
    TablePool,
    VariantError,
)

Axis = Literal["in-distribution", "vision", "semantics", "execution"]
"""The category a variant is scored under (per-axis scores); what it changes are its factors."""
Split = Literal["train", "test"]
"""A variant's split, as RL4VLA names its settings: ``train`` (a training-distribution setting) or ``test`` (held
out). Not the asset pools a factor draws from (``train`` / ``unseen``, :data:`~vla_gen_bench.variants.factors.Pool`)."""
AXES: tuple[str, ...] = ("in-distribution", "vision", "semantics", "execution")
CONTROL = "ind"


@dataclass(frozen=True)
class Variant:
    """One catalog line. ``axis`` is the category the variant is scored under (vision, semantics, execution, or the
    control arm); the factor fields (:mod:`vla_gen_bench.variants.factors`) say what it changes, and any left at
    their defaults keep the in-distribution setting."""

    name: str
    axis: Axis
    split: Split
    summary: str
    severity: float | None = None
    paper: str | None = None  # the RL4VLA setting it reproduces (env id + split), None for our own extensions
    positions: PositionGrid = field(default_factory=PositionGrid)
    table: TablePool = field(default_factory=TablePool)
    objects: ObjectPool = field(default_factory=ObjectPool)
    receptacles: ReceptaclePool = field(default_factory=ReceptaclePool)
    instructions: Instructions = field(default_factory=Instructions)
    distractor: Distractor | None = None
    overlay: OverlayFactor | None = None
    robot_init: RobotInit | None = None
    reposition: RepositionFactor | None = None

    def factors(self) -> list[tuple[str, object]]:
        """(field name, factor) in the order their hooks run."""
        names = ("positions", "table", "objects", "receptacles", "distractor", "instructions", "overlay",
                 "robot_init", "reposition")  # fmt: skip
        return [(n, getattr(self, n)) for n in names if getattr(self, n) is not None]

    def changed_factors(self) -> list[tuple[str, object]]:
        """The factors that differ from the in-distribution setting."""
        ind = Variant(CONTROL, "in-distribution", "train", "")
        return [(n, a) for n, a in self.factors() if getattr(ind, n) != a]

    def definition(self) -> dict:
        """JSON-serialisable definition (what the catalog hash covers)."""
        return asdict(self)

    def sample(self, rng, store):
        """Episode 0 of this variant's manifest for a seed drawn from ``rng`` (a numpy ``Generator`` or ``RandomState``):
        what the env takes when reset without an explicit episode. Runs name their manifest seeds instead."""
        from vla_gen_bench.variants.manifest import episode

        draw = rng.integers if hasattr(rng, "integers") else rng.randint  # Generator or RandomState
        return episode(self, int(draw(2**31)), 0, store)

    def n_configurations(self, store) -> int:
        """Number of distinct initial configurations: cell pairs (or triples when a distractor or a reposition
        target needs a third cell) x yaws x the choices of every other factor."""
        third = self.distractor or self.reposition
        n = self.positions.count(store, third.third_cell_distances() if third else None)
        for name, a in self.factors():
            if name == "positions":
                continue
            if name == "distractor":
                target = self.objects if a.kind == "object" else self.receptacles
                pool = store.ids(a.kind, a.pool)
                n *= len(pool) - (1 if target.split == a.pool else 0)
            else:
                n *= a.count(store)
        return n


_T, _U = "train", "unseen"

# fmt: off
CATALOG: tuple[Variant, ...] = (
    # ---- control arm
    Variant(CONTROL, "in-distribution", "train", "the training distribution: train object, plate, train table, "
            "training grid and yaws, training instruction", paper="Carrot-v1 train (= Main-v3 train)"),
    # ---- vision
    Variant("unseen_table", "vision", "test", "table appearance from the 5 unseen tables",
            paper="VisionImage-v1 test", table=TablePool(_U)),
    Variant("dyn_texture_weak", "vision", "test", "dynamic texture on the foreground box, alpha 0.3", severity=0.3,
            paper="VisionTexture03-v1 test", overlay=OverlayFactor("texture", 0.3)),
    Variant("dyn_texture_strong", "vision", "test", "dynamic texture on the foreground box, alpha 0.5", severity=0.5,
            paper="VisionTexture05-v1 test", overlay=OverlayFactor("texture", 0.5)),
    Variant("dyn_noise_weak", "vision", "test", "dynamic noise over the whole image, alpha 0.3", severity=0.3,
            paper="VisionWhole03-v1 test", overlay=OverlayFactor("noise", 0.3)),
    Variant("dyn_noise_strong", "vision", "test", "dynamic noise over the whole image, alpha 0.5", severity=0.5,
            paper="VisionWhole05-v1 test", overlay=OverlayFactor("noise", 0.5)),
    # ---- semantics
    Variant("unseen_objects", "semantics", "test", "target object from the 9 unseen objects",
            paper="Carrot-v1 test", objects=ObjectPool(_U)),
    Variant("unseen_receptacles", "semantics", "test", "target receptacle from the 16 unseen receptacles",
            paper="Plate-v1 test", receptacles=ReceptaclePool(_U)),
    Variant("unseen_instructions", "semantics", "test", "instruction paraphrased (20 templates, none seen in training)",
            paper="Instruct-v1 test", instructions=Instructions(_U)),
    Variant("multi_object_seen", "semantics", "train", "a second, unnamed train object on the table",
            paper="MultiCarrot-v1 train", distractor=Distractor("object", _T)),
    Variant("multi_object_unseen", "semantics", "test", "target and distractor both from the unseen objects",
            paper="MultiCarrot-v1 test", objects=ObjectPool(_U), distractor=Distractor("object", _U)),
    Variant("distractor_receptacle", "semantics", "train", "the plate plus an unnamed unseen receptacle",
            paper="MultiPlate-v1 train", distractor=Distractor("receptacle", _U)),
    Variant("multi_receptacle_unseen", "semantics", "test", "target and distractor receptacles both unseen",
            paper="MultiPlate-v1 test", receptacles=ReceptaclePool(_U), distractor=Distractor("receptacle", _U)),
    # ---- execution
    Variant("unseen_positions", "execution", "test", "object and receptacle on the ring of cells just outside the "
            "training grid, unseen yaws", severity=1.0, paper="Position-v1 test", positions=PositionGrid(ring=1)),
    Variant("unseen_robot_pose", "execution", "test", "initial joint positions offset (up to 0.15 rad, wrist 0.6 rad)",
            severity=1.0, paper="EEPose-v1 test", robot_init=RobotInit(1.0)),
    Variant("reposition", "execution", "test", "object moved to another cell right after step 5", severity=5,
            paper="PositionChangeTo-v1 test", reposition=RepositionFactor(5)),
    # ---- severity sweeps (beyond the paper)
    *(Variant(f"dyn_texture_a{a:.1f}", "vision", "test", f"dynamic texture on the foreground box, alpha {a:.1f}",
              severity=a, overlay=OverlayFactor("texture", a)) for a in (0.1, 0.2, 0.4, 0.6, 0.7)),
    *(Variant(f"dyn_noise_a{a:.1f}", "vision", "test", f"dynamic noise over the whole image, alpha {a:.1f}",
              severity=a, overlay=OverlayFactor("noise", a)) for a in (0.1, 0.2, 0.4, 0.6, 0.7)),
    *(Variant(f"reposition_step{k}", "execution", "test", f"object moved to another cell right after step {k}",
              severity=k, reposition=RepositionFactor(k)) for k in (1, 3, 10, 20)),
    *(Variant(f"robot_pose_x{s:g}", "execution", "test", f"initial joint offsets scaled by {s:g}",
              severity=s, robot_init=RobotInit(s)) for s in (0.5, 1.5, 2.0)),
    Variant("positions_ring2", "execution", "test", "object and receptacle on the ring two pitches (6 cm) outside "
            "the training grid, unseen yaws", severity=2.0, positions=PositionGrid(ring=2)),
)
# fmt: on

_BY_NAME = {v.name: v for v in CATALOG}
assert len(_BY_NAME) == len(CATALOG), "duplicate variant names in the catalog"


def _names(pred) -> tuple[str, ...]:
    return tuple(v.name for v in CATALOG if pred(v))


PAPER = _names(lambda v: v.paper is not None)
SUITES: dict[str, tuple[str, ...]] = {
    # the paper's 16 settings, control arm first
    "default": PAPER,
    # a fast subset that touches every axis kind once (CI, demos)
    "smoke": (CONTROL, "unseen_table", "dyn_noise_strong", "unseen_objects", "multi_object_seen", "reposition"),
    # severity sweeps: each knob from mild to strong, with the paper's points and the control arm
    "sweep": (CONTROL,
              *sorted(_names(lambda v: v.overlay is not None and v.overlay.kind == "texture"), key=lambda n: _BY_NAME[n].severity),
              *sorted(_names(lambda v: v.overlay is not None and v.overlay.kind == "noise"), key=lambda n: _BY_NAME[n].severity),
              *sorted(_names(lambda v: v.reposition is not None), key=lambda n: _BY_NAME[n].severity),
              *sorted(_names(lambda v: v.robot_init is not None), key=lambda n: _BY_NAME[n].severity),
              "unseen_positions", "positions_ring2"),
    "vision": (CONTROL, *_names(lambda v: v.axis == "vision" and v.paper)),
    "semantics": (CONTROL, *_names(lambda v: v.axis == "semantics" and v.paper)),
    "execution": (CONTROL, *_names(lambda v: v.axis == "execution" and v.paper)),
    "all": tuple(_BY_NAME),
}  # fmt: skip


def _unknown(kind: str, name: str, options) -> VariantError:
    close = difflib.get_close_matches(name, list(options), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return VariantError(f"unknown {kind} {name!r}{hint} (see 'vgb list')")


def get_variant(name: str | Variant) -> Variant:
    if isinstance(name, Variant):
        return name
    try:
        return _BY_NAME[name]
    except KeyError:
        raise _unknown("variant", name, _BY_NAME) from None


def get_suite(name: str) -> tuple[Variant, ...]:
    """Variants of a suite. A comma-separated list of variant names is accepted as an ad-hoc suite."""
    if name in SUITES:
        return tuple(_BY_NAME[n] for n in SUITES[name])
    if "," in name or name in _BY_NAME:
        return tuple(get_variant(n.strip()) for n in name.split(",") if n.strip())
    raise _unknown("suite", name, list(SUITES) + list(_BY_NAME))


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def catalog_hash(variants: tuple[Variant, ...] = CATALOG, store=None) -> str:
    """Content hash of variant definitions plus a fingerprint of the episodes they generate (the first episodes
    of seeds 0 and 1), so a change to either the catalog or the manifest code changes the hash."""
    from vla_gen_bench.variants.manifest import manifest_fingerprint

    return _sha([[v.definition(), manifest_fingerprint(v, store)] for v in variants])


def suite_hash(suite: str, store=None) -> str:
    return catalog_hash(get_suite(suite), store)
