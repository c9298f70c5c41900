"""The variant catalog: one line per variant, suites of variants, and content hashes that identify what was run.

A variant is a task family (:mod:`vla_gen_bench.families`) plus a tuple of factor settings (defaults =
in-distribution), an axis label, a split and a severity. Adding a variant is adding a line to its family's catalog
(:data:`CATALOG` for put_on, :data:`PUSH_CATALOG`, ...); nothing else changes. Each family has its own control arm
(put_on: ``ind``, the others ``<family>_ind``), and a variant is compared with its family's.

:data:`CATALOG` is the put_on family's lines: its hash (:func:`catalog_hash`) is the one every committed run carries.
:data:`VARIANTS` is every family's lines.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from vla_gen_bench.families import FAMILIES, get_family
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
    family: str = "put_on"
    """The task family (:data:`vla_gen_bench.families.FAMILIES`) whose env and assets the variant runs on."""

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
        """JSON-serialisable definition (what the catalog hash covers). ``family`` is left out for put_on, so the
        hashes of every variant written before families existed stay what they were."""
        d = asdict(self)
        if self.family == "put_on":
            d.pop("family")
        return d

    @property
    def control(self) -> str:
        """The name of the control arm this variant is compared with (its family's)."""
        return get_family(self.family).control

    def sample(self, rng, store):
        """Episode 0 of this variant's manifest for a seed drawn from ``rng`` (a numpy ``Generator`` or ``RandomState``):
        what the env takes when reset without an explicit episode. Runs name their manifest seeds instead."""
        from vla_gen_bench.variants.manifest import episode

        draw = rng.integers if hasattr(rng, "integers") else rng.randint  # Generator or RandomState
        return episode(self, int(draw(2**31)), 0, store)

    def n_configurations(self, store) -> int:
        """Number of distinct initial configurations: cell pairs (or triples when a distractor or a reposition
        target needs a third cell) x yaws x the choices of every other factor."""
        from vla_gen_bench.assets.family_store import family_store

        store = family_store(self.family, store) if store is not None else store
        if get_family(self.family).layout == "cabinet":
            from vla_gen_bench.variants.drawer import n_configurations

            return n_configurations(self, store)
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


def _family_lines(family: str, lines: tuple[tuple, ...]) -> tuple[Variant, ...]:
    """A family's catalog lines: (setting, axis, split, summary, factor fields) -> ``<family>_<setting>``."""
    return tuple(Variant(f"{family}_{name}", axis, split, summary, family=family, **kw)
                 for name, axis, split, summary, kw in lines)  # fmt: skip


# fmt: off
PUSH_CATALOG: tuple[Variant, ...] = _family_lines("push", (
    ("ind", "in-distribution", "train", "the training distribution: train object, train region, train table, "
     "object and region 10-20 cm apart on the training grid, training yaws, training instruction", {}),
    ("unseen_table", "vision", "test", "table appearance from the unseen tables", dict(table=TablePool(_U))),
    ("dyn_texture_strong", "vision", "test", "dynamic texture on the foreground box, alpha 0.5",
     dict(severity=0.5, overlay=OverlayFactor("texture", 0.5))),
    ("dyn_noise_strong", "vision", "test", "dynamic noise over the whole image, alpha 0.5",
     dict(severity=0.5, overlay=OverlayFactor("noise", 0.5))),
    ("unseen_objects", "semantics", "test", "object from the unseen push objects (unseen shapes and colours)",
     dict(objects=ObjectPool(_U))),
    ("unseen_targets", "semantics", "test", "target region from the unseen regions (unseen shapes and colours)",
     dict(receptacles=ReceptaclePool(_U))),
    ("unseen_instructions", "semantics", "test", "instruction paraphrased (10 push paraphrases)",
     dict(instructions=Instructions(_U))),
    ("distractor", "semantics", "test", "a second, unnamed train object on the table",
     dict(distractor=Distractor("object", _T))),
    ("distractor_target", "semantics", "test", "a second, unnamed unseen region on the table",
     dict(distractor=Distractor("receptacle", _U))),
    ("unseen_positions", "execution", "test", "object and region on the ring of cells just outside the training "
     "grid, unseen yaws", dict(severity=1.0, positions=PositionGrid(ring=1))),
    ("unseen_robot_pose", "execution", "test", "initial joint positions offset (up to 0.15 rad, wrist 0.6 rad)",
     dict(severity=1.0, robot_init=RobotInit(1.0))),
    ("reposition", "execution", "test", "object moved to another cell right after step 5",
     dict(severity=5, reposition=RepositionFactor(5))),
))
STACK_CATALOG: tuple[Variant, ...] = _family_lines("stack", (
    ("ind", "in-distribution", "train", "the training distribution: train piece, train base, train table, piece and "
     "base 12-22 cm apart on the training grid, training yaws, training instruction", {}),
    ("unseen_table", "vision", "test", "table appearance from the unseen tables", dict(table=TablePool(_U))),
    ("dyn_texture_strong", "vision", "test", "dynamic texture on the foreground box, alpha 0.5",
     dict(severity=0.5, overlay=OverlayFactor("texture", 0.5))),
    ("dyn_noise_strong", "vision", "test", "dynamic noise over the whole image, alpha 0.5",
     dict(severity=0.5, overlay=OverlayFactor("noise", 0.5))),
    ("unseen_objects", "semantics", "test", "piece from the unseen pieces (prisms, bars, tall blocks; unseen "
     "colours)", dict(objects=ObjectPool(_U))),
    ("unseen_bases", "semantics", "test", "base from the unseen bases (polygonal blocks, unseen colours)",
     dict(receptacles=ReceptaclePool(_U))),
    ("unseen_instructions", "semantics", "test", "instruction paraphrased (10 stack paraphrases)",
     dict(instructions=Instructions(_U))),
    ("distractor", "semantics", "test", "a second, unnamed train piece on the table",
     dict(distractor=Distractor("object", _T))),
    ("distractor_base", "semantics", "test", "a second, unnamed unseen base on the table",
     dict(distractor=Distractor("receptacle", _U))),
    ("unseen_positions", "execution", "test", "piece and base on the ring of cells just outside the training "
     "grid, unseen yaws", dict(severity=1.0, positions=PositionGrid(ring=1))),
    ("unseen_robot_pose", "execution", "test", "initial joint positions offset (up to 0.15 rad, wrist 0.6 rad)",
     dict(severity=1.0, robot_init=RobotInit(1.0))),
    ("reposition", "execution", "test", "piece moved to another cell right after step 5",
     dict(severity=5, reposition=RepositionFactor(5))),
))
PUSHBACK_STEP = 25  # vla_gen_bench.assets.cabinets.PUSHBACK_STEP: the drawer oracle is done by then (test)


def _drawer_lines(mode: str) -> tuple[Variant, ...]:
    back = "closed" if mode == "open" else "fully open"
    return _family_lines(f"drawer_{mode}", (
        ("ind", "in-distribution", "train", f"the training distribution: train cabinet and handle, the drawer front "
         f"in the training box facing the workspace, training yaw jitter, training instruction ({mode})", {}),
        ("unseen_table", "vision", "test", "table appearance from the unseen tables", dict(table=TablePool(_U))),
        ("dyn_noise_strong", "vision", "test", "dynamic noise over the whole image, alpha 0.5",
         dict(severity=0.5, overlay=OverlayFactor("noise", 0.5))),
        ("unseen_handles", "semantics", "test", "handle from the unseen handles (T-bar, ring pull, square knob)",
         dict(objects=ObjectPool(_U))),
        ("unseen_cabinets", "semantics", "test", "cabinet from the unseen cabinets (unseen sizes and colours)",
         dict(receptacles=ReceptaclePool(_U))),
        ("unseen_instructions", "semantics", "test", f"instruction paraphrased (10 {mode} paraphrases)",
         dict(instructions=Instructions(_U))),
        ("distractor", "semantics", "test", "an unnamed train object beside the cabinet",
         dict(distractor=Distractor("object", _T))),
        ("unseen_positions", "execution", "test", "the drawer front just outside the training box, unseen yaws",
         dict(severity=1.0, positions=PositionGrid(ring=1))),
        ("unseen_robot_pose", "execution", "test", "initial joint positions offset (up to 0.15 rad, wrist 0.6 rad), "
         "hand clear of the cabinet", dict(severity=1.0, robot_init=RobotInit(1.0))),
        ("pushed_back", "execution", "test", f"the drawer set back {back} right after step {PUSHBACK_STEP}",
         dict(severity=PUSHBACK_STEP, reposition=RepositionFactor(PUSHBACK_STEP))),
    ))


DRAWER_OPEN_CATALOG: tuple[Variant, ...] = _drawer_lines("open")
DRAWER_CLOSE_CATALOG: tuple[Variant, ...] = _drawer_lines("close")
# fmt: on
FAMILY_CATALOGS: dict[str, tuple[Variant, ...]] = {
    "put_on": CATALOG,
    "push": PUSH_CATALOG,
    "stack": STACK_CATALOG,
    "drawer_open": DRAWER_OPEN_CATALOG,
    "drawer_close": DRAWER_CLOSE_CATALOG,
}  # fmt: skip
"""Each family's catalog lines, put_on's first."""
VARIANTS: tuple[Variant, ...] = tuple(v for lines in FAMILY_CATALOGS.values() for v in lines)
"""Every family's catalog lines."""

_BY_NAME = {v.name: v for v in VARIANTS}
assert len(_BY_NAME) == len(VARIANTS), "duplicate variant names in the catalog"


def check_variant(v: Variant) -> None:
    """Refuse a variant of an unknown family, one outside its family's catalog, or one that changes a factor that
    means nothing for its family.

    Raises:
        VariantError: what is wrong and which factors the family takes.
    """
    if v.family not in FAMILIES:
        raise VariantError(f"variant {v.name!r}: unknown family {v.family!r}; allowed: {', '.join(FAMILIES)}")
    f = get_family(v.family)
    bad = [n for n, _ in v.changed_factors() if n not in f.factors]
    if bad:
        raise VariantError(f"variant {v.name!r} changes {', '.join(bad)}, which does not apply to the {v.family} "
                           f"family (it takes: {', '.join(f.factors)})")  # fmt: skip
    if v.family != "put_on" and not v.name.startswith(f"{v.family}_"):
        raise VariantError(
            f"variant {v.name!r} of the {v.family} family must be named '{v.family}_<setting>'"
        )


for _v in VARIANTS:
    check_variant(_v)
for _f in FAMILIES.values():
    if _f.name in FAMILY_CATALOGS and _f.control not in _BY_NAME:
        raise VariantError(f"family {_f.name!r}: its control arm {_f.control!r} is not in the catalog")


def _names(pred) -> tuple[str, ...]:
    return tuple(v.name for v in CATALOG if pred(v))


def _family_names(family: str, axes: tuple[str, ...] = AXES) -> tuple[str, ...]:
    """A family's control arm, then its lines of the given axes in catalog order."""
    f = get_family(family)
    return (f.control, *(v.name for v in FAMILY_CATALOGS[family] if v.name != f.control and v.axis in axes))


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
    "all": tuple(v.name for v in CATALOG),  # the put_on family's lines (its pinned hash); 'vgb list' shows all
    # every new family's control plus its vision / semantics / execution lines, with put_on's control and a few
    "skills": (CONTROL, "unseen_table", "unseen_objects", "reposition",
               *(n for fam in FAMILY_CATALOGS if fam != "put_on" for n in _family_names(fam))),
    **{fam: _family_names(fam) for fam in FAMILY_CATALOGS if fam != "put_on"},
    "drawer": (*_family_names("drawer_open"), *_family_names("drawer_close")),
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
    of seeds 0 and 1), so a change to either the catalog or the manifest code changes the hash. Default: the put_on
    family's catalog (:func:`family_catalog_hash` for another family's)."""
    from vla_gen_bench.variants.manifest import manifest_fingerprint

    return _sha([[v.definition(), manifest_fingerprint(v, store)] for v in variants])


def family_catalog_hash(family: str, store=None) -> str:
    """Content hash of one family's catalog lines (put_on's is :func:`catalog_hash`)."""
    return catalog_hash(FAMILY_CATALOGS[get_family(family).name], store)


def families_of(variants) -> tuple[str, ...]:
    """The families of ``variants`` (names or :class:`Variant` s), each once, in :data:`FAMILIES` order."""
    present = {get_variant(v).family for v in variants}
    return tuple(f for f in FAMILIES if f in present)


def suite_hash(suite: str, store=None) -> str:
    return catalog_hash(get_suite(suite), store)
