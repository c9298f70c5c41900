"""Statistics against hand-computed values (z = 1.959964)."""

import ast
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vla_gen_bench.eval.stats import (
    FAILURE_LABELS,
    episodes_needed,
    mover_mean,
    paired_difference,
    relative_drop,
    summarize,
    wilson_interval,
)

from .conftest import OUTCOMES, VARIANTS, record, standard_records

# Wilson 4/10: centre = (0.4 + 0.192073) / 1.384146 = 0.427753, half = 1.96*sqrt(0.024 + 0.0096037)/1.384146 = 0.259573
W4 = (0.168180, 0.687326)
# Wilson 7/10: centre = (0.7 + 0.192073) / 1.384146 = 0.644493, half = 1.96*sqrt(0.021 + 0.0096037)/1.384146 = 0.247715
W7 = (0.396778, 0.892209)
# Wilson 5/10: centre = 0.5, half = 1.96*sqrt(0.025 + 0.0096037)/1.384146 = 0.263407
W5 = (0.236593, 0.763407)


def test_wilson_hand_values():
    assert wilson_interval(4, 10) == pytest.approx(W4, abs=1e-6)
    assert wilson_interval(7, 10) == pytest.approx(W7, abs=1e-6)
    assert wilson_interval(5, 10) == pytest.approx(W5, abs=1e-6)


def test_newcombe_paired_difference_hand_values():
    # pairs (variant, control): a=3 both, b=1 variant only, c=4 control only, d=2 neither; n=10
    first = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    second = [1, 1, 1, 0, 1, 1, 1, 1, 0, 0]
    p = paired_difference(first, second)
    assert (p.n, p.both, p.first_only, p.second_only, p.neither) == (10, 3, 1, 4, 2)
    # p1 = 0.4, p2 = 0.7, D = -0.3; ad - bc = 2 <= n/2 = 5, so the corrected phi* = 0 and the widths add in quadrature:
    # L = -0.3 - sqrt(0.231820^2 + 0.192209^2) = -0.3 - 0.301139,  U = -0.3 + sqrt(0.287326^2 + 0.303222^2) = -0.3 + 0.417732
    assert p.diff == pytest.approx(-0.3)
    assert p.low == pytest.approx(-0.601139, abs=1e-5) and p.high == pytest.approx(0.117732, abs=1e-5)
    # a=6, b=1, c=2, d=11 (n=20): ad - bc = 64 > 10, phi* = (64 - 10) / sqrt(7*13*8*12) = 54 / 93.4665 = 0.577747
    # p1 = 0.35, Wilson (0.181192, 0.567146); p2 = 0.40, Wilson (0.218807, 0.613418)
    # L = -0.05 - sqrt(0.168808^2 - 2*0.577747*0.168808*0.213418 + 0.213418^2) = -0.05 - sqrt(0.032414) = -0.230039
    # U = -0.05 + sqrt(0.217146^2 - 2*0.577747*0.217146*0.181193 + 0.181193^2) = -0.05 + sqrt(0.034520) = 0.135796
    q = paired_difference([1] * 7 + [0] * 13, [1] * 6 + [0] + [1] * 2 + [0] * 11)
    assert (q.both, q.first_only, q.second_only, q.neither) == (6, 1, 2, 11)
    assert (q.low, q.high) == pytest.approx((-0.230039, 0.135796), abs=1e-5)
    # identical arms at 1/2: the plain phi = 1 would give [0, 0]; the corrected phi* = 0.5 keeps a real width
    same = paired_difference([1, 0, 1, 0], [1, 0, 1, 0])
    assert same.diff == 0 and same.low == pytest.approx(-same.high) and same.high > 0.3
    # an empty margin (control always succeeds) sets phi = 0: the two Wilson widths add in quadrature
    allc = paired_difference([1, 0, 0, 0], [1, 1, 1, 1])
    l1, u1 = wilson_interval(1, 4)
    l2, u2 = wilson_interval(4, 4)
    assert allc.low == pytest.approx(-0.75 - math.hypot(0.25 - l1, u2 - 1.0))
    assert allc.high == pytest.approx(-0.75 + math.hypot(u1 - 0.25, 1.0 - l2))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1], [1, 0])
    with pytest.raises(ValueError, match="no pairs"):
        paired_difference([], [])


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_paired_interval_contains_the_estimate_and_stays_in_range(pairs):
    p = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
    assert -1.0 <= p.low <= p.diff + 1e-12 and p.diff - 1e-12 <= p.high <= 1.0
    assert p.both + p.first_only + p.second_only + p.neither == p.n == len(pairs)
    # swapping the arms mirrors the interval
    q = paired_difference([b for _, b in pairs], [a for a, _ in pairs])
    assert (
        q.diff == pytest.approx(-p.diff)
        and q.low == pytest.approx(-p.high)
        and q.high == pytest.approx(-p.low)
    )


def test_mover_mean_and_relative_drop():
    s, lo, hi = mover_mean([(0.4, *W4), (0.5, *W5)])
    # S = 0.45; L = 0.45 - sqrt(0.231820^2 + 0.263407^2)/2 = 0.274555; U = 0.45 + sqrt(0.287326^2 + 0.263407^2)/2
    assert (s, lo, hi) == pytest.approx((0.45, 0.274555, 0.644900), abs=1e-5)
    assert mover_mean([(0.4, *W4)]) == pytest.approx((0.4, *W4))  # K = 1 is the Wilson interval
    assert relative_drop(0.4, 0.7) == pytest.approx(3 / 7)
    assert relative_drop(0.2, 0.0) is None
    with pytest.raises(ValueError):
        mover_mean([])


def test_episodes_needed():
    # p = 0.5: Wilson half-width at n=93 is 1.96*sqrt(.25/93 + 3.8415/34596)/(1+3.8415/93) = 0.0998; at n=92 0.1003
    assert episodes_needed(0.5) == 93
    assert episodes_needed(0.0) < episodes_needed(0.9) < episodes_needed(0.5)
    lo, hi = wilson_interval(round(0.9 * episodes_needed(0.9)), episodes_needed(0.9))
    assert (hi - lo) / 2 <= 0.1


def test_summary_per_variant_axis_and_ood():
    s = summarize(standard_records(), "ind", VARIANTS)
    assert [v.variant for v in s.variants] == list(VARIANTS)
    ut = s.variant("unseen_table")
    assert (ut.n, ut.successes, ut.rate) == (10, 4, 0.4)
    assert (ut.ci_low, ut.ci_high) == pytest.approx(W4, abs=1e-6)
    assert ut.paired.diff == pytest.approx(-0.3) and ut.paired.n == 10
    assert (ut.paired.low, ut.paired.high) == pytest.approx((-0.601139, 0.117732), abs=1e-5)
    assert ut.relative_drop == pytest.approx(1 - 0.4 / 0.7)
    # failures: the 6 failed episodes 3,4,5,6,8,9 -> odd indices dropped (3,5,9), even never_grasped (4,6,8)
    assert ut.failures == {
        "success": 4,
        "never_grasped": 3,
        "wrong_object": 0,
        "dropped": 3,
        "misplaced": 0,
        "timeout": 0,
    }
    assert ut.grasp_rate == pytest.approx(0.7)
    assert (
        sum(ut.instructions.values()) == 10 and ut.split == "unseen" and ut.description == "16 unseen tables"
    )
    ctrl = s.variant("ind")
    assert ctrl.is_control and ctrl.paired is None and ctrl.relative_drop is None
    vision = s.axis("vision")
    assert vision.variants == ["unseen_table", "overlay_noise"]
    assert (vision.score, vision.ci_low, vision.ci_high) == pytest.approx(
        (0.45, 0.274555, 0.644900), abs=1e-5
    )
    assert vision.diff_vs_control == pytest.approx(0.45 - 0.7)
    assert vision.relative_drop == pytest.approx(1 - 0.45 / 0.7)
    assert [a.axis for a in s.axes] == ["in-distribution", "vision", "semantics", "execution"]
    # OOD = mean of the three non-ID axis scores (0.45, 0.8, 0.2), each axis counted once
    assert s.ood.score == pytest.approx((0.45 + 0.8 + 0.2) / 3)
    assert s.ood.variants == ["vision", "semantics", "execution"]
    # n = 10 everywhere: every variant is too small to separate policies by 10 points
    assert all(v.small_n for v in s.variants)
    (w,) = [w for w in s.warnings if "too few episodes to separate two policies by 10 points" in w]
    assert w.startswith("5 of 5 variants have a 95 % CI half-width > 0.10")
    assert "unseen_table (n=10, ±0.26, ~89 needed)" in w


def test_small_n_rule_and_pairing_by_episode_index():
    big = [record("ind", k, k % 20 != 0) for k in range(200)]  # 190/200: half-width 0.031
    # the variant's episodes are listed in reverse order and 3 have no control counterpart
    var = [record("unseen_table", k, k % 2 == 0) for k in reversed(range(203))]
    s = summarize(big + var, "ind", VARIANTS)
    assert not s.variant("ind").small_n and s.variant("ind").half_width == pytest.approx(
        (wilson_interval(190, 200)[1] - wilson_interval(190, 200)[0]) / 2)  # fmt: skip
    ut = s.variant("unseen_table")
    assert ut.n == 203 and ut.unpaired == 3 and ut.paired.n == 200
    # pairs by index: variant succeeds on even k; control fails on k % 20 == 0 (all even)
    assert (ut.paired.both, ut.paired.first_only, ut.paired.second_only, ut.paired.neither) == (
        90,
        10,
        100,
        0,
    )
    assert any(
        "3 of 203 episodes have no control episode with the same (seed, episode)" in w for w in s.warnings
    )
    assert not ut.small_n and not any("too few episodes" in w for w in s.warnings)


def test_missing_control_is_a_warning_not_a_wrong_number():
    s = summarize([r for r in standard_records() if r["variant"] != "ind"], "ind", VARIANTS)
    assert all(v.paired is None and v.relative_drop is None for v in s.variants)
    assert s.axis("vision").diff_vs_control is None
    assert any("no episodes of the control variant 'ind'" in w for w in s.warnings)


def test_outcome_fixture_is_what_the_hand_values_assume():
    assert sum(OUTCOMES["ind"]) == 7 and sum(OUTCOMES["unseen_table"]) == 4


def test_failure_labels_are_defined_once_and_shared_by_env_statistics_records_and_leaderboard():
    package = Path(__file__).parents[2] / "vla_gen_bench"
    defined = [
        f"{p.relative_to(package.parent)}:{n.lineno}" for p in sorted(package.rglob("*.py"))
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        and any(getattr(t, "id", "") == "FAILURE_LABELS" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
    ]  # fmt: skip
    assert len(defined) == 1 and defined[0].startswith("vla_gen_bench/episode.py:"), defined
    from vla_gen_bench import episode
    from vla_gen_bench.eval import records
    from vla_gen_bench.leaderboard import derive

    assert FAILURE_LABELS is episode.FAILURE_LABELS is records.FAILURE_LABELS is derive.FAILURE_LABELS
    # the env's info["failure"] indexes them: six distinct labels, 0 = success
    assert FAILURE_LABELS[0] == "success" and len(set(FAILURE_LABELS)) == 6


def test_summarize_takes_records_or_their_json_objects_alike():
    from vla_gen_bench.eval.records import EpisodeRecord

    dicts = standard_records()
    typed = [EpisodeRecord.from_dict(r, f"x:{i}") for i, r in enumerate(dicts)]
    a, b = summarize(dicts, "ind", VARIANTS), summarize(typed, "ind", VARIANTS)
    assert a == b and b.variant("unseen_table").rates() == {
        "n": 10, "successes": 4, "rate": 0.4, "ci_low": pytest.approx(W4[0], abs=1e-6),
        "ci_high": pytest.approx(W4[1], abs=1e-6), "grasp_rate": pytest.approx(0.7),
    }  # fmt: skip
