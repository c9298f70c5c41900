"""Fixtures for the OpenVLA tests: one tiny random-init checkpoint (HF layout) per session, loaded once."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A ``tiny`` preset checkpoint written by init_checkpoint (seed 0). Tests must not modify it."""
    from vla_gen_bench.models.checkpoint import init_checkpoint

    return init_checkpoint("tiny", tmp_path_factory.mktemp("ckpt") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_vla(tiny_ckpt):
    from vla_gen_bench.models.checkpoint import load_openvla

    return load_openvla(tiny_ckpt, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def sharp_vla(tiny_vla):
    """The tiny model with its action-token rows of lm_head scaled up, so that the (otherwise near-uniform)
    random-init action distribution is peaked and depends visibly on the input."""
    import torch

    vla = copy.copy(tiny_vla)
    vla.model = copy.deepcopy(tiny_vla.model)
    net = vla.network
    with torch.no_grad():
        net.language_model.lm_head.weight[net.action_begin : net.action_end] *= 60.0
    return vla


@pytest.fixture
def images() -> np.ndarray:
    """Four different 128x128 RGB images."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    base[1, :64] = 255
    base[2] = 0
    base[2, 40:80, 40:80] = (200, 30, 30)
    return base


INSTRUCTIONS = [
    "put the red cube on the plate",
    "pick up the blue bottle",
    "place the small yellow star block onto the checkered mouse pad next to the sink",
    "push",
]


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
