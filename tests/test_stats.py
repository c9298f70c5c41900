import pytest
from hypothesis import given
from hypothesis import strategies as st

from vla_gen_bench.eval.stats import wilson_interval


def test_wilson_matches_hand_computed_values():
    # 8/10: p = 0.8, z = 1.96: centre = (0.8 + 0.19208) / 1.38415 = 0.71682; half = 1.96 * sqrt(0.016 + 0.0009604) / 1.38415
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_contains_the_point_estimate(k, n):
    k = min(k, n)
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
