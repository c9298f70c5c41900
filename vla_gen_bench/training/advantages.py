"""From trajectories to policy updates: generalised advantage estimation (:func:`compute_gae`) and the flattened
transitions an update reads in shuffled minibatches (:class:`Batch`).
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

    def minibatches(self, epochs: int, size: int, accumulate: int, generator):
        """``epochs`` passes over the rows in a fresh random order (``generator``), as ``(indices, step)`` pairs:
        a tensor of at most ``size`` row indices, and whether an optimizer step follows this minibatch (every
        ``accumulate`` minibatches and after the last one of each pass)."""
        import torch

        n = len(self)
        for _epoch in range(epochs):
            order = torch.randperm(n, generator=generator)
            mbs = [order[i : i + size] for i in range(0, n, size)]
            for j, idx in enumerate(mbs):
                yield idx, (j + 1) % accumulate == 0 or j == len(mbs) - 1
