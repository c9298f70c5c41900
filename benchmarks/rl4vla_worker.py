"""RL4VLA's side of ``benchmarks/rl4vla_side_by_side.py``: runs in the Python environment where RL4VLA's ManiSkill
fork is installed (never in vgb's), imports only that fork, and plays the episodes of a request file.

    <rl4vla-python> rl4vla_worker.py request.json out_dir

``request.json`` (written by the side-by-side script)::

    {"table_box": [lo, hi],                                         # optional: the stand-in arena (see below)
     "episodes": [{"name", "env_id", "carrot", "plate", "overlay",  # indices into RL4VLA's model_db.json files
                   "obj_xy", "obj_yaw", "plate_xy", "plate_yaw",    # RL4VLA's world frame (m, rad)
                   "grid": [[dx, dy], ...], "grid_clearance", "grid_settle_s"}, ...]}

Each episode is reset through the fork's own ``_initialize_episode`` (robot parked, drop from the env's own heights,
its settle rule) with the env's pose and quaternion tables replaced by the one requested configuration and the
episode id chosen to select the requested carrot, plate and table photo (``obj_set="all"``). Writes
``out_dir/rl4vla.npz`` (``rgb`` (n, H, W, 3) uint8 after reset, ``labels`` (n, H, W) uint8: 0 background, 1 robot,
2 target object, 3 plate, 4 another object) and ``out_dir/rl4vla.json`` (settled poses, success at reset, and per grid
pose the object's pose after ``grid_settle_s`` of physics and RL4VLA's ``evaluate()["success"]``).

The fork's env needs ManiSkill's ``bridge_v2_real2sim`` arena (``stages/bridge_table_1_v1.glb``) under
``$MS_ASSET_DIR/data/tasks/bridge_v2_real2sim_dataset``. Its looks never reach the policy (every observation is
green-screened onto a table photograph); only its top, at z = 0.869532, holds the objects. Where the file is absent,
a box is written in its place (the request's ``table_box``, else 2 x 2 m with that top) and ``arena`` in the output
says so.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TABLE_TOP_Z = 0.869532  # RL4VLA's table top (the plate's resting height in its older pose table)
CAMERA = "3rd_view_camera"
ARENA = "tasks/bridge_v2_real2sim_dataset/stages/bridge_table_1_v1.glb"


def asset_dir() -> Path:
    return Path(os.environ.get("MS_ASSET_DIR", Path.home() / ".maniskill")) / "data"


def ensure_arena(box: list[list[float]] | None = None) -> str:
    """The arena file the fork loads: the real one when present, else a box (``[lo, hi]`` in world coordinates;
    default 2 x 2 m with its top at ``TABLE_TOP_Z``), written at every start so a changed box takes effect. Returns
    which one is used."""
    path = asset_dir() / ARENA
    if path.is_file() and path.stat().st_size > 0 and not (path.parent / "STAND_IN").exists():
        return "bridge_table_1_v1.glb"
    import trimesh

    # the fork loads the stage rotated +90 deg about x and moved by (2.0634, 2.8313, 0): world = (vx, -vz, vy) + t
    t = (2.0634, 2.8313, 0.0)
    lo_w, hi_w = box or ((-1.2, -1.0, TABLE_TOP_Z - 0.05), (0.8, 1.0, TABLE_TOP_Z))
    lo = (lo_w[0] - t[0], lo_w[2], -(hi_w[1] - t[1]))
    hi = (hi_w[0] - t[0], hi_w[2], -(lo_w[1] - t[1]))
    box = trimesh.creation.box(bounds=[lo, hi])
    path.parent.mkdir(parents=True, exist_ok=True)
    box.export(path)
    (path.parent / "STAND_IN").write_text("flat box stand-in written by vgb's rl4vla_worker.py\n")
    return f"stand-in box {[round(v, 6) for v in lo_w]} to {[round(v, 6) for v in hi_w]} (triangle mesh)"


def make(env_id: str):
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401 - registers the fork's envs
    import torch

    if not torch.cuda.is_available():
        # the fork's BaseEnv._get_obs_sensor_data calls torch.cuda.synchronize() unconditionally, which a CPU build
        # of torch refuses; with no CUDA device there is nothing to wait for
        torch.cuda.synchronize = lambda *a, **k: None

    env = gym.make(env_id, num_envs=1, obs_mode="rgb+segmentation", sim_backend="cpu", render_backend="cpu",
                   control_mode="arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos",
                   sensor_configs={"shader_pack": "default"})  # fmt: skip
    u = env.unwrapped
    u._vgb_heights = (
        float(u.xyz_configs[0, 0, 2]),
        float(u.xyz_configs[0, 1, 2]),
    )  # the env's own drop heights
    return env


def reset(env, ep: dict):
    """Reset ``env`` on the requested configuration through the fork's own episode code."""
    import numpy as np
    import torch
    from transforms3d.euler import euler2quat

    u = env.unwrapped
    oz, pz = u._vgb_heights
    u.xyz_configs = np.array([[[*ep["obj_xy"], oz], [*ep["plate_xy"], pz]]])
    u.quat_configs = np.array([[euler2quat(0, 0, ep["obj_yaw"]), euler2quat(0, 0, ep["plate_yaw"])]])
    lp, lo = len(u.plate_names), len(u.overlay_images_numpy)
    if not 0 <= ep["plate"] < lp:
        raise ValueError(f"{ep['env_id']} has {lp} plate(s); plate index {ep['plate']} is not one of them")
    eid = ep["carrot"] * lp * lo + ep["plate"] * lo + ep["overlay"]
    return env.reset(seed=0, options={"obj_set": "all", "episode_id": torch.tensor([eid])})


def labels(u, seg):
    """(H, W) uint8 class of every pixel (see the module docstring)."""
    import numpy as np

    seg = np.asarray(seg)
    out = np.zeros(seg.shape, dtype=np.uint8)
    carrot = u.objs_carrot[u.carrot_names[int(u.select_carrot_ids[0])]]
    plate = u.objs_plate[u.plate_names[int(u.select_plate_ids[0])]]
    others = [int(x) for x in u.target_object_actor_ids.cpu().numpy()]
    out[np.isin(seg, others)] = 4
    out[np.isin(seg, u.robot_link_ids.cpu().numpy().astype(np.int64))] = 1
    out[seg == carrot._objs[0].per_scene_id] = 2
    out[seg == plate._objs[0].per_scene_id] = 3
    return out


def pose(actor) -> list[float]:
    return [float(x) for x in actor.pose.raw_pose[0].cpu().numpy()]


def run_episode(env, ep: dict):
    import numpy as np
    import torch
    from mani_skill.utils.structs.pose import Pose

    obs, info = reset(env, ep)
    u = env.unwrapped
    cam = obs["sensor_data"][CAMERA]
    rgb = cam["rgb"][0].cpu().numpy().astype(np.uint8)
    lab = labels(u, cam["segmentation"][0, ..., 0].cpu().numpy())
    carrot_name, plate_name = (
        u.carrot_names[int(u.select_carrot_ids[0])],
        u.plate_names[int(u.select_plate_ids[0])],
    )
    carrot, plate = u.objs_carrot[carrot_name], u.objs_plate[plate_name]
    out = {"name": ep["name"], "carrot": carrot_name, "plate": plate_name,
           "overlay": int(u.select_overlay_ids[0]), "object_pose": pose(carrot), "plate_pose": pose(plate),
           "success_at_reset": bool(info["success"][0]), "qpos": [float(x) for x in u.agent.robot.get_qpos()[0]],
           "grid": []}  # fmt: skip
    for dx, dy in ep.get("grid", []):
        reset(env, ep)
        carrot, plate = u.objs_carrot[carrot_name], u.objs_plate[plate_name]
        pp = plate.pose.p[0].cpu().numpy()
        top = float(pp[2]) + float(u.model_db_plate[plate_name]["bbox"]["max"][2])
        z = top - float(u.model_db_carrot[carrot_name]["bbox"]["min"][2]) + ep["grid_clearance"]
        p = torch.tensor([[pp[0] + dx, pp[1] + dy, z]], dtype=torch.float32)
        q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
        carrot.set_pose(Pose.create_from_pq(p=p, q=q))
        carrot.set_linear_velocity(torch.zeros(1, 3))
        carrot.set_angular_velocity(torch.zeros(1, 3))
        u._settle(ep["grid_settle_s"] * u.control_freq)  # the fork's _settle(t) runs t / control_freq seconds
        ok = bool(u.evaluate()["success"][0])
        out["grid"].append(
            {"dx": dx, "dy": dy, "object_pose": pose(carrot), "plate_pose": pose(plate), "success": ok}
        )
    return out, rgb, lab


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: rl4vla_worker.py REQUEST_JSON OUT_DIR", file=sys.stderr)
        return 2
    import numpy as np

    req = json.loads(Path(argv[0]).read_text())
    out_dir = Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    arena = ensure_arena(req.get("table_box"))
    envs, results, rgbs, labs = {}, [], [], []
    for ep in req["episodes"]:
        if ep["env_id"] not in envs:
            envs[ep["env_id"]] = make(ep["env_id"])
        res, rgb, lab = run_episode(envs[ep["env_id"]], ep)
        results.append(res)
        rgbs.append(rgb)
        labs.append(lab)
        print(f"rl4vla: {ep['name']} done", flush=True)
    import mani_skill
    import sapien

    np.savez_compressed(out_dir / "rl4vla.npz", rgb=np.stack(rgbs), labels=np.stack(labs))
    meta = {"arena": arena, "mani_skill": mani_skill.__version__, "sapien": sapien.__version__,
            "mani_skill_path": str(Path(mani_skill.__file__).parent), "episodes": results}  # fmt: skip
    (out_dir / "rl4vla.json").write_text(json.dumps(meta, indent=1))
    for env in envs.values():
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
