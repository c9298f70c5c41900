"""Image preprocessing: per-backbone normalisation, bicubic resize, channel stacking."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vla_gen_bench.models.config import OpenVLAConfig
from vla_gen_bench.models.processor import IMAGENET_MEAN, IMAGENET_STD, ImageProcessor


def test_default_processor_matches_openvla():
    p = ImageProcessor.from_config(OpenVLAConfig())
    assert p.sizes == (224, 224) and p.resize_strategy == "resize-naive"
    assert p.means[0] == IMAGENET_MEAN and p.stds[0] == IMAGENET_STD  # DINOv2 first
    assert p.means[1] == (0.5, 0.5, 0.5) and p.stds[1] == (0.5, 0.5, 0.5)  # SigLIP


def test_constant_image_normalised_per_backbone():
    p = ImageProcessor(sizes=(32, 32))
    img = np.full((32, 32, 3), 51, np.uint8)  # 0.2
    x = p(img)
    assert x.shape == (1, 6, 32, 32) and x.dtype == np.float32
    expected = [(0.2 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)] + [
        (0.2 - 0.5) / 0.5
    ] * 3
    assert np.allclose(x[0, :, 5, 7], expected, atol=1e-6)


def test_resize_is_pil_bicubic():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    x = ImageProcessor(sizes=(64, 64))(img)
    ref = np.asarray(Image.fromarray(img).resize((64, 64), Image.Resampling.BICUBIC), np.float32) / 255
    ref = (ref - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    assert np.allclose(x[0, :3], ref.transpose(2, 0, 1), atol=1e-6)


def test_image_at_target_size_is_not_resampled():
    img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = ImageProcessor(sizes=(32, 32))(img)
    assert np.allclose((x[0, 3:] * 0.5 + 0.5) * 255, img.transpose(2, 0, 1), atol=1e-4)


def test_letterbox_pads_with_the_mean_colour():
    img = np.zeros((10, 20, 3), np.uint8)
    x = ImageProcessor(sizes=(20, 20), resize_strategy="letterbox")(img)
    top = x[0, 3:, 0, 10] * 0.5 + 0.5  # padding row, SigLIP channels back to [0, 1]
    assert np.allclose(top, [int(255 * m) / 255 for m in IMAGENET_MEAN], atol=1e-6)
    assert np.allclose(x[0, 3:, 10, 10] * 0.5 + 0.5, 0.0, atol=1e-6)  # the image itself


def test_center_crop_keeps_the_middle():
    img = np.zeros((100, 100, 3), np.uint8)
    img[45:55, 45:55] = 255
    x = ImageProcessor(sizes=(100, 100), center_crop_scale=0.81)(img)  # 90 x 90 crop, resized back
    assert x[0, 3, 50, 50] > 0.9 and x[0, 3, 2, 2] < -0.9


def test_preprocessor_config_round_trip():
    cfg = OpenVLAConfig()
    p = ImageProcessor(sizes=(224, 224), means=((0.1, 0.2, 0.3), (0.5,) * 3), stds=((0.2,) * 3, (0.5,) * 3))
    assert ImageProcessor.from_config(cfg, p.to_dict()) == p


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)])
def test_bad_images_are_rejected(bad):
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 image"):
        ImageProcessor(sizes=(8, 8))(bad)
