"""make_env turns SAPIEN's failed PhysX GPU download into an actionable message."""

from __future__ import annotations

import pytest


def test_gpu_sim_without_the_physx_library_says_what_to_do(monkeypatch):
    import gymnasium as gym

    from vla_gen_bench.envs import make_env

    def fail(*a, **kw):
        raise ConnectionError(
            "Max retries exceeded with url: /sapien-sim/physx-precompiled/releases/download/x"
        )

    monkeypatch.setattr(gym, "make", fail)
    with pytest.raises(RuntimeError, match=r"libPhysXGpu_64\.so.*--num-envs 1 --workers N"):
        make_env(num_envs=4)
    with pytest.raises(ConnectionError):  # one env never needs it: the original error stays
        make_env(num_envs=1)
