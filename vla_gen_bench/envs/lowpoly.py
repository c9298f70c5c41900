"""Derive a low-poly Panda (visual meshes decimated ~10x, collision meshes untouched) from ManiSkill's bundled one.

On Mesa's lavapipe the stock Panda's 135k visual triangles cost 45-70 ms per rendered frame whatever the resolution;
the decimated copy (~14k triangles) renders 3-3.7x faster and looks the same at policy resolutions. Collision STLs
and the SRDF are copied byte for byte, so contacts, grasps and motion planning are unchanged.

Run ``python -m vla_gen_bench.envs.lowpoly`` (set-up does) to build the cache; building is deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from vla_gen_bench.paths import cache_dir

FORMAT_VERSION = 2
KEEP_FACES_BELOW = 400  # small sub-meshes (buttons, logos) are cheap; keep them exact
DECIMATE_FRACTION = 0.9  # remove 90 % of the triangles of every large sub-mesh


def lowpoly_dir() -> Path:
    return cache_dir() / f"panda_lowpoly_v{FORMAT_VERSION}"


def lowpoly_urdf_path() -> Path:
    """Path of the low-poly Panda URDF, or FileNotFoundError with the command that builds it."""
    urdf = lowpoly_dir() / "panda_v2.urdf"
    if not (lowpoly_dir() / "done.json").exists():
        raise FileNotFoundError(
            f"low-poly Panda meshes not built at {lowpoly_dir()}; run 'python -m vla_gen_bench.envs.lowpoly' "
            "(scripts/setup.sh does this), or pass robot='panda_stock' to use the stock meshes"
        )
    return urdf


def _decimate_scene(src: Path, dst: Path) -> tuple[int, int]:
    import trimesh
    from trimesh.visual import TextureVisuals

    scene = trimesh.load(str(src))
    before = after = 0
    for name, geom in list(scene.geometry.items()):
        before += len(geom.faces)
        if len(geom.faces) > KEEP_FACES_BELOW:
            material = getattr(geom.visual, "material", None)
            geom = geom.copy()
            geom.visual = TextureVisuals()
            # glb triangles come unwelded; without merging, decimation shreds the surface.
            geom.merge_vertices(merge_tex=True, merge_norm=True)
            geom = geom.simplify_quadric_decimation(percent=DECIMATE_FRACTION)
            geom.visual = TextureVisuals(material=material)
            scene.geometry[name] = geom
        after += len(scene.geometry[name].faces)
    scene.export(str(dst))
    return before, after


def build(force: bool = False) -> Path:
    """Build the low-poly Panda into the cache (idempotent) and return its URDF path."""
    from mani_skill import PACKAGE_ASSET_DIR

    out = lowpoly_dir()
    if (out / "done.json").exists() and not force:
        return out / "panda_v2.urdf"
    src = Path(PACKAGE_ASSET_DIR) / "robots" / "panda"
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")  # simulator workers may build it at the same time
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src / "franka_description", tmp / "franka_description")
    for f in ("panda_v2.urdf", "panda_v2.srdf"):
        shutil.copy2(src / f, tmp / f)
    total_before = total_after = 0
    for glb in sorted((tmp / "franka_description" / "meshes" / "visual").glob("*.glb")):
        b, a = _decimate_scene(glb, glb)
        total_before += b
        total_after += a
    (tmp / "done.json").write_text(
        json.dumps({"triangles_before": total_before, "triangles_after": total_after})
    )
    if (out / "done.json").exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        return out / "panda_v2.urdf"
    shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:  # lost the race between the check and the rename
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "done.json").exists():
            raise
    return out / "panda_v2.urdf"


if __name__ == "__main__":
    urdf = build()
    stats = json.loads((urdf.parent / "done.json").read_text())
    print(
        f"low-poly Panda: {stats['triangles_before']} -> {stats['triangles_after']} visual triangles at {urdf}"
    )
