"""The empty table as the policy camera sees it: colour, the simulator's depth and the table mask.

Generated table appearances are conditioned on this render (its Canny edges and depth, see
:mod:`vla_gen_bench.assets.sdgen`), so that the table's edges in a generated image sit where the physics has them.
The render is of the task env itself: the same table, camera pose and intrinsics as every episode, with the robot,
objects and receptacles moved out of view (they are foreground, composed over the table image at every step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_gen_bench.envs.cameras import POLICY_CAMERA, CameraSpec, camera_spec


@dataclass(frozen=True)
class TableRender:
    """One render of the empty table from the policy camera."""

    rgb: np.ndarray
    """(H, W, 3) uint8 colour."""
    depth: np.ndarray
    """(H, W) float32 depth in metres along the optical axis; 0 where no surface was hit."""
    table_mask: np.ndarray
    """(H, W) bool: pixels that show the table top."""
    view: dict[str, Any]
    """The camera (:func:`view_spec`) at the render's own size."""


def view_spec(camera: str | CameraSpec, size: tuple[int, int] | None = None) -> dict[str, Any]:
    """JSON description of a policy camera (name, size, field of view or focal length, look-at pose).

    Two views with the same ``fov_y``, ``eye``, ``target`` and aspect ratio see the same frustum, so an image made
    for one is aligned with the other after a resize.
    """
    name = camera if isinstance(camera, str) else "custom"
    cam = camera_spec(camera, size)
    fov_y = cam.fov_y if cam.fx is None else 2 * math.atan(cam.height / 2 / cam.fx)
    return {
        "camera": name,
        "width": cam.width,
        "height": cam.height,
        "fov_y": round(float(fov_y), 6),
        "eye": [round(float(v), 6) for v in cam.eye],
        "target": [round(float(v), 6) for v in cam.target],
    }


def render_empty_table(
    camera: str | CameraSpec = "default", size: tuple[int, int] | None = None, robot: str = "panda"
) -> TableRender:
    """Render the empty table through the task env's policy camera (one env creation: ~10 s on lavapipe).

    Args:
        camera: camera name (``default``, ``fast``, ``paper``, ``rl4vla``) or a :class:`CameraSpec`.
        size: (width, height) to render at; the frustum of ``camera`` is kept (render at the generation resolution
            and the result stays aligned with the camera's own size).
        robot: robot (only moved out of view; its choice does not change the render).
    """
    import logging

    import gymnasium as gym
    import sapien
    import torch
    from mani_skill.envs.sapien_env import BaseEnv
    from mani_skill.utils.structs import Pose

    from vla_gen_bench.envs import ENV_ID

    logging.getLogger("mani_skill").setLevel(logging.ERROR)
    # depth is only needed here; the task env's policy observations stay rgb + segmentation
    env = gym.make(
        ENV_ID, camera=camera, camera_size=size, robot_uids=robot, obs_mode="rgb+depth+segmentation"
    )
    try:
        u = env.unwrapped
        env.reset(seed=0)
        # Everything but the table is foreground: move it out of every camera. No physics step follows, so
        # teleporting is safe; the render reads the poses directly.
        far = u._park_pose(len(u.objects) + len(u.receptacles) + 4)
        u.agent.robot.set_pose(sapien.Pose(p=[far[0], far[1] - 10.0, 0.0]))
        for k, actor in enumerate(u.objects + u.receptacles):
            actor.set_pose(Pose.create_from_pq(p=torch.tensor([u._park_pose(k)], dtype=torch.float32)))
        # the base class's sensor read, without the task's composition over a table image
        cam = BaseEnv._get_obs_sensor_data(u)[POLICY_CAMERA]
        rgb = cam["rgb"][0].cpu().numpy().astype(np.uint8)
        mm = cam["depth"][0, ..., 0].cpu().numpy()  # ManiSkill: int16 millimetres
        depth = mm.astype(np.float32) / 1000.0
        seg = cam["segmentation"][0, ..., 0].cpu().numpy()
        table_ids = [i for i, o in u.segmentation_id_map.items() if getattr(o, "name", None) == "table"]
        mask = np.isin(seg, table_ids)
        others = set(np.unique(seg).tolist()) - set(table_ids) - {0}
        if others:
            raise RuntimeError(
                f"empty-table render still shows scene ids {sorted(others)}; the scene changed"
            )
    finally:
        env.close()
    cam = camera_spec(camera, size)
    return TableRender(rgb=rgb, depth=depth, table_mask=mask, view=view_spec(camera, (cam.width, cam.height)))
