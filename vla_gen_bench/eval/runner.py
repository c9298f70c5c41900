"""The one env <-> policy loop, and the stepping pieces demo collection and RL rollouts reuse.

``run_episode`` resets the task (optionally to a fixed EpisodeSpec), asks the policy for actions (a (chunk, 7)
array is executed open-loop, one row per control step) and returns what the episode store records.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vla_gen_bench.policies.base import Policy


def make_env(camera: str = "default", robot: str = "panda", asset_store=None, sim_freq: int = 100,
             camera_size: tuple[int, int] | None = None, num_envs: int = 1, **kwargs):  # fmt: skip
    """Create ``VgbPutOnReceptacle-v1`` (one process pays a ~10 s render-pipeline compile on lavapipe)."""
    import logging

    import gymnasium as gym

    from vla_gen_bench.envs import ENV_ID

    logging.getLogger("mani_skill").setLevel(logging.ERROR)  # no "CUDA not found, falling back to CPU" noise
    return gym.make(ENV_ID, camera=camera, robot_uids=robot, asset_store=asset_store, sim_freq=sim_freq,
                    camera_size=camera_size, num_envs=num_envs, **kwargs)  # fmt: skip


def policy_observation(env, obs: dict, privileged: bool = False, i: int = 0) -> dict[str, Any]:
    """The observation a policy sees for env ``i``: image, instruction, proprio state (+ privileged poses)."""
    u = env.unwrapped
    out = {
        "image": obs["sensor_data"]["policy_camera"]["rgb"][i].cpu().numpy(),
        "instruction": u.instructions[i],
        "state": u.proprio()[i],
    }
    if privileged:
        out["privileged"] = u.privileged()[i]
    return out


@dataclass
class EpisodeResult:
    seed: int
    instruction: str
    success_at_end: bool
    success_once: bool
    ever_grasped: bool
    consecutive_grasp: bool
    failure: str
    steps: int
    return_: float
    wall_s: float
    episode: dict = field(default_factory=dict)
    frames: list = field(default_factory=list, repr=False)

    def record(self) -> dict[str, Any]:
        """JSON-serialisable row (frames excluded)."""
        d = asdict(self)
        d.pop("frames")
        return d


def run_episode(env, policy: Policy, seed: int, episode=None, record_frames: bool = False,
                max_steps: int | None = None) -> EpisodeResult:  # fmt: skip
    """Run one full episode of ``policy`` on ``env`` (single env) and return its result."""
    from vla_gen_bench.envs import FAILURE_LABELS, MAX_EPISODE_STEPS

    t0 = time.perf_counter()
    options = {"episode": episode} if episode is not None else {}
    obs, info = env.reset(seed=seed, options=options)
    u = env.unwrapped
    privileged = bool(getattr(policy.spec, "privileged", False))
    policy.reset(u.instructions[0])
    horizon = max_steps or MAX_EPISODE_STEPS
    frames = []
    total = 0.0
    steps = 0
    queue: list[np.ndarray] = []
    while steps < horizon:
        if record_frames:
            frames.append(obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy())
        if not queue:
            a = np.asarray(policy.act(policy_observation(env, obs, privileged)), dtype=np.float32)
            queue = list(a) if a.ndim == 2 else [a]
        obs, reward, _term, _trunc, info = env.step(queue.pop(0))
        total += float(reward[0])
        steps += 1
    if record_frames:
        frames.append(obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy())
    spec = u.episode_specs[0]
    return EpisodeResult(
        seed=seed, instruction=u.instructions[0],
        success_at_end=bool(info["success"][0]), success_once=bool(info["success_once"][0]),
        ever_grasped=bool(info["ever_grasped"][0]), consecutive_grasp=bool(info["consecutive_grasp"][0]),
        failure=FAILURE_LABELS[int(info["failure"][0])], steps=steps, return_=round(total, 6),
        wall_s=round(time.perf_counter() - t0, 3), episode=spec.to_dict() if spec else {}, frames=frames,
    )  # fmt: skip


def write_video(frames: list[np.ndarray], path, fps: int = 5) -> None:
    """Write frames (H, W, 3) uint8 as an mp4 (imageio-ffmpeg, bundled binary)."""
    import imageio.v2 as imageio

    with imageio.get_writer(str(path), fps=fps, codec="libx264", quality=7, macro_block_size=1) as w:
        for f in frames:
            w.append_data(f)
