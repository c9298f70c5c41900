"""Statistics of an evaluation: per-variant success with Wilson intervals, the paired difference against the control
arm on matched episodes (Newcombe), per-axis scores (MOVER), and the sample-size warning. Pure functions of episode
records; :mod:`vla_gen_bench.eval.report` reads and writes the files. Formulas: ``docs/evaluation.md``.

Notation: z = 1.95996 (95 %). For a variant with n episodes and k successes, p = k / n.

* Wilson interval: centre = (p + z²/2n) / (1 + z²/n), half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
* Paired difference variant − control on the n episodes present in both (matched by (seed, episode): the same
  manifest entry), Newcombe's (1998) method 10: with a = both succeed, b = variant only, c = control only,
  d = neither, p1 = (a+b)/n, p2 = (a+c)/n, D = p1 − p2, (l1, u1), (l2, u2) their Wilson intervals and the
  continuity-corrected correlation
  φ = max(ad − bc − n/2, 0) / sqrt((a+b)(c+d)(a+c)(b+d)) if ad > bc, else (ad − bc) / sqrt(...) (φ = 0 when a
  margin is empty):
  L = D − sqrt((p1−l1)² − 2φ(p1−l1)(u2−p2) + (u2−p2)²),  U = D + sqrt((u1−p1)² − 2φ(u1−p1)(p2−l2) + (p2−l2)²).
* Relative drop = 1 − p_variant / p_control (undefined when p_control = 0).
* Axis score = unweighted mean of its K variants' rates; 95 % CI by MOVER (Zou & Donner 2008) from the variants'
  Wilson intervals, treating variants as independent: L = S − sqrt(Σ(p_i−l_i)²)/K, U = S + sqrt(Σ(u_i−p_i)²)/K
  (reduces to Wilson for K = 1). The OOD score is the same construction over the axis scores of the non-ID axes.
* Sample-size warning: a variant whose Wilson half-width (U − L)/2 exceeds 0.10 cannot separate two policies whose
  rates differ by 10 points (a necessary condition, not a sufficient one).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vla_gen_bench.episode import FAILURE_LABELS
from vla_gen_bench.variants.catalog import AXES  # noqa: F401 - the axes, defined once with the catalog

Z95 = 1.959963984540054
SMALL_N_HALF_WIDTH = 0.10


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default); (0, 1) when n == 0.

    centre = (p + z^2 / 2n) / (1 + z^2 / n),  half = z * sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)  # exact at the ends (no 0.9999999 from rounding)
    return lo, hi


def episodes_needed(
    rate: float, half_width: float = SMALL_N_HALF_WIDTH, z: float = Z95, limit: int = 100_000
) -> int:
    """Smallest n whose Wilson interval at this success rate has half-width <= ``half_width`` (at most ``limit``)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    for n in range(1, limit + 1):
        lo, hi = wilson_interval(round(rate * n), n, z)
        if (hi - lo) / 2 <= half_width:
            return n
    return limit


@dataclass(frozen=True)
class PairedDiff:
    """Difference of success rates first − second on matched pairs, with Newcombe's method-10 interval."""

    n: int
    both: int
    first_only: int
    second_only: int
    neither: int
    diff: float
    low: float
    high: float


def paired_difference(first: Sequence[bool], second: Sequence[bool], z: float = Z95) -> PairedDiff:
    """Newcombe (1998, method 10, corrected φ) interval for p_first − p_second from paired binary outcomes.

    Args:
        first, second: outcomes of the same n units (episode k of each list is one pair).

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(first) != len(second):
        raise ValueError(f"paired outcomes need equal lengths, got {len(first)} and {len(second)}")
    n = len(first)
    if n == 0:
        raise ValueError("no pairs: a paired difference needs at least one matched episode")
    a = sum(1 for x, y in zip(first, second, strict=True) if x and y)
    b = sum(1 for x, y in zip(first, second, strict=True) if x and not y)
    c = sum(1 for x, y in zip(first, second, strict=True) if not x and y)
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    # continuity-corrected correlation (conservative): with the plain phi the interval collapses to [0, 0] when
    # both arms agree on every episode (b = c = 0) at a rate of 1/2, however few the episodes.
    cov = a * d - b * c
    cov = max(cov - n / 2, 0.0) if cov > 0 else cov
    phi = cov / math.sqrt(margins) if margins > 0 else 0.0
    diff = p1 - p2
    dl = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return PairedDiff(n, a, b, c, d, diff, max(-1.0, diff - dl), min(1.0, diff + du))


def relative_drop(rate: float, control_rate: float) -> float | None:
    """1 − rate / control_rate; None when the control never succeeds (the ratio is undefined)."""
    return None if control_rate <= 0 else 1.0 - rate / control_rate


def mover_mean(estimates: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Unweighted mean of K independent estimates (point, low, high) with its MOVER interval.

    S = Σ p_i / K,  L = S − sqrt(Σ (p_i − l_i)²) / K,  U = S + sqrt(Σ (u_i − p_i)²) / K.
    """
    if not estimates:
        raise ValueError("mover_mean needs at least one estimate")
    k = len(estimates)
    s = sum(p for p, _, _ in estimates) / k
    lo = s - math.sqrt(sum((p - lo_) ** 2 for p, lo_, _ in estimates)) / k
    hi = s + math.sqrt(sum((hi_ - p) ** 2 for p, _, hi_ in estimates)) / k
    return s, lo, hi


# ---------------------------------------------------------------------------- per-run summary
@dataclass
class VariantStats:
    """One variant's summary, computed by :func:`summarize` only: what ``summary.csv``, the leaderboard rows, RL
    evaluation logs and model cards show."""

    variant: str
    axis: str
    split: str
    severity: float | None
    description: str
    n: int
    successes: int
    rate: float
    ci_low: float
    ci_high: float
    grasp_rate: float
    success_once_rate: float
    failures: dict[str, int]
    instructions: dict[str, int]
    is_control: bool = False
    paired: PairedDiff | None = None
    """variant − control on the (seed, episode) pairs present in both."""
    unpaired: int = 0
    """Episodes of this variant without a control episode of the same (seed, episode)."""
    relative_drop: float | None = None
    small_n: bool = False
    family: str = "put_on"
    """The task family (:mod:`vla_gen_bench.families`); its control arm is the one this variant is paired with."""

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def rates(self) -> dict[str, Any]:
        """n, successes, rate, Wilson CI and grasp rate as a JSON object (what training logs per evaluation)."""
        return {"n": self.n, "successes": self.successes, "rate": self.rate, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "grasp_rate": self.grasp_rate}  # fmt: skip


@dataclass
class AxisStats:
    axis: str
    variants: list[str]
    score: float
    ci_low: float
    ci_high: float
    diff_vs_control: float | None
    relative_drop: float | None


@dataclass
class Summary:
    control: str
    variants: list[VariantStats]
    axes: list[AxisStats]
    ood: AxisStats | None
    warnings: list[str] = field(default_factory=list)
    families: dict[str, Summary] = field(default_factory=dict)
    """With more than one task family: each family's own summary (its variants against its control arm, its
    per-axis and OOD scores); ``axes`` and ``ood`` are then the MOVER mean of the families' (overall)."""

    def variant(self, name: str) -> VariantStats:
        for v in self.variants:
            if v.variant == name:
                return v
        raise KeyError(name)

    def axis(self, name: str) -> AxisStats:
        for a in self.axes:
            if a.axis == name:
                return a
        raise KeyError(name)


def _order(records: Iterable[dict[str, Any]], meta: dict[str, dict[str, Any]]) -> list[str]:
    """Variants ordered by axis (AXES order), then as listed in run.json, then by first appearance."""
    seen: list[str] = list(meta)
    for r in records:
        if r["variant"] not in seen:
            seen.append(r["variant"])
    return seen


def family_of(name: str, meta: dict[str, dict[str, Any]]) -> str:
    """A variant's family: run.json's ``family`` key (absent for put_on), else the catalog's (put_on if unknown)."""
    m = meta.get(name, {})
    if "family" in m:
        return str(m["family"])
    from vla_gen_bench.variants import VariantError, get_variant

    try:
        return get_variant(name).family
    except VariantError:
        return "put_on"


def _family_control(family: str, control: str, meta: dict[str, dict[str, Any]]) -> str:
    """The control arm of a family: put_on's is the run's ``control``; another's is named in run.json or the
    registry."""
    if family == "put_on":
        return control
    for m in meta.values():
        if m.get("family") == family and m.get("control"):
            return str(m["control"])
    from vla_gen_bench.families import get_family

    return get_family(family).control


def summarize(records: Iterable[Any], control: str,
              variants_meta: dict[str, dict[str, Any]] | None = None) -> Summary:  # fmt: skip
    """Per-variant, per-axis and OOD statistics (see :func:`summarize_family`), per task family when the records
    hold more than one: each family's variants are paired with its own control arm, its axes scored on its own,
    and the overall per-axis and OOD scores are the MOVER mean of the families' (the same construction one level
    up). With one family this is exactly :func:`summarize_family`.

    Args:
        records: one per episode (see :func:`summarize_family`).
        control: the put_on family's control variant (run.json's ``control``).
        variants_meta: run.json's ``variants`` (with ``family`` / ``control`` keys for the other families).
    """
    meta = variants_meta or {}
    records = [r if isinstance(r, Mapping) else r.to_dict(chain=False) for r in records]
    by_family: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_family.setdefault(family_of(r["variant"], meta), []).append(r)
    if len(by_family) <= 1:
        fam = next(iter(by_family), "put_on")
        return summarize_family(records, _family_control(fam, control, meta), meta, fam)
    from vla_gen_bench.families import FAMILIES

    order = [f for f in FAMILIES if f in by_family] + sorted(set(by_family) - set(FAMILIES))
    parts = {f: summarize_family(by_family[f], _family_control(f, control, meta),
                                 {k: m for k, m in meta.items() if family_of(k, meta) == f}, f)
             for f in order}  # fmt: skip

    def overall(name: str, per: list[tuple[str, AxisStats]]) -> AxisStats:
        """MOVER mean of the families' scores; the difference and drop against the mean of their controls."""
        s, lo, hi = mover_mean([(x.score, x.ci_low, x.ci_high) for _, x in per])
        paired = all(x.diff_vs_control is not None for _, x in per)
        diff = sum(x.diff_vs_control for _, x in per) / len(per) if paired else None
        ctrl = sum(x.score - x.diff_vs_control for _, x in per) / len(per) if paired else None
        return AxisStats(name, [f"{f}:{x.axis}" for f, x in per], s, max(0.0, lo), min(1.0, hi), diff,
                         None if ctrl is None else relative_drop(s, ctrl))  # fmt: skip

    axes = []
    for a in AXES:
        per = [(f, x) for f, p in parts.items() for x in p.axes if x.axis == a]
        if per:
            axes.append(overall(a, per))
    oods = [(f, p.ood) for f, p in parts.items() if p.ood is not None]
    ood = overall("out-of-distribution (mean of families)", oods) if oods else None
    variants = [v for p in parts.values() for v in p.variants]
    warnings = [f"{f}: {w}" for f, p in parts.items() for w in p.warnings]
    return Summary(control, variants, axes, ood, warnings, families=parts)


def summarize_family(records: Iterable[Any], control: str,
                     variants_meta: dict[str, dict[str, Any]] | None = None, family: str = "put_on") -> Summary:  # fmt: skip
    """Per-variant, per-axis and OOD statistics of de-duplicated episode records (see module docstring): the one
    place success rates are computed (report, leaderboard, RL and SFT evaluation, model cards).

    Args:
        records: one per episode, each an :class:`~vla_gen_bench.eval.records.EpisodeRecord` or its JSON object
            (at least variant, axis, seed, episode, success, success_once, grasped, failure, instruction; split
            and severity when known).
        control: name of the control variant (the in-distribution arm every variant is paired with).
        variants_meta: run.json's ``variants`` (axis, split, severity, description per variant), for ordering and
            descriptions.
        family: the records' task family (its outcome labels are the ``failures`` keys).
    """
    from vla_gen_bench.families import FAMILIES

    labels = FAMILIES[family].failure_labels if family in FAMILIES else FAILURE_LABELS
    meta = variants_meta or {}
    records = [r if isinstance(r, Mapping) else r.to_dict(chain=False) for r in records]
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], []).append(r)
    warnings: list[str] = []
    ctrl_by_ep = {(r["seed"], r["episode"]): bool(r["success"]) for r in by_variant.get(control, [])}
    if not ctrl_by_ep:
        warnings.append(f"no episodes of the control variant {control!r}: no paired differences or drops")
    ctrl_rate = sum(ctrl_by_ep.values()) / len(ctrl_by_ep) if ctrl_by_ep else None

    out: list[VariantStats] = []
    for name in _order(records, meta):
        rows = sorted(by_variant.get(name, []), key=lambda r: (r["seed"], r["episode"]))
        if not rows:
            continue
        m = meta.get(name, {})
        n = len(rows)
        k = sum(bool(r["success"]) for r in rows)
        lo, hi = wilson_interval(k, n)
        fails = Counter(r["failure"] for r in rows)
        vs = VariantStats(
            variant=name, axis=rows[0]["axis"], split=str(rows[0].get("split", m.get("split", ""))),
            severity=rows[0].get("severity", m.get("severity")), description=str(m.get("description", "")),
            n=n, successes=k, rate=k / n, ci_low=lo, ci_high=hi,
            grasp_rate=sum(bool(r["grasped"]) for r in rows) / n,
            success_once_rate=sum(bool(r["success_once"]) for r in rows) / n,
            failures={lab: fails.get(lab, 0) for lab in labels},
            instructions=dict(Counter(r["instruction"] for r in rows).most_common()),
            is_control=name == control, family=family,
        )  # fmt: skip
        vs.small_n = vs.half_width > SMALL_N_HALF_WIDTH
        if ctrl_by_ep and not vs.is_control:
            pairs = [
                (bool(r["success"]), ctrl_by_ep[(r["seed"], r["episode"])])
                for r in rows
                if (r["seed"], r["episode"]) in ctrl_by_ep
            ]
            vs.unpaired = n - len(pairs)
            if pairs:
                vs.paired = paired_difference([p[0] for p in pairs], [p[1] for p in pairs])
            vs.relative_drop = relative_drop(vs.rate, ctrl_rate)
            if vs.unpaired:
                warnings.append(f"{name}: {vs.unpaired} of {n} episodes have no control episode with the same (seed, episode) "
                                f"(they count in its rate, not in the paired difference)")  # fmt: skip
        out.append(vs)

    small = [v for v in out if v.small_n]
    if small:
        detail = ", ".join(
            f"{v.variant} (n={v.n}, ±{v.half_width:.2f}, ~{episodes_needed(v.rate)} needed)" for v in small
        )
        warnings.append(
            f"{len(small)} of {len(out)} variants have a 95 % CI half-width > {SMALL_N_HALF_WIDTH:.2f}: too few "
            f"episodes to separate two policies by 10 points: {detail}"
        )
    axes: list[AxisStats] = []
    present = [a for a in AXES if any(v.axis == a for v in out)] + sorted({v.axis for v in out} - set(AXES))
    for a in present:
        vs = [v for v in out if v.axis == a]
        s, lo, hi = mover_mean([(v.rate, v.ci_low, v.ci_high) for v in vs])
        axes.append(AxisStats(a, [v.variant for v in vs], s, max(0.0, lo), min(1.0, hi),
                              None if ctrl_rate is None else s - ctrl_rate,
                              None if ctrl_rate is None else relative_drop(s, ctrl_rate)))  # fmt: skip
    ood_axes = [a for a in axes if a.axis != "in-distribution"]
    ood = None
    if ood_axes:
        s, lo, hi = mover_mean([(a.score, a.ci_low, a.ci_high) for a in ood_axes])
        ood = AxisStats("out-of-distribution (mean of axes)", [a.axis for a in ood_axes], s, max(0.0, lo),
                        min(1.0, hi), None if ctrl_rate is None else s - ctrl_rate,
                        None if ctrl_rate is None else relative_drop(s, ctrl_rate))  # fmt: skip
    return Summary(control, out, axes, ood, warnings)
