"""From trajectories to policy updates: generalised advantage estimation (:func:`compute_gae`) and the flattened
transitions an update reads (:class:`Batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def compute_gae(rewards: np.ndarray, values: np.ndarray, last_values: np.ndarray, terminated: np.ndarray | None,
                gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Generalised advantage estimation over one episode per column.

    Args:
        rewards, values: ``(T, ...)``.
        last_values: ``(...)`` V(s_T) of the observation after the last step.
        terminated: ``(...)`` True where the episode ended in a terminal state (then V(s_T) counts as 0); False
            (the default) for a truncated horizon, which is bootstrapped with ``last_values``.

    Returns:
        ``advantages, returns`` (``returns = advantages + values``), float32, shaped like ``rewards``.
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    nxt = np.asarray(last_values, np.float64)
    if terminated is not None:
        nxt = np.where(np.asarray(terminated, bool), 0.0, nxt)
    adv = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in range(len(rewards) - 1, -1, -1):
        delta = rewards[t] + gamma * nxt - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
        nxt = values[t]
    return adv.astype(np.float32), (adv + values).astype(np.float32)


@dataclass
class Batch:
    """Flattened transitions for a policy update (N rows)."""

    images: np.ndarray  # (N, H, W, 3)
    instructions: list[str]
    tokens: np.ndarray  # (N, 7)
    log_probs: np.ndarray  # (N, 7) behaviour log-probs
    advantages: np.ndarray  # (N,)
    returns: np.ndarray  # (N,)
    values: np.ndarray  # (N,) critic values at collection (zeros without a critic)

    def __len__(self) -> int:
        return len(self.tokens)
