"""``make_env``: the one way every room builds the task (evaluation, demo collection, RL rollouts, the CLI), so
that training builds its envs without importing evaluation. Import it as ``from vla_gen_bench.envs import make_env``.
"""

from __future__ import annotations


def make_env(camera: str = "default", robot: str = "panda", asset_store=None, sim_freq: int = 100,
             camera_size: tuple[int, int] | None = None, num_envs: int = 1, family: str = "put_on",
             **kwargs):  # fmt: skip
    """Create the env of a task family (default ``VgbPutOnReceptacle-v1``; see :mod:`vla_gen_bench.families`);
    one process pays a ~10 s render-pipeline compile on lavapipe."""
    import logging

    import gymnasium as gym
    from mani_skill.utils.logging_utils import logger

    import vla_gen_bench.envs  # noqa: F401 - registers every family's env id
    from vla_gen_bench.families import get_family

    fam = get_family(family)
    ENV_ID = fam.env_id
    kwargs = {**dict(fam.env_kwargs), **kwargs}

    logger.setLevel(
        logging.ERROR
    )  # no "CUDA not found, falling back to CPU" noise (the logger is "mani_skill ")
    try:
        return gym.make(ENV_ID, camera=camera, robot_uids=robot, asset_store=asset_store, sim_freq=sim_freq,
                        camera_size=camera_size, num_envs=num_envs, **kwargs)  # fmt: skip
    except Exception as e:
        if num_envs > 1 and "physx-precompiled" in str(e):
            raise RuntimeError(gpu_physx_hint()) from e
        raise


def gpu_physx_hint() -> str:
    """What to do when SAPIEN cannot fetch its PhysX GPU library (its first GPU-sim use downloads it from GitHub)."""
    try:
        from sapien.physx import version

        folder = f"~/.sapien/physx/{version()}"
        url = f"https://github.com/sapien-sim/physx-precompiled/releases/download/{version()}/linux-so.zip"
    except Exception:  # noqa: BLE001 - only for the message
        folder, url = "~/.sapien/physx/<physx version>", "the sapien-sim/physx-precompiled release"
    return (f"--num-envs > 1 runs ManiSkill's GPU simulator, whose PhysX GPU library SAPIEN downloads on first use "
            f"and could not (no network?). Unzip {url} into {folder} (libPhysXGpu_64.so) on this machine, or "
            f"evaluate with --num-envs 1 --workers N (CPU physics; rendering still uses the GPU).")  # fmt: skip
