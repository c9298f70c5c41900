"""Fixtures of the asset-pipeline tests: tiny SD + ControlNet models and a loaded generator."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """Folders of a tiny SD 1.x pipeline and canny/depth ControlNets (diffusers layout)."""
    from tests.assets.tiny_sd import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_cfg(tiny_sd):
    """SDConfig for the tiny models: 64 px, 2 steps, both controls (the real pipeline class)."""
    from vla_gen_bench.assets.sdgen import SDConfig

    return SDConfig(base_model=str(tiny_sd["base"]), canny_model=str(tiny_sd["canny"]),
                    depth_model=str(tiny_sd["depth"]), control="canny+depth", steps=2, resolution=64, device="cpu")  # fmt: skip


@pytest.fixture(scope="session")
def tiny_generator(tiny_cfg):
    import warnings

    from vla_gen_bench.assets.sdgen import TableGenerator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the CPU-time warning is for real model sizes
        return TableGenerator(tiny_cfg)
