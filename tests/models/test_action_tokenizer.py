"""Action tokens and (de-)normalisation against OpenVLA's formulas (spec/openvla_and_sd.md §2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vla_gen_bench.models.action_tokenizer import (
    ActionStats,
    ActionTokenizer,
    UnnormKeyError,
    resolve_unnorm_key,
)

BRIDGE_LIKE = {
    "action": {
        "q01": [-0.03, -0.04, -0.03, -0.08, -0.09, -0.2, 0.0],
        "q99": [0.03, 0.04, 0.04, 0.08, 0.08, 0.2, 1.0],
        "mask": [True] * 6 + [False],
    }
}


@pytest.mark.parametrize("vocab", [32000, 1024])
def test_round_trip_is_exact_on_bin_centres(vocab):
    tok = ActionTokenizer(vocab)
    centres = tok.centers
    assert centres.shape == (255,)
    ids = tok.encode(np.tile(centres[:, None], (1, 7)))
    assert np.array_equal(tok.decode(ids), np.tile(centres[:, None], (1, 7)))  # exact, not approximately
    assert len(np.unique(ids)) == 255


def test_official_token_ids():
    tok = ActionTokenizer(32000)
    assert tok.token_range == (31744, 32000)
    assert tok.encode(np.array([1.0, -1.0, 5.0, -5.0])).tolist() == [31744, 31999, 31744, 31999]
    # 31744 and 31745 decode to the same (top) centre; 31999 to the lowest
    assert tok.decode(np.array([31744]))[0] == tok.decode(np.array([31745]))[0] == tok.centers[254]
    assert tok.decode(np.array([31999]))[0] == tok.centers[0]
    # official formula: token = 32000 - digitize(a, linspace(-1, 1, 256))
    a = np.array([-0.5, 0.0, 0.3337])
    assert tok.encode(a).tolist() == (32000 - np.digitize(a, np.linspace(-1, 1, 256))).tolist()


def test_decode_rejects_non_action_tokens():
    with pytest.raises(ValueError, match="not action tokens"):
        ActionTokenizer(32000).decode(np.array([31743, 31800]))


@given(st.floats(-1.0, 1.0))
def test_quantisation_error_is_at_most_half_a_bin(a):
    tok = ActionTokenizer(32000)
    half_bin = 1.0 / 255
    assert abs(tok.decode(tok.encode(np.array([a])))[0] - a) <= half_bin + 1e-12


def test_denormalize_uses_q01_q99_and_mask():
    stats = ActionStats.from_norm_stats({"bridge_orig": BRIDGE_LIKE}, None)
    n = np.array([[-1.0, 1.0, 0.0, 0.5, -0.5, 0.25, 0.7]])
    out = stats.denormalize(n)[0]
    q01, q99 = np.array(BRIDGE_LIKE["action"]["q01"]), np.array(BRIDGE_LIKE["action"]["q99"])
    expected = 0.5 * (n[0] + 1) * (q99 - q01) + q01
    assert np.allclose(out[:6], expected[:6])
    assert out[6] == 0.7  # gripper is not de-normalised
    assert np.isclose(out[0], q01[0]) and np.isclose(out[1], q99[1])


@given(st.lists(st.floats(-0.02, 0.02), min_size=7, max_size=7))
def test_normalize_inverts_denormalize_inside_the_quantiles(x):
    stats = ActionStats.from_norm_stats({"k": BRIDGE_LIKE}, "k")
    x = np.array(x)
    assert np.allclose(stats.denormalize(stats.normalize(x)), x, atol=1e-7)  # OpenVLA adds 1e-8 to the range


def test_normalize_clips_outliers():
    stats = ActionStats.from_norm_stats({"k": BRIDGE_LIKE}, "k")
    assert stats.normalize(np.array([1.0, -1.0, 0, 0, 0, 0, 1.0]))[:2].tolist() == [1.0, -1.0]


def test_unnorm_key_resolution():
    one = {"bridge_orig": BRIDGE_LIKE}
    two = {"bridge_orig": BRIDGE_LIKE, "fractal20220817_data": BRIDGE_LIKE}
    assert resolve_unnorm_key(one, None) == "bridge_orig"
    assert resolve_unnorm_key(two, "fractal20220817_data") == "fractal20220817_data"
    with pytest.raises(
        UnnormKeyError, match="unnorm_key is required.*available: bridge_orig, fractal20220817_data"
    ):
        resolve_unnorm_key(two, None)
    with pytest.raises(UnnormKeyError, match="did you mean 'bridge_orig'.*available: bridge_orig, fractal"):
        resolve_unnorm_key(two, "bridge_org")
    with pytest.raises(UnnormKeyError, match="no norm_stats"):
        resolve_unnorm_key({}, None)


def test_inconsistent_stats_are_rejected():
    bad = {"k": {"action": {"q01": [0, 0], "q99": [1, 1, 1]}}}
    with pytest.raises(UnnormKeyError, match="inconsistent shapes"):
        ActionStats.from_norm_stats(bad, "k")
