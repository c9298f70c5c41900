"""Fixtures of the paper-profile tests: a synthetic RL4VLA-layout folder and one env under the rl4vla profile.

The WidowX-250S files are not on CI machines, so the shared env runs the profile's camera, physics rate, lighting and
asset source with the Panda (``robot="panda"`` overrides the profile's robot, exactly as ``--robot panda`` does).
"""

from __future__ import annotations

import pytest

from tests.profiles.rl4vla_folder import write_rl4vla_folder


@pytest.fixture(scope="session")
def rl4vla_dir(tmp_path_factory):
    return write_rl4vla_folder(tmp_path_factory.mktemp("rl4vla") / "carrot")


@pytest.fixture(scope="session")
def rl4vla_store(rl4vla_dir):
    from vla_gen_bench.assets.rl4vla import load_rl4vla

    return load_rl4vla(rl4vla_dir)


@pytest.fixture(scope="session")
def profile_env(rl4vla_store):
    """One env with the rl4vla profile's settings (Panda instead of the WidowX), shared by the simulation tests."""
    from vla_gen_bench.envs import make_env
    from vla_gen_bench.eval.profiles import get_profile

    e = make_env(asset_store=rl4vla_store, **get_profile("rl4vla").env_kwargs(robot="panda"))
    yield e
    e.close()
