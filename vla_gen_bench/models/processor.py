"""Image preprocessing of the Prismatic processor, in PIL + numpy (no torchvision).

Per backbone: RGB -> (letterbox to square, if the strategy says so) -> resize to the backbone's input size, bicubic
with antialias (``PIL.Image.resize(BICUBIC)``, which equals torchvision's antialiased bicubic resize on PIL input)
-> [0, 1] -> ``(x - mean) / std``. The backbones' results are stacked on the channel axis: ``(B, 3 * n, S, S)``,
DINOv2 first. Defaults: DINOv2 ImageNet mean/std, SigLIP 0.5/0.5; a checkpoint's ``preprocessor_config.json``
(``means``, ``stds``, ``input_sizes``, ``interpolations``) overrides them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def default_mean_std(timm_id: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation a timm backbone was trained with (SigLIP: 0.5/0.5, everything else here: ImageNet)."""
    return (SIGLIP_MEAN, SIGLIP_STD) if "siglip" in timm_id else (IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class ImageProcessor:
    sizes: tuple[int, ...] = (224, 224)
    means: tuple[tuple[float, ...], ...] = (IMAGENET_MEAN, SIGLIP_MEAN)
    stds: tuple[tuple[float, ...], ...] = (IMAGENET_STD, SIGLIP_STD)
    resize_strategy: str = "resize-naive"
    center_crop_scale: float | None = None
    """Crop this fraction of the image *area* at the centre first (0.9 for OpenVLA fine-tunes trained with random
    crops, e.g. LIBERO); None for Bridge-style checkpoints."""

    @classmethod
    def from_config(cls, config, preprocessor_config: dict[str, Any] | None = None) -> ImageProcessor:
        """Defaults from an :class:`~vla_gen_bench.models.config.OpenVLAConfig`, overridden by the checkpoint's
        ``preprocessor_config.json`` dict when given."""
        ms = [default_mean_std(t) for t in config.timm_model_ids]
        kw: dict[str, Any] = dict(
            sizes=tuple(config.image_sizes),
            means=tuple(m for m, _ in ms),
            stds=tuple(s for _, s in ms),
            resize_strategy=config.image_resize_strategy,
        )
        p = preprocessor_config or {}
        if p.get("means"):
            kw["means"] = tuple(tuple(float(v) for v in m) for m in p["means"])
        if p.get("stds"):
            kw["stds"] = tuple(tuple(float(v) for v in s) for s in p["stds"])
        if p.get("input_sizes"):
            kw["sizes"] = tuple(int(s[-1]) for s in p["input_sizes"])
        if p.get("image_resize_strategy"):
            kw["resize_strategy"] = p["image_resize_strategy"]
        for interp in p.get("interpolations") or []:
            if interp != "bicubic":
                raise ValueError(
                    f"preprocessor_config.json asks for {interp!r} interpolation; only bicubic is built"
                )
        n = len(config.image_sizes)
        if not (len(kw["sizes"]) == len(kw["means"]) == len(kw["stds"]) == n):
            raise ValueError(
                f"preprocessor_config.json describes {len(kw['sizes'])} backbones, the model has {n}"
            )
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` dict (the official field names)."""
        return {
            "image_processor_type": "PrismaticImageProcessor",
            "image_resize_strategy": self.resize_strategy,
            "input_sizes": [[3, s, s] for s in self.sizes],
            "interpolations": ["bicubic"] * len(self.sizes),
            "means": [list(m) for m in self.means],
            "stds": [list(s) for s in self.stds],
            "use_fused_vision_backbone": len(self.sizes) == 2,
        }

    @classmethod
    def from_file(cls, config, path: str | Path) -> ImageProcessor:
        return cls.from_config(config, json.loads(Path(path).read_text()))

    def _prepare(self, image: np.ndarray, size: int, fill: tuple[int, ...]):
        from PIL import Image

        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {img.dtype} {img.shape}")
        pil = Image.fromarray(img)
        if self.center_crop_scale is not None:
            w, h = pil.size
            s = float(np.sqrt(self.center_crop_scale))
            cw, ch = w * s, h * s
            left, top = (w - cw) / 2, (h - ch) / 2
            pil = pil.crop((round(left), round(top), round(left + cw), round(top + ch)))
        if self.resize_strategy == "letterbox":
            w, h = pil.size
            side = max(w, h)
            canvas = Image.new("RGB", (side, side), fill)
            canvas.paste(pil, ((side - w) // 2, (side - h) // 2))
            pil = canvas
        if pil.size != (size, size):
            pil = pil.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(pil, dtype=np.float32) / 255.0

    def __call__(self, images) -> np.ndarray:
        """``(H, W, 3)`` uint8 image(s) -> ``(B, 3 * n_backbones, S, S)`` float32."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        fill = tuple(int(255 * v) for v in self.means[0])
        out = []
        for image in images:
            chans = []
            for size, mean, std in zip(self.sizes, self.means, self.stds, strict=True):
                x = self._prepare(image, size, fill)
                x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
                chans.append(x.transpose(2, 0, 1))
            if len({c.shape for c in chans}) != 1:
                raise ValueError(f"fused backbones need equal input sizes, got {self.sizes}")
            out.append(np.concatenate(chans, axis=0))
        return np.stack(out).astype(np.float32)
