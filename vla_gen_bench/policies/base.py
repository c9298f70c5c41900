"""The Policy protocol every adapter implements, and the action convention of the benchmark.

Observation given to a policy (one env, unbatched)::

    {"image": (H, W, 3) uint8, "instruction": str, "state": (S,) float32}
    # plus "privileged": dict[str, np.ndarray] for policies whose spec says privileged=True (the scripted oracle)

Action returned: ``(7,)`` or ``(chunk, 7)`` float — ``[dx, dy, dz (m, robot base frame), drx, dry, drz (rad, XYZ
Euler, applied to the previous end-effector *target*), gripper (+1 open, -1 close)]``.
"""

from __future__ import annotations

import inspect
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

ACTION_DIM = 7


@dataclass(frozen=True)
class ActionSpec:
    """What a policy declares about its actions; recorded with every evaluation."""

    dim: int = ACTION_DIM
    translation_frame: str = "robot_base"
    rotation: str = "delta_euler_xyz"
    gripper: str = "+1_open_-1_close"
    chunk: int = 1
    """Actions per call; a (chunk, 7) array is executed open-loop, one row per control step."""
    privileged: bool = False
    """True only for oracles that read obs["privileged"] (true poses); never for a learned policy."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Policy(Protocol):
    spec: ActionSpec
    metadata: dict[str, Any]

    def reset(self, instruction: str) -> None:
        """Start a new episode with this instruction."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Return a (7,) action or a (chunk, 7) action chunk for this observation."""


@dataclass
class PolicyBase:
    """Convenience base: stores spec/metadata and ignores reset."""

    spec: ActionSpec = field(default_factory=ActionSpec)
    metadata: dict[str, Any] = field(default_factory=dict)

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, obs: dict[str, Any]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def supports_batches(policy_or_class: Any) -> bool:
    """A policy (or policy class) declares it answers many environments at once by defining
    ``act_batch(images (B, H, W, 3) uint8, instructions list[str]) -> (B, 7) or (B, chunk, 7)``.

    Such a policy keeps no per-episode state beyond the instruction that travels with every row (``reset`` is not
    called per environment), so one instance can serve many simulator workers in dynamic batches.
    """
    return callable(getattr(policy_or_class, "act_batch", None)) and not getattr(
        getattr(policy_or_class, "spec", None), "privileged", False
    )


def takes_sample_keys(act_batch) -> bool:
    """Whether ``act_batch`` accepts per-row ``sample_keys`` (per-episode random streams for sampling policies)."""
    try:
        return "sample_keys" in inspect.signature(act_batch).parameters
    except (TypeError, ValueError):
        return False


def describe_exception(e: BaseException) -> str:
    """``Type: first and last message line (file:line where it was raised)`` on one line."""
    frames = traceback.extract_tb(e.__traceback__)
    at = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    msg = " ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else ""
    return f"{type(e).__name__}{': ' + msg if msg else ''}{at}"
