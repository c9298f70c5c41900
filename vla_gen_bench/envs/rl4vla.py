"""RL4VLA's scene as the simulator sees it: the paper's policy camera (intrinsics, base-link mount, shader), its
lighting, its physics rate and its mid-episode reposition drop.

Plain data plus pure functions. The run profiles that switch these on (``--profile rl4vla``) live with evaluation,
in :mod:`vla_gen_bench.eval.profiles`; ``docs/paper_profile.md`` explains each value.
"""

from __future__ import annotations

import math
import os

from vla_gen_bench.envs.robots import WIDOWX_BASE_POSE

# ---- the paper's policy camera (spec rl4vla.md §1): "3rd_view_camera" on the WidowX base_link, Logitech C920
RL4VLA_CAMERA_SIZE = (640, 480)
RL4VLA_INTRINSICS = (623.588, 623.588, 319.501, 239.545)  # fx, fy, cx, cy (pixels)
RL4VLA_CAMERA_MOUNT = (
    (0.0, -0.16, 0.36),
    (0.8992917, -0.09263245, 0.35892478, 0.23209205),
)  # p, q_wxyz in base_link
# Lighting of the paper's scene: ambient 0.3 and three directional lights (direction, intensity), no shadows.
RL4VLA_LIGHTING = {"ambient": 0.3, "directional": (((0.0, 0.0, -1.0), 2.2), ((-1.0, -0.5, -1.0), 0.7),
                                                   ((1.0, 1.0, -1.0), 0.7))}  # fmt: skip
RL4VLA_SIM_FREQ = 500
# RL4VLA renders evaluation, RL rollouts and demo collection with ManiSkill's "default" shader pack (its gym wrapper and
# collector pass sensor_configs shader_pack="default"); a ManiSkill 3.0.1 CameraConfig defaults to "minimal".
RL4VLA_SHADER = "default"
# RL4VLA's table top: SIMPLER's pose table rests its plate (bbox bottom at the model origin) at z = 0.869532.
RL4VLA_TABLE_TOP_Z = 0.869532
# Mid-episode reposition (PositionChangeTo-v1): the object's model origin is set at z = 1.0 over that table top,
# then `_settle(0.5)` runs half a control step of physics (50 substeps at 500 Hz = 0.1 s) inside the step.
RL4VLA_REPOSITION_DROP = round(
    1.0 - RL4VLA_TABLE_TOP_Z, 4
)  # 0.1305 m above the table (as the manifests hold it)
RL4VLA_REPOSITION_SETTLE_S = 0.1


def camera_shader(camera: str) -> str:
    """The ManiSkill shader pack a named policy camera renders with (``CAMERAS`` in the task module uses the same)."""
    return RL4VLA_SHADER if camera == "rl4vla" else "minimal"


def _qmul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)  # fmt: skip


def _qrot(q, v):
    """Rotate vector v by unit quaternion q (wxyz)."""
    w, x, y, z = _qmul(_qmul(q, (0.0, *v)), (q[0], -q[1], -q[2], -q[3]))
    return (x, y, z)


def mounted_pose(
    base: tuple[float, ...], mount: tuple[tuple[float, ...], tuple[float, ...]]
) -> tuple[float, ...]:
    """World pose (x, y, z, qw, qx, qy, qz) of a frame mounted at ``mount`` = (p, q) on a link at ``base``."""
    bp, bq = base[:3], base[3:]
    p, q = mount
    off = _qrot(bq, p)
    wq = _qmul(bq, q)
    n = math.sqrt(sum(c * c for c in wq))
    return (*(bp[i] + off[i] for i in range(3)), *(c / n for c in wq))


# The robot base never moves, so the paper's base-mounted camera is a fixed world pose: base pose (robots.py) x mount.
RL4VLA_CAMERA_POSE = mounted_pose(WIDOWX_BASE_POSE, RL4VLA_CAMERA_MOUNT)


# ---- RL4VLA's reset (put_on_in_scene_multi.py `_initialize_episode`): the robot parked 1 m above its base, every
# placed object and receptacle set with its model origin at a fixed world height over the table top (z = 0.869532),
# `_settle(0.5)` (0.1 s of physics), `_settle(6)` (1.2 s more) if the placed actors' summed speeds (norms over the
# batch) exceed 1e-3 m/s or 1e-2 rad/s; then the robot returns to its base and joints.
RL4VLA_PARK_ROBOT_DZ = 1.0
RL4VLA_SETTLE_S = 0.1
RL4VLA_SETTLE_MORE_S = 1.2
RL4VLA_SETTLE_LIN_VEL = 1e-3
RL4VLA_SETTLE_ANG_VEL = 1e-2


def spawn_heights(n_objects: int, n_receptacles: int, repositions: bool) -> tuple[list[float], list[float]]:
    """Heights of the model origins above the table top at which RL4VLA drops an episode's objects and receptacles
    (target first), by the variant family its env id belongs to: Main-based envs 0.95 / 0.95; MultiCarrot 0.95,
    receptacle 0.92, extra object 1.0; MultiPlate object 1.0, 0.92, extra receptacle 0.96; PositionChangeTo 0.95 /
    0.92 (world z, minus the table top 0.869532)."""
    if n_receptacles > 1:
        obj, rec = [1.0], [0.92, 0.96]
    elif n_objects > 1:
        obj, rec = [0.95, 1.0], [0.92]
    elif repositions:
        obj, rec = [0.95], [0.92]
    else:
        obj, rec = [0.95], [0.95]
    # an episode with more actors than any RL4VLA env (none in the catalog) drops the extra ones like the last
    up = lambda zs, n: [round(z - RL4VLA_TABLE_TOP_Z, 6) for z in (zs + zs[-1:] * n)[:n]]  # noqa: E731
    return up(obj, n_objects), up(rec, n_receptacles)


def table_mesh_file(center: tuple[float, float, float], half: tuple[float, float, float]) -> str:
    """A box (``center``, ``half`` extents) written once as a triangle mesh (.obj in the cache); its path. RL4VLA's
    table is a non-convex triangle mesh, and PhysX makes contacts with a triangle mesh differently from those with a
    box shape: the rl4vla rules build the table's collision from this file (measured side by side, an object
    dropped at reset comes to rest within 0.01 mm / 0.1 deg of RL4VLA's, against 0.1 mm / 0.4 deg on a box)."""
    import trimesh

    from vla_gen_bench.paths import cache_dir

    lo = [c - h for c, h in zip(center, half, strict=True)]
    hi = [c + h for c, h in zip(center, half, strict=True)]
    path = cache_dir() / "meshes" / ("table_" + "_".join(f"{v:.4f}" for v in (*lo, *hi)) + ".obj")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.obj")  # workers may write the same file at once
        trimesh.creation.box(bounds=[lo, hi]).export(str(tmp))
        os.replace(tmp, path)
    return str(path)
