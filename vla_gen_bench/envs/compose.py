"""Policy-image composition (the paper's green screen) and the observation overlays, as batched torch functions.

* :func:`table_view` renders a tiling table texture as seen by a pinhole camera (exact plane projection), so the
  background of every policy image is geometrically aligned with the simulated table.
* :func:`compose` keeps the render's foreground (robot, objects, receptacles: from segmentation) and takes every other
  pixel from the episode's table image.
* :func:`dynamic_texture` / :func:`dynamic_noise` are the vision-axis overlays (RL4VLA §3.1), applied after composition.

All functions are pure (no simulator) and batched: images are (b, H, W, 3) uint8 tensors.
"""

from __future__ import annotations

import numpy as np


def table_view(
    texture: np.ndarray,
    intrinsic: np.ndarray,
    cam2world_cv: np.ndarray,
    width: int,
    height: int,
    tile_m: float,
    table_rect: tuple[float, float, float, float],
    table_z: float = 0.0,
    backdrop: tuple[int, int, int] = (58, 60, 66),
) -> np.ndarray:
    """Image (H, W, 3) uint8 of a textured table top seen from a camera.

    Args:
        texture: (h, w, 3) uint8 tile; it repeats every ``tile_m`` metres along world x and y.
        intrinsic: (3, 3) OpenCV intrinsic matrix.
        cam2world_cv: (4, 4) camera-to-world transform in the OpenCV convention (x right, y down, z forward).
        width, height: image size in pixels.
        tile_m: metres of table covered by one texture tile.
        table_rect: (x_min, x_max, y_min, y_max) of the table top in world metres.
        table_z: height of the table top.
        backdrop: colour of pixels whose ray misses the table top.
    """
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3)  # (HW, 3)
    rays = pix @ np.linalg.inv(intrinsic).T @ cam2world_cv[:3, :3].T  # (HW, 3) world directions
    origin = cam2world_cv[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (table_z - origin[2]) / rays[:, 2]
    hit = origin[None] + t[:, None] * rays
    x0, x1, y0, y1 = table_rect
    on_table = (t > 0) & (hit[:, 0] >= x0) & (hit[:, 0] <= x1) & (hit[:, 1] >= y0) & (hit[:, 1] <= y1)
    th, tw = texture.shape[:2]
    # texture u along world y, v along world x (bilinear would be nicer; nearest is aliasing-free at these scales
    # because one tile spans ~100 px at 224 px)
    tu = np.floor(np.mod(hit[:, 1] / tile_m, 1.0) * tw).astype(np.int64) % tw
    tv = np.floor(np.mod(hit[:, 0] / tile_m, 1.0) * th).astype(np.int64) % th
    out = np.empty((height * width, 3), np.uint8)
    out[:] = np.asarray(backdrop, np.uint8)
    out[on_table] = texture[tv[on_table], tu[on_table]]
    return out.reshape(height, width, 3)


def compose(rgb, seg, fg_ids, background):
    """Green-screen: foreground pixels from the render, the rest from the table image.

    Args:
        rgb: (b, H, W, 3) uint8 render.  seg: (b, H, W, 1) int segmentation (per-scene ids).
        fg_ids: (k,) int tensor of foreground ids.  background: (b, H, W, 3) uint8 table images.
    Returns:
        (image (b, H, W, 3) uint8, foreground mask (b, H, W) bool)
    """
    import torch

    fg = torch.isin(seg[..., 0], fg_ids)  # (b, H, W)
    return torch.where(fg[..., None], rgb, background), fg


def _fg_boxes(fg):
    """Axis-aligned bounding box (y0, y1, x0, x1), inclusive-exclusive, of each image's foreground; (b, 4)."""
    import torch

    b, h, w = fg.shape
    rows, cols = fg.any(2), fg.any(1)  # (b, H), (b, W)
    ar_h = torch.arange(h, device=fg.device)
    ar_w = torch.arange(w, device=fg.device)
    big = torch.tensor(10**9, device=fg.device)
    y0 = torch.where(rows, ar_h, big).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    x0 = torch.where(cols, ar_w, big).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    empty = ~rows.any(1)
    zero = torch.zeros_like(y0)
    return torch.stack([torch.where(empty, zero, v) for v in (y0, y1, x0, x1)], 1)


def dynamic_texture(img, fg, textures, alpha):
    """Blend a texture over the foreground, stretched to the foreground's bounding box (moves and rescales with it).

    Args:
        img: (b, H, W, 3) uint8 composed image.  fg: (b, H, W) bool foreground mask.
        textures: (b, h, w, 3) uint8 per-env texture.  alpha: (b,) float in [0, 1] (0 = no effect).
    """
    import torch
    import torch.nn.functional as F

    out = img.clone()
    boxes = _fg_boxes(fg).tolist()
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        if y1 <= y0 or x1 <= x0 or float(alpha[i]) == 0.0:
            continue
        tex = textures[i].permute(2, 0, 1)[None].float()
        tex = F.interpolate(tex, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0].permute(
            1, 2, 0
        )
        region = out[i, y0:y1, x0:x1].float()
        m = fg[i, y0:y1, x0:x1, None]
        a = float(alpha[i])
        out[i, y0:y1, x0:x1] = torch.where(m, (a * tex + (1 - a) * region).round().clamp(0, 255), region).to(
            img.dtype
        )
    return out


def dynamic_noise(img, fg, textures, alpha):
    """Blend the whole image with a window of a 2x-sized texture whose corner follows the foreground box centre.

    Args: as :func:`dynamic_texture`; the texture is resized to (2H, 2W) and the (H, W) window starting at the
    foreground box centre is blended over the full frame.
    """
    import torch.nn.functional as F

    b, h, w, _ = img.shape
    boxes = _fg_boxes(fg)
    cy = ((boxes[:, 0] + boxes[:, 1]) // 2).clamp(0, h - 1)
    cx = ((boxes[:, 2] + boxes[:, 3]) // 2).clamp(0, w - 1)
    big = F.interpolate(
        textures.permute(0, 3, 1, 2).float(), size=(2 * h, 2 * w), mode="bilinear", align_corners=False
    )
    out = img.clone()
    for i in range(b):
        a = float(alpha[i])
        if a == 0.0:
            continue
        win = big[i, :, int(cy[i]) : int(cy[i]) + h, int(cx[i]) : int(cx[i]) + w].permute(1, 2, 0)
        out[i] = (a * win + (1 - a) * img[i].float()).round().clamp(0, 255).to(img.dtype)
    return out
