"""Constructed inputs of the asset-pipeline tests: the default camera's view, a table-like render, textured tables."""

from __future__ import annotations

import math

import numpy as np

# The default policy camera (envs.cameras.CAMERAS["default"]) as envs.table_render.view_spec writes it;
# spelled out so that the fast tests need no simulator import. test_table_render checks it against the real one.
DEFAULT_VIEW = {
    "camera": "default",
    "width": 224,
    "height": 224,
    "fov_y": round(math.radians(46), 6),
    "eye": [0.22, 0.32, 0.46],
    "target": [-0.12, 0.0, 0.04],
}


def synthetic_render(size: int = 64, shift: int = 0):
    """A table-like render: a grey trapezoid (near edge wide) on a black backdrop, with plane depth.

    Returns (rgb (H, W, 3) uint8, depth (H, W) float32 metres, table mask (H, W) bool).
    """
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    top = 0.2 * h
    half = 0.3 * w + 0.2 * w * (yy - top) / (h - top)  # the far edge is narrower
    mask = (yy >= top) & (np.abs(xx - w / 2 - shift) <= half)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[mask] = (150 + 30 * yy[mask, None] / h).astype(np.uint8)
    depth = np.where(mask, 1.6 - 0.8 * yy / h, 0.0).astype(np.float32)
    return rgb, depth, mask


def textured_table(mask: np.ndarray, seed: int = 0, base=(150, 110, 70)) -> np.ndarray:
    """A wood-like texture inside the table mask and a different backdrop outside: edges where the mask's are."""
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    grain = 12 * np.sin(xx / 3.0 + 2 * np.sin(yy / 11.0)) + rng.normal(0, 3, (h, w))
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.asarray(base, np.float32) + grain[..., None]
    img[~mask] = (40, 60, 90)
    return np.clip(img, 0, 255).astype(np.uint8)
