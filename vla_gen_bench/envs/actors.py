"""Actors from asset shapes: one SAPIEN actor per object or receptacle of the asset store (the task's
``_load_scene`` builds every one once per scene and parks those an episode does not use).

Two kinds of shape: procedural ones (boxes, cylinders and convex hulls, each part with its colour) and mesh assets
(an RL4VLA-layout folder: a visual file and a file of convex collision pieces). Either way the actor frame sits at
the bottom of the shape's bounding box, so that z = 0 puts it on the table.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import sapien
from mani_skill.utils.structs import Actor

from vla_gen_bench.paths import cache_dir

# SAPIEN's cylinders lie along x; a shape part's cylinder stands along z
_Z_TO_X = (0.7071068, 0.0, -0.7071068, 0.0)


def build_asset_actor(scene, asset_id: str, shape, material, initial_pose: sapien.Pose) -> Actor:
    """A dynamic actor named ``asset_id`` for ``shape`` (the store's shape of that id), built at ``initial_pose``.

    ``material``: the PhysX material of every collision shape (the task's friction).
    """
    b = scene.create_actor_builder()
    if getattr(shape, "visual_file", None) is not None:
        _add_mesh_asset(b, shape, material)
    else:
        for p in shape.parts:
            _add_part(b, asset_id, p, material, shape.density)
    b.initial_pose = initial_pose
    return b.build(name=asset_id)


def _add_part(b, asset_id: str, p, material, density: float) -> None:
    """One part of a procedural shape: its visual and, where it collides, its collision shape."""
    rgba = [*p.color, 1.0]
    mat = sapien.render.RenderMaterial(base_color=rgba, roughness=0.6, specular=0.3)
    if p.kind == "box":
        pose = sapien.Pose(list(p.pos), list(p.quat))
        if p.collision:
            b.add_box_collision(pose, list(p.size), material=material, density=density)
        b.add_box_visual(pose, list(p.size), material=mat)
    elif p.kind == "cylinder":
        pose = sapien.Pose(list(p.pos), list(quat_mul(p.quat, _Z_TO_X)))
        r, hh = p.size
        if p.collision:
            b.add_cylinder_collision(pose, r, hh, material=material, density=density)
        b.add_cylinder_visual(pose, r, hh, material=mat)
    elif p.kind == "mesh":
        path = convex_mesh_file(p.vertices)
        pose = sapien.Pose(list(p.pos), list(p.quat))
        if p.collision:
            b.add_convex_collision_from_file(path, pose, material=material, density=density)
        b.add_visual_from_file(path, pose, material=mat)
    else:
        raise ValueError(f"asset {asset_id}: unknown part kind {p.kind!r}; allowed: box, cylinder, mesh")


def _add_mesh_asset(b, shape, material) -> None:
    """An object / receptacle from mesh files: every convex piece of the collision file, the visual file as is, both
    scaled and shifted so that the actor frame sits at the bottom of the bounding box."""
    scale = [float(shape.scale)] * 3
    pose = sapien.Pose(list(shape.mesh_offset))
    b.add_multiple_convex_collisions_from_file(str(shape.collision_file), pose, scale=scale, material=material,
                                               density=shape.density)  # fmt: skip
    b.add_visual_from_file(str(shape.visual_file), pose, scale=scale)


def quat_mul(a, b) -> tuple[float, float, float, float]:
    """Hamilton product of two wxyz quaternions (plain floats)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)  # fmt: skip


def convex_mesh_file(vertices) -> str:
    """Write (once) the convex hull of these vertices as an .obj in the cache; return its path."""
    import trimesh

    key = hashlib.sha256(np.asarray(vertices, dtype=np.float64).tobytes()).hexdigest()[:16]
    path = cache_dir() / "meshes" / f"hull_{key}.obj"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        hull = trimesh.Trimesh(vertices=np.asarray(vertices)).convex_hull
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.obj")  # workers may write the same hull at once
        hull.export(str(tmp))
        os.replace(tmp, path)
    return str(path)
