"""Conventions check run on a few probe steps before scoring: refuse actions that the benchmark would silently
mangle (wrong shape, NaN/inf, values beyond the env's clipping bounds) and policies that never move the robot.

The benchmark's action is ``[dx, dy, dz (m), drx, dry, drz (rad), gripper]`` per control step, raw (not normalised
to [-1, 1]), gripper +1 open / -1 close. A policy trained on normalised actions typically shows up here as
translations of 0.3-1.0 "metres" per step; one with the wrong gripper sign shows up in the failure labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_gen_bench.policies.base import ACTION_DIM, ActionSpec

NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")
UNITS = ("m", "m", "m", "rad", "rad", "rad", "")
# The benchmark's convention, which the declared ActionSpec must match.
EXPECTED_SPEC = ActionSpec()


class ActionError(ValueError):
    """A policy's actions break the benchmark's action convention; the message says which values and why."""


def check_spec(spec: ActionSpec) -> None:
    """Refuse a declared ActionSpec whose dimension, frame, rotation or gripper convention differs from ours."""
    wrong = [
        f"{name}={getattr(spec, name)!r} (expected {getattr(EXPECTED_SPEC, name)!r})"
        for name in ("dim", "translation_frame", "rotation", "gripper")
        if getattr(spec, name) != getattr(EXPECTED_SPEC, name)
    ]
    if wrong:
        raise ActionError(
            "the policy declares an action convention the benchmark does not execute: " + "; ".join(wrong)
            + ". Convert its actions to [dx, dy, dz (m, robot base), drx, dry, drz (rad, XYZ Euler delta), "
            "gripper (+1 open, -1 close)] in an adapter."
        )  # fmt: skip
    if spec.chunk < 1:
        raise ActionError(f"the policy declares chunk={spec.chunk}; a chunk holds at least one action")


def validate_action(action, spec: ActionSpec, low, high, atol: float = 1e-6) -> np.ndarray:
    """Check one policy output against the benchmark's conventions and return it as a (chunk, 7) float64 array.

    Args:
        action: what ``policy.act`` returned: (7,) or (chunk, 7).
        spec: the policy's declared ActionSpec (its dimension/frame/rotation/gripper must be the benchmark's).
        low, high: the env's per-dimension clipping bounds, shape (7,) (``envs.robots.ACTION_LOW/HIGH``).
        atol: slack on the bounds for float rounding.

    Returns:
        The actions as a float64 array of shape (chunk, 7).

    Raises:
        ActionError: wrong shape or dtype, NaN/inf, values beyond the bounds, or a declared spec we do not execute.
    """
    check_spec(spec)
    try:
        a = np.asarray(action)
    except (TypeError, ValueError) as e:
        raise ActionError(
            f"the policy returned {type(action).__name__}, not an array of numbers ({e})"
        ) from e
    if a.dtype.kind not in "fiub":
        raise ActionError(f"the policy returned an array of dtype {a.dtype}; expected floats")
    if not (a.shape == (ACTION_DIM,) or (a.ndim == 2 and a.shape[0] >= 1 and a.shape[1] == ACTION_DIM)):
        raise ActionError(
            f"the policy returned actions of shape {a.shape}; expected ({ACTION_DIM},) or (chunk, {ACTION_DIM}) with "
            f"chunk >= 1, one row [dx, dy, dz, drx, dry, drz, gripper] per control step"
        )
    a = np.atleast_2d(a.astype(np.float64))
    bad = ~np.isfinite(a)
    if bad.any():
        rows, cols = np.nonzero(bad)
        where = ", ".join(
            f"{NAMES[c]}={a[r, c]}" + (f" (row {r})" if a.shape[0] > 1 else "")
            for r, c in zip(rows, cols, strict=True)
        )
        raise ActionError(f"the policy returned non-finite actions: {where}")
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), (ACTION_DIM,))
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), (ACTION_DIM,))
    out = (a < low - atol) | (a > high + atol)
    if out.any():
        rows, cols = np.nonzero(out)
        parts = []
        for r, c in list(zip(rows, cols, strict=True))[:10]:
            row = f" (row {r})" if a.shape[0] > 1 else ""
            parts.append(f"{NAMES[c]}={a[r, c]:.6g}{UNITS[c]} not in [{low[c]:.6g}, {high[c]:.6g}]{row}")
        more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
        raise ActionError(
            "the policy returned actions beyond the env's bounds: " + "; ".join(parts) + more
            + ". The env expects raw per-step deltas in metres and radians (not normalised to [-1, 1]) and the "
            "gripper as +1 open / -1 close; de-normalise the policy's output (e.g. with its dataset's action "
            "statistics) before returning it."
        )  # fmt: skip
    return a


def check_moves(states: Sequence[np.ndarray], tol: float = 1e-3) -> float:
    """Refuse a policy that never moved the robot over the probe steps.

    Args:
        states: the proprioceptive state (arm + gripper qpos, TCP pose) before the first probe action and after
            each probe step.
        tol: the largest absolute change of any state entry that still counts as "not moving".

    Returns:
        The largest absolute change of any state entry relative to the first state.

    Raises:
        ActionError: fewer than two states, states of different shapes or non-finite, or no entry moved by more than ``tol``.
    """
    if len(states) < 2:
        raise ActionError(
            f"check_moves needs the state before and after at least one probe step, got {len(states)}"
        )
    s = [np.asarray(x, dtype=np.float64).ravel() for x in states]
    if any(x.shape != s[0].shape for x in s):
        raise ActionError(f"probe states have different shapes: {sorted({x.shape for x in s})}")
    if not all(np.isfinite(x).all() for x in s):
        raise ActionError(
            "the robot state became non-finite during the probe steps (the simulation diverged)"
        )
    moved = float(max(np.max(np.abs(x - s[0])) for x in s[1:]))
    if moved <= tol:
        raise ActionError(
            f"the policy never moved the robot over {len(s) - 1} probe steps (largest change of any joint or TCP "
            f"coordinate {moved:.3g} <= {tol:g}); a policy that holds still cannot be scored. Check that its "
            "actions are raw metres/radians per step (not tiny normalised values) and that it receives the image."
        )
    return moved
