"""RT-2 / OpenVLA action tokens and q01/q99 (de-)normalisation, in numpy.

* Normalised actions live in [-1, 1]. ``n_bins`` (256) uniform bin *edges* span [-1, 1]; the 255 midpoints are the
  bin centres a token decodes to.
* ``token = vocab_size - digitize(a, edges)`` with ``vocab_size`` the tokenizer's base vocabulary (32000 for Llama-2),
  so tokens are the last ``n_bins`` ids: 31744..31999. ``a = 1`` maps to 31744, which decodes to the same centre as
  31745 (``idx = clip(vocab_size - token - 1, 0, n_bins - 2)``), exactly as OpenVLA does.
* Dimensions with ``mask`` True are normalised with the dataset's 1st/99th percentiles:
  ``x_n = clip(2 (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)``; de-normalisation is
  ``x = 0.5 (x_n + 1) (q99 - q01) + q01``. Masked-out dimensions (the gripper in OpenVLA's datasets) pass through.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np


class UnnormKeyError(ValueError):
    """An ``unnorm_key`` that is missing (several datasets in the checkpoint) or not one of the checkpoint's."""


def resolve_unnorm_key(norm_stats: dict[str, Any], unnorm_key: str | None) -> str:
    """Pick the dataset whose statistics de-normalise actions.

    Raises:
        UnnormKeyError: no statistics at all, several and none chosen, or an unknown key; the message lists the
            available keys.
    """
    keys = sorted(norm_stats)
    if not keys:
        raise UnnormKeyError("the checkpoint has no norm_stats (config.json or dataset_statistics.json)")
    if unnorm_key is None:
        if len(keys) == 1:
            return keys[0]
        raise UnnormKeyError(
            f"this checkpoint has statistics for {len(keys)} datasets, so an unnorm_key is required "
            f"(--unnorm-key); available: {', '.join(keys)}"
        )
    if unnorm_key not in norm_stats:
        close = difflib.get_close_matches(unnorm_key, keys, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnnormKeyError(f"unknown unnorm_key {unnorm_key!r}{hint}; available: {', '.join(keys)}")
    return unnorm_key


@dataclass(frozen=True)
class ActionStats:
    """The q01/q99/mask of one dataset's actions."""

    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray

    @classmethod
    def from_norm_stats(cls, norm_stats: dict[str, Any], unnorm_key: str | None) -> ActionStats:
        key = resolve_unnorm_key(norm_stats, unnorm_key)
        entry = norm_stats[key].get("action")
        if entry is None or "q01" not in entry or "q99" not in entry:
            raise UnnormKeyError(f"norm_stats[{key!r}] has no action q01/q99")
        q01 = np.asarray(entry["q01"], dtype=np.float64)
        q99 = np.asarray(entry["q99"], dtype=np.float64)
        mask = np.asarray(entry.get("mask", np.ones_like(q01, dtype=bool)), dtype=bool)
        if not (q01.shape == q99.shape == mask.shape) or q01.ndim != 1:
            raise UnnormKeyError(
                f"norm_stats[{key!r}].action has inconsistent shapes q01 {q01.shape}, q99 {q99.shape}, "
                f"mask {mask.shape}"
            )
        return cls(q01=q01, q99=q99, mask=mask)

    @property
    def dim(self) -> int:
        return int(self.q01.shape[0])

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Raw actions ``(..., dim)`` to [-1, 1] (masked dims only; the others pass through unclipped)."""
        a = np.asarray(actions, dtype=np.float64)
        n = np.clip(2.0 * (a - self.q01) / (self.q99 - self.q01 + 1e-8) - 1.0, -1.0, 1.0)
        return np.where(self.mask, n, a)

    def denormalize(self, normalized: np.ndarray) -> np.ndarray:
        """Normalised actions ``(..., dim)`` back to dataset units."""
        n = np.asarray(normalized, dtype=np.float64)
        return np.where(self.mask, 0.5 * (n + 1.0) * (self.q99 - self.q01) + self.q01, n)


@dataclass(frozen=True)
class ActionTokenizer:
    """Maps normalised actions to token ids and back."""

    vocab_size: int = 32000
    """The tokenizer's base vocabulary size; action tokens are ids ``[vocab_size - n_bins, vocab_size)``."""
    n_bins: int = 256

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(-1.0, 1.0, self.n_bins)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return (e[:-1] + e[1:]) / 2.0

    @property
    def token_range(self) -> tuple[int, int]:
        return self.vocab_size - self.n_bins, self.vocab_size

    def encode(self, normalized: np.ndarray) -> np.ndarray:
        """Normalised actions ``(..., dim)`` to token ids (int64), clipping to [-1, 1] first."""
        a = np.clip(np.asarray(normalized, dtype=np.float64), -1.0, 1.0)
        return (self.vocab_size - np.digitize(a, self.edges)).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Token ids ``(..., dim)`` to bin centres; ids outside the action range are an error."""
        t = np.asarray(tokens, dtype=np.int64)
        lo, hi = self.token_range
        if t.size and (t.min() < lo or t.max() >= hi):
            bad = t[(t < lo) | (t >= hi)]
            raise ValueError(f"token ids {bad[:8].tolist()} are not action tokens [{lo}, {hi})")
        idx = np.clip(self.vocab_size - t - 1, 0, self.n_bins - 2)
        return self.centers[idx]

    def decode_unconstrained(self, tokens: np.ndarray) -> np.ndarray:
        """Any token ids ``(..., dim)`` to bin centres, as the official ``predict_action`` decodes them: the same
        formula without the range check, so ids below the action block clip to the last centre (~ +0.996) and ids
        at or above ``vocab_size`` (``<PAD>``, padding rows) to the first (~ -0.996)."""
        t = np.asarray(tokens, dtype=np.int64)
        return self.centers[np.clip(self.vocab_size - t - 1, 0, self.n_bins - 2)]

    def bin_index(self, tokens: np.ndarray) -> np.ndarray:
        """Position of each token in the action-token block, 0..n_bins-1 (0 = lowest id)."""
        return np.asarray(tokens, dtype=np.int64) - self.token_range[0]
