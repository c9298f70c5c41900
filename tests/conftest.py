"""Shared fixtures. One simulator env per test session: each process pays ~10 s of render-pipeline compile."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def env():
    """A default-camera VgbPutOnReceptacle-v1 env shared by the simulation tests."""
    from vla_gen_bench.envs import make_env

    e = make_env()
    yield e
    e.close()


@pytest.fixture(scope="session")
def store():
    from vla_gen_bench.assets.store import default_store

    return default_store()
