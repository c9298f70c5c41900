"""RL4VLA's scene as the simulator sees it: the paper's policy camera (intrinsics, base-link mount, shader), its
lighting, its physics rate and its mid-episode reposition drop.

Plain data plus pure functions. The run profiles that switch these on (``--profile rl4vla``) live with evaluation,
in :mod:`vla_gen_bench.eval.profiles`; ``docs/paper_profile.md`` explains each value.
"""

from __future__ import annotations

import math

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
# Mid-episode reposition (PositionChangeTo-v1): the object's model origin is set at z = 1.0 over a table top at
# z ~ 0.8695, then `_settle(0.5)` runs half a control step of physics (50 substeps at 500 Hz = 0.1 s) inside the step.
RL4VLA_TABLE_TOP_Z = 0.8695
RL4VLA_REPOSITION_DROP = round(1.0 - RL4VLA_TABLE_TOP_Z, 4)  # 0.1305 m above the table
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
