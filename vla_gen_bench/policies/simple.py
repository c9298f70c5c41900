"""Reference policies that need no model: ``random`` (uniform in a small box) and ``zero`` (hold still)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_gen_bench.policies.base import ActionSpec


@dataclass
class RandomPolicy:
    """Uniform random deltas (±2 cm, ±0.1 rad) and a random gripper sign; the chance-level baseline."""

    seed: int = 0
    spec: ActionSpec = field(default_factory=ActionSpec)
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "random", "kind": "baseline"})

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed)

    def reset(self, instruction: str) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        # the runner's per-step sample_key makes an episode's actions independent of what ran before (audits re-run it)
        key = obs.get("sample_key")
        rng = self._rng if key is None else np.random.default_rng([self.seed, int(key)])
        a = rng.uniform(-1, 1, 7) * np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0])
        a[6] = 1.0 if a[6] >= 0 else -1.0
        return a.astype(np.float32)


@dataclass
class ZeroPolicy:
    """Never moves, gripper open. The conventions check refuses it for scoring (it never moves the robot)."""

    spec: ActionSpec = field(default_factory=ActionSpec)
    metadata: dict[str, Any] = field(default_factory=lambda: {"name": "zero", "kind": "baseline"})

    def reset(self, instruction: str) -> None:
        pass

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)
