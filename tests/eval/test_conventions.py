import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vla_gen_bench.eval.conventions import ActionError, check_moves, check_spec, validate_action
from vla_gen_bench.policies.base import ActionSpec

# the env's bounds (envs/robots.py), repeated here so the test does not import the simulator
LOW = np.array([-0.1, -0.1, -0.1, -0.5, -0.5, -0.5, -1.0])
HIGH = -LOW
SPEC = ActionSpec()


def test_valid_actions_come_back_as_chunk_by_7_float64():
    a = validate_action(np.array([0.01, -0.02, 0.1, 0.5, -0.5, 0, -1], np.float32), SPEC, LOW, HIGH)
    assert a.shape == (1, 7) and a.dtype == np.float64
    assert a[0, 2] == pytest.approx(0.1)  # float32 0.1 is within the rounding slack
    c = validate_action([[0.0] * 6 + [1.0]] * 4, ActionSpec(chunk=4), LOW, HIGH)
    assert c.shape == (4, 7) and (c[:, 6] == 1).all()


@pytest.mark.parametrize("shape", [(6,), (8,), (2, 6), (0, 7), (1, 1, 7), ()])
def test_wrong_shapes_name_the_expected_shapes(shape):
    with pytest.raises(ActionError, match=r"shape \(.*\); expected \(7,\) or \(chunk, 7\)"):
        validate_action(np.zeros(shape), SPEC, LOW, HIGH)


def test_non_numeric_actions():
    with pytest.raises(ActionError, match="dtype <U"):
        validate_action(np.array(["0"] * 7), SPEC, LOW, HIGH)
    with pytest.raises(ActionError, match="not an array of numbers"):
        validate_action([[0.0] * 7, [0.0]], SPEC, LOW, HIGH)


def test_nan_and_inf_name_the_dimensions():
    a = np.zeros(7)
    a[1], a[6] = np.nan, np.inf
    with pytest.raises(ActionError, match=r"non-finite actions: dy=nan, gripper=inf$"):
        validate_action(a, SPEC, LOW, HIGH)
    chunk = np.zeros((3, 7))
    chunk[2, 4] = -np.inf
    with pytest.raises(ActionError, match=r"dry=-inf \(row 2\)"):
        validate_action(chunk, ActionSpec(chunk=3), LOW, HIGH)


def test_out_of_range_names_dims_values_bounds_and_the_convention():
    a = np.array([0.8, 0.0, -0.35, 0.0, 0.0, 0.7, 0.5])  # a normalised-[-1, 1] policy
    with pytest.raises(ActionError) as e:
        validate_action(a, SPEC, LOW, HIGH)
    msg = str(e.value)
    assert "dx=0.8m not in [-0.1, 0.1]" in msg and "dz=-0.35m not in [-0.1, 0.1]" in msg
    assert "drz=0.7rad not in [-0.5, 0.5]" in msg and "dy" not in msg.split(".")[0]
    assert "raw per-step deltas in metres and radians" in msg and "+1 open / -1 close" in msg
    with pytest.raises(ActionError, match=r"gripper=2 not in \[-1, 1\]"):
        validate_action([0, 0, 0, 0, 0, 0, 2.0], SPEC, LOW, HIGH)


def test_declared_spec_must_be_the_benchmarks():
    with pytest.raises(ActionError, match=r"gripper='0_open_1_close' \(expected '\+1_open_-1_close'\)"):
        validate_action(np.zeros(7), ActionSpec(gripper="0_open_1_close"), LOW, HIGH)
    with pytest.raises(ActionError, match="rotation='axis_angle'"):
        check_spec(ActionSpec(rotation="axis_angle"))
    with pytest.raises(ActionError, match="chunk=0"):
        check_spec(ActionSpec(chunk=0))


@given(hnp.arrays(np.float64, st.sampled_from([(7,), (1, 7), (5, 7)]),
                  elements=st.floats(-2, 2, allow_nan=False)))  # fmt: skip
def test_accepts_exactly_the_in_bounds_arrays(a):
    inside = bool(((a >= LOW - 1e-6) & (a <= HIGH + 1e-6)).all())
    if inside:
        out = validate_action(a, SPEC, LOW, HIGH)
        np.testing.assert_array_equal(out, np.atleast_2d(a))
    else:
        with pytest.raises(ActionError, match="beyond the env's bounds"):
            validate_action(a, SPEC, LOW, HIGH)


def test_check_moves():
    still = [np.zeros(16, np.float32) + 1e-5 * i for i in range(5)]  # physics jitter only
    with pytest.raises(ActionError, match=r"never moved the robot over 4 probe steps .*4e-05 <= 0.001"):
        check_moves(still)
    moving = [np.zeros(16)] + [np.r_[np.zeros(15), 0.002 * i] for i in range(1, 4)]
    assert check_moves(moving) == pytest.approx(0.006)
    # it returns to the start at the end: it still moved in between
    assert check_moves([np.zeros(3), np.ones(3) * 0.01, np.zeros(3)]) == pytest.approx(0.01)
    with pytest.raises(ActionError, match="at least one probe step"):
        check_moves([np.zeros(3)])
    with pytest.raises(ActionError, match="different shapes"):
        check_moves([np.zeros(3), np.zeros(4)])
    with pytest.raises(ActionError, match="non-finite"):
        check_moves([np.zeros(3), np.full(3, np.nan)])
    with pytest.raises(ActionError, match="never moved"):
        check_moves(moving, tol=0.01)
