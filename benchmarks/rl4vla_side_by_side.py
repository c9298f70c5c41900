"""``--profile rl4vla`` side by side with RL4VLA's own environment: the same episodes rendered by both, compared.

RL4VLA's ManiSkill fork is never imported here: it runs in its own Python environment (``--rl4vla-python``) as a
subprocess, ``benchmarks/rl4vla_worker.py``, which plays the episodes this script writes to a request file and
returns images, labels and poses (npz + json). Nothing of RL4VLA's code or assets is part of this repository; both
sides read the same RL4VLA folder (``<rl4vla-root>/ManiSkill/mani_skill/assets/carrot``) and the same WidowX-250S
files (``$MS_ASSET_DIR/data/robots/widowx``).

Episodes: ``--episodes`` per variant of ``--variants`` (default ind, unseen_table, unseen_objects,
unseen_positions: the single-object variants on RL4VLA's plate, which its ``PutOnPlateInScene25Main-v3`` env
builds), taken from the rl4vla profile's manifests for ``--seed``; RL4VLA's env is driven to the same object, plate,
table photograph, positions and yaw (its world frame is ours moved by the robot-base offset, see ``FRAME_OFFSET``).
Measured, per episode:

* the fraction of identical pixels of the 640x480 policy image after reset (after the drop and settle), and the
  differing pixels broken down by what each side shows there (background, robot, object, plate);
* the object's and the plate's pose difference after the settle (mm, degrees);
* the success agreement on a grid of hand-placed object poses around the plate (``GRID``: along both axes, out to
  and past the rim; on the first episode of each of ``--grid-variants``): after a reset, the object's model origin
  is set ``GRID_CLEARANCE`` above the plate top at (dx, dy) from the plate's origin, ``GRID_SETTLE_S`` of physics
  run, and each env's own success test is read.

Set-up of RL4VLA's environment (outside the repository; ManiSkill's pinned SAPIEN 3.0.0b1 needs Vulkan's
VK_KHR_external_semaphore_fd, which lavapipe lacks, so SAPIEN 3.0.3 is used, the version vgb runs)::

    git clone https://github.com/gen-robot/RL4VLA /tmp/rl4vla   # with git-lfs for its meshes
    python3.11 -m venv /tmp/rl4vla-venv
    /tmp/rl4vla-venv/bin/pip install torch "numpy<2" scipy dacite gymnasium==0.29.1 sapien==3.0.3 h5py pyyaml tqdm \\
        GitPython tabulate transforms3d trimesh imageio imageio-ffmpeg opencv-python-headless \\
        pytorch_kinematics==0.7.5 pynvml "tyro>=0.8.5" huggingface_hub IPython
    /tmp/rl4vla-venv/bin/pip install -e /tmp/rl4vla/ManiSkill --no-deps

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl4vla_side_by_side.py \\
        --rl4vla-python /tmp/rl4vla-venv/bin/python --rl4vla-root /tmp/rl4vla

The fork's env also loads ManiSkill's ``bridge_v2_real2sim`` arena mesh, which its policy never sees (green
screen); give a folder holding it with ``--bridge-assets``, else the worker stands RL4VLA's objects on our own table
(``table_box``: the same box, top at RL4VLA's z = 0.869532, as a triangle mesh like the arena), recorded as
``arena`` in the results. Writes ``<out>/results.json`` (every number, both sides' versions) and
``<out>/README.md`` (the summary tables), the images under ``<work>``; exit status 1 when a target is missed
(``PIXEL_TARGET`` identical pixels, success agreement on every grid pose), 2 when something needed is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("rl4vla_worker.py")
FORK_ENV_FILE = Path(
    "ManiSkill/mani_skill/envs/tasks/digital_twins/bridge_dataset_eval/put_on_in_scene_multi.py"
)
ENV_ID = "PutOnPlateInScene25Main-v3"  # one plate (RL4VLA's 001_plate_simpler), every object and table photo
VARIANTS = ("ind", "unseen_table", "unseen_objects", "unseen_positions")
# RL4VLA's robot base (put_on_in_scene_multi.py initial_robot_pos); ours is robots.WIDOWX_BASE_POSE, same yaw
RL4VLA_BASE_P = (0.147, 0.028, 0.870)
GRID = tuple(
    (d, 0.0) for d in (-0.08, -0.07, -0.065, -0.06, -0.05, -0.03, 0.0, 0.03, 0.05, 0.06, 0.065, 0.07)
) + tuple(
    (0.0, d) for d in (-0.07, -0.065, -0.06, 0.06, 0.065, 0.07)
)  # (dx, dy) of the object's origin from the plate's, m
GRID_CLEARANCE = 0.0005  # m between the object's bbox bottom and the plate's bbox top when it is let go
GRID_SETTLE_S = 0.05  # s of physics before success is read: contact made, too little time to tip or slide far
GRID_VARIANTS = ("ind", "unseen_objects")  # the other two variants' episodes hold the same object as ind's
PIXEL_TARGET = 0.99
LABELS = ("background", "robot", "object", "plate", "other object")
DEFAULT_OUT = ROOT / "baselines" / "results" / "rl4vla_side_by_side"


class Missing(Exception):
    """Something the comparison needs is absent; the message says what and what to do."""


def frame_offset() -> tuple[float, float, float]:
    """RL4VLA world = vgb world + this (the two robot bases coincide)."""
    from vla_gen_bench.envs.robots import WIDOWX_BASE_POSE

    return tuple(round(a - b, 6) for a, b in zip(RL4VLA_BASE_P, WIDOWX_BASE_POSE[:3], strict=True))


def table_box() -> list[list[float]]:
    """Our table's collision box in RL4VLA's frame ([lo, hi]), for the worker's stand-in arena: without RL4VLA's own
    arena mesh, both sides then stand on the same triangle-mesh box."""
    from vla_gen_bench.envs.put_on_receptacle import TABLE_RECT

    x0, x1, y0, y1 = TABLE_RECT
    off = frame_offset()
    return [[x0 + off[0], y0 + off[1], -0.04 + off[2]], [x1 + off[0], y1 + off[1], off[2]]]


def check_inputs(args) -> Path:
    """The RL4VLA asset folder, once everything the two sides need is there; else :class:`Missing`."""
    how = "see the set-up in benchmarks/rl4vla_side_by_side.py's docstring"
    if not args.rl4vla_python:
        raise Missing(
            f"missing --rl4vla-python: the Python of an environment with RL4VLA's ManiSkill fork installed; {how}"
        )
    py = Path(args.rl4vla_python)
    if not (py.is_file() and os.access(py, os.X_OK)):
        raise Missing(
            f"--rl4vla-python {py} is not an executable file; pass the fork environment's bin/python; {how}"
        )
    if not args.rl4vla_root:
        raise Missing(f"missing --rl4vla-root: the folder of an RL4VLA clone (holding ManiSkill/); {how}")
    root = Path(args.rl4vla_root)
    if not (root / FORK_ENV_FILE).is_file():
        raise Missing(f"--rl4vla-root {root} is not an RL4VLA clone: {root / FORK_ENV_FILE} is missing; pass the "
                      f"folder that holds ManiSkill/ (git clone https://github.com/gen-robot/RL4VLA)")  # fmt: skip
    probe = "import importlib.util as u; s = u.find_spec('mani_skill'); print(s.origin if s else '')"
    try:
        found = subprocess.run(
            [str(py), "-c", probe], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Missing(f"--rl4vla-python {py} does not run ({e}); pass a working Python; {how}") from e
    fork = (root / "ManiSkill" / "mani_skill").resolve()
    if not found or Path(found).resolve().parent != fork:
        where = f"imports mani_skill from {Path(found).parent}" if found else "has no mani_skill"
        raise Missing(f"--rl4vla-python {py} {where}, not RL4VLA's fork at {fork}; install it there with "
                      f"'{py} -m pip install -e {root / 'ManiSkill'} --no-deps'; {how}")  # fmt: skip
    if args.bridge_assets and not (Path(args.bridge_assets) / "stages" / "bridge_table_1_v1.glb").is_file():
        raise Missing(f"--bridge-assets {args.bridge_assets} holds no stages/bridge_table_1_v1.glb; pass ManiSkill's "
                      "bridge_v2_real2sim_dataset folder, or leave the option out (a flat table top is used)")  # fmt: skip
    from vla_gen_bench.assets.rl4vla import REPO_SUBDIR
    from vla_gen_bench.assets.store import AssetError
    from vla_gen_bench.envs.robots import check_widowx_assets

    try:
        check_widowx_assets()
    except FileNotFoundError as e:
        raise Missing(str(e)) from e
    folder = root / REPO_SUBDIR
    from vla_gen_bench.assets.rl4vla import load_rl4vla

    try:
        load_rl4vla(folder)
    except AssetError as e:
        raise Missing(str(e)) from e
    return folder


# ---------------------------------------------------------------- episodes
def plan_episodes(
    store,
    variants,
    n: int,
    seed: int,
    grid_variants=None,
    grid_clearance: float = GRID_CLEARANCE,
    grid_settle_s: float = GRID_SETTLE_S,
) -> tuple[list, list[dict]]:
    """(vgb EpisodeSpecs, the worker's requests) for ``n`` episodes of each variant under the rl4vla profile; the
    success grid on the first episode of each of ``grid_variants`` (default ``GRID_VARIANTS``)."""
    grid_variants = GRID_VARIANTS if grid_variants is None else grid_variants
    from vla_gen_bench.eval.profiles import get_profile

    profile = get_profile("rl4vla")
    off = frame_offset()
    carrots = _db_keys(store, "object")
    tables = _db_keys(store, "table")
    plate = _db_keys(store, "receptacle")[0]
    specs, requests = [], []
    for v in variants:
        for k in range(n):
            s = profile.episode(v, seed, k, store)
            if len(s.objects) != 1 or len(s.receptacles) != 1 or s.overlay or s.reposition:
                raise ValueError(f"variant {v!r} has several objects, receptacles, an overlay or a reposition; "
                                 f"compare one of {', '.join(VARIANTS)}")  # fmt: skip
            if store.shape(s.receptacles[0]).params["rl4vla"] != plate:
                raise ValueError(
                    f"variant {v!r} puts the object on {s.receptacles[0]}; {ENV_ID} has only {plate}"
                )
            specs.append(s)
            (ox, oy), (px, py) = s.object_xy[0], s.receptacle_xy[0]
            requests.append({"name": f"{v}/{seed}/{k}", "env_id": ENV_ID,
                             "carrot": carrots.index(store.shape(s.objects[0]).params["rl4vla"]), "plate": 0,
                             "overlay": tables.index(store.entry(s.table).params["rl4vla"]),
                             "obj_xy": [ox + off[0], oy + off[1]], "obj_yaw": float(s.object_yaw[0]),
                             "plate_xy": [px + off[0], py + off[1]],
                             "plate_yaw": float(s.receptacle_yaw[0]) if s.receptacle_yaw else 0.0,
                             "grid": [list(g) for g in GRID] if k == 0 and v in grid_variants else [],
                             "grid_clearance": grid_clearance, "grid_settle_s": grid_settle_s})  # fmt: skip
    return specs, requests


def _db_keys(store, kind: str) -> list[str]:
    """RL4VLA's model_db.json keys of ``kind`` in file order (its episode ids index them)."""
    from vla_gen_bench.assets.rl4vla import FOLDERS

    return list(json.loads((store.root / FOLDERS[kind] / "model_db.json").read_text()))


# ---------------------------------------------------------------- vgb's side
def run_vgb(store, specs: list, requests: list[dict]) -> tuple[list[dict], list, list]:
    """Play the episodes in vgb's env under the rl4vla profile: poses in RL4VLA's frame, images, labels."""
    import numpy as np
    import torch
    from mani_skill.utils.structs.pose import Pose

    from vla_gen_bench.envs import make_env
    from vla_gen_bench.envs.cameras import POLICY_CAMERA
    from vla_gen_bench.eval.profiles import get_profile

    env = make_env(asset_store=store, **get_profile("rl4vla").env_kwargs())
    u = env.unwrapped
    off = torch.tensor(frame_offset())
    results, rgbs, labs = [], [], []
    try:
        for spec, req in zip(specs, requests, strict=True):
            obs, info = env.reset(seed=0, options={"episode": spec})
            obj = u.objects[u.object_ids.index(spec.objects[0])]
            rec = u.receptacles[u.receptacle_ids.index(spec.receptacles[0])]
            cam = obs["sensor_data"][POLICY_CAMERA]
            rgbs.append(cam["rgb"][0].cpu().numpy().astype(np.uint8))
            labs.append(_vgb_labels(u, spec, cam["segmentation"][0, ..., 0].cpu().numpy()))
            res = {"name": req["name"], "object_pose": _origin_pose(obj, store.shape(spec.objects[0]), off),
                   "plate_pose": _origin_pose(rec, store.shape(spec.receptacles[0]), off),
                   "success_at_reset": bool(info["success"][0]), "grid": []}  # fmt: skip
            oshape, rshape = store.shape(spec.objects[0]), store.shape(spec.receptacles[0])
            for dx, dy in req["grid"]:
                env.reset(
                    seed=0, options={"episode": spec}
                )  # a reset rebuilds the scene: look the actors up again
                obj = u.objects[u.object_ids.index(spec.objects[0])]
                rec = u.receptacles[u.receptacle_ids.index(spec.receptacles[0])]
                rp = torch.tensor(_origin_pose(rec, rshape, off)[:3]) - off  # plate origin, our frame
                top = float(rp[2]) + float(rshape.bbox_max[2]) * rshape.scale
                origin_z = top - float(oshape.bbox_min[2]) * oshape.scale + req["grid_clearance"]
                raw = obj.pose.raw_pose.clone()
                raw[0] = torch.tensor([float(rp[0]) + dx, float(rp[1]) + dy, origin_z - oshape.mesh_offset[2],
                                       1.0, 0.0, 0.0, 0.0])  # fmt: skip
                obj.set_pose(Pose.create(raw))
                obj.set_linear_velocity(torch.zeros(1, 3))
                obj.set_angular_velocity(torch.zeros(1, 3))
                u._settle(req["grid_settle_s"])
                ok = bool(u.evaluate()["success"][0])
                res["grid"].append({"dx": dx, "dy": dy, "object_pose": _origin_pose(obj, oshape, off),
                                    "plate_pose": _origin_pose(rec, rshape, off), "success": ok})  # fmt: skip
            results.append(res)
            print(f"vgb: {req['name']} done", flush=True)
    finally:
        env.close()
    return results, rgbs, labs


def _origin_pose(actor, shape, off) -> list[float]:
    """The asset's model origin (our actor frame is its bbox bottom) in RL4VLA's world frame, x y z qw qx qy qz."""
    import torch

    from vla_gen_bench.envs.put_on_receptacle import _quat_apply

    q = actor.pose.q[:1]
    local = torch.tensor([list(getattr(shape, "mesh_offset", (0.0, 0.0, 0.0)))], dtype=torch.float32)
    p = actor.pose.p[:1] + _quat_apply(q, local) + off
    return [float(x) for x in torch.cat([p, q], 1)[0]]


def _vgb_labels(u, spec, seg):
    """(H, W) uint8 class of every pixel, as the worker's (``LABELS``)."""
    import numpy as np
    from mani_skill.utils.structs import Actor, Link

    out = np.zeros(seg.shape, dtype=np.uint8)
    for i, o in u.segmentation_id_map.items():
        if isinstance(o, Link):
            out[seg == i] = 1
        elif isinstance(o, Actor) and o.name in (*u.object_ids, *u.receptacle_ids):
            out[seg == i] = 2 if o.name == spec.objects[0] else 3 if o.name == spec.receptacles[0] else 4
    return out


# ---------------------------------------------------------------- comparison
def angle_deg(qa, qb) -> float:
    """Rotation angle between two unit quaternions (wxyz), degrees."""
    dot = min(1.0, abs(sum(a * b for a, b in zip(qa, qb, strict=True))))
    return math.degrees(2 * math.acos(dot))


def pose_diff(a: list[float], b: list[float]) -> tuple[float, float]:
    """(position difference in mm, rotation difference in degrees)."""
    return 1000 * math.dist(a[:3], b[:3]), angle_deg(a[3:], b[3:])


def compare(vgb: list[dict], rl: list[dict], vgb_rgb, rl_rgb, vgb_lab, rl_lab) -> dict:
    import numpy as np

    episodes, grid = [], []
    for a, b, ia, ib, la, lb in zip(vgb, rl, vgb_rgb, rl_rgb, vgb_lab, rl_lab, strict=True):
        same = (ia == ib).all(-1)  # (H, W)
        where = {}
        for x in range(len(LABELS)):
            for y in range(len(LABELS)):
                n = int(((la == x) & (lb == y) & ~same).sum())
                if n:
                    where[f"{LABELS[x]} / {LABELS[y]}"] = n
        od, orot = pose_diff(a["object_pose"], b["object_pose"])
        pd, prot = pose_diff(a["plate_pose"], b["plate_pose"])
        episodes.append({"name": a["name"], "identical_pixels": float(same.mean()),
                         "differing_pixels_vgb_rl4vla_labels": where,
                         "mean_abs_diff_where_differing": float(np.abs(ia.astype(int) - ib.astype(int))[~same].mean())
                         if (~same).any() else 0.0,
                         "object_mm": od, "object_deg": orot, "plate_mm": pd, "plate_deg": prot,
                         "object_tilt_deg": {"vgb": _tilt(a["object_pose"]), "rl4vla": _tilt(b["object_pose"])},
                         "success_at_reset": {"vgb": a["success_at_reset"], "rl4vla": b["success_at_reset"]},
                         "object": b["carrot"], "table_photo": b["overlay"]})  # fmt: skip
        for ga, gb in zip(a["grid"], b["grid"], strict=True):
            gd, grot = pose_diff(ga["object_pose"], gb["object_pose"])
            grid.append({"episode": a["name"], "dx": ga["dx"], "dy": ga["dy"], "vgb": ga["success"],
                         "rl4vla": gb["success"], "agree": ga["success"] == gb["success"],
                         "object_mm": gd, "object_deg": grot,
                         "origin_xy_mm": {"vgb": _xy_mm(ga), "rl4vla": _xy_mm(gb)}})  # fmt: skip
    return {"episodes": episodes, "grid": grid}


def _xy_mm(g: dict) -> float:
    """Horizontal distance between the object's and the plate's origins after the grid settle, mm."""
    return 1000 * math.dist(g["object_pose"][:2], g["plate_pose"][:2])


def _tilt(pose: list[float]) -> float:
    """Angle between the object's z axis and the world's, degrees."""
    w, x, y, z = pose[3:]
    return math.degrees(math.acos(max(-1.0, min(1.0, 1 - 2 * (x * x + y * y)))))


def summary(cmp: dict) -> dict:
    eps, grid = cmp["episodes"], cmp["grid"]
    return {"episodes": len(eps), "identical_pixels_min": min(e["identical_pixels"] for e in eps),
            "identical_pixels_mean": sum(e["identical_pixels"] for e in eps) / len(eps),
            "object_mm_max": max(e["object_mm"] for e in eps), "object_deg_max": max(e["object_deg"] for e in eps),
            "plate_mm_max": max(e["plate_mm"] for e in eps), "plate_deg_max": max(e["plate_deg"] for e in eps),
            "grid_poses": len(grid), "grid_agree": sum(g["agree"] for g in grid),
            "grid_successes": {"vgb": sum(g["vgb"] for g in grid), "rl4vla": sum(g["rl4vla"] for g in grid)}}  # fmt: skip


def readme(res: dict) -> str:
    s = res["summary"]
    lines = [
        "# `--profile rl4vla` side by side with RL4VLA's own environment",
        "",
        f"Written by `benchmarks/rl4vla_side_by_side.py` on {res['created'][:10]} (every number is in "
        "[results.json](results.json)); RL4VLA's fork ran in its own environment "
        f"(ManiSkill {res['rl4vla']['mani_skill']}, SAPIEN {res['rl4vla']['sapien']}, env `{ENV_ID}`, CPU "
        f"physics and lavapipe rendering), vgb with `--profile rl4vla`; arena of RL4VLA's env: {res['rl4vla']['arena']}.",
        "",
        f"**{s['episodes']} episodes** ({', '.join(res['variants'])}, seed {res['seed']}): identical pixels of the "
        f"640x480 policy image after reset {100 * s['identical_pixels_mean']:.2f} % on average, "
        f"{100 * s['identical_pixels_min']:.2f} % at worst (target {100 * PIXEL_TARGET:.0f} %); object pose after "
        f"the settle within {s['object_mm_max']:.2f} mm / {s['object_deg_max']:.2f} deg, plate within "
        f"{s['plate_mm_max']:.2f} mm / {s['plate_deg_max']:.2f} deg.",
        "",
        f"**Success agreement on {s['grid_poses']} hand-placed object poses** around the plate: "
        f"{s['grid_agree']}/{s['grid_poses']} (successes: vgb {s['grid_successes']['vgb']}, RL4VLA "
        f"{s['grid_successes']['rl4vla']}).",
        "",
        "| episode | object | identical pixels | object mm / deg | plate mm / deg | tilt vgb / RL4VLA (deg) | "
        "differing pixels (vgb / RL4VLA label: count) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in res["comparison"]["episodes"]:
        where = ", ".join(f"{k}: {v}" for k, v in sorted(e["differing_pixels_vgb_rl4vla_labels"].items(),
                                                          key=lambda kv: -kv[1]))  # fmt: skip
        lines.append(f"| {e['name']} | {e['object']} | {100 * e['identical_pixels']:.2f} % | "
                     f"{e['object_mm']:.2f} / {e['object_deg']:.2f} | {e['plate_mm']:.2f} / {e['plate_deg']:.2f} | "
                     f"{e['object_tilt_deg']['vgb']:.1f} / {e['object_tilt_deg']['rl4vla']:.1f} | {where or '-'} |")  # fmt: skip
    lines += [
        "",
        "| episode | dx (cm) | dy (cm) | vgb | RL4VLA | object after settle mm / deg | origin from plate's, vgb / "
        "RL4VLA (mm) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in res["comparison"]["grid"]:
        yn = lambda b: "success" if b else "fail"  # noqa: E731
        lines.append(f"| {g['episode']} | {100 * g['dx']:+.1f} | {100 * g['dy']:+.1f} | {yn(g['vgb'])} | "
                     f"{yn(g['rl4vla'])} | {g['object_mm']:.2f} / {g['object_deg']:.2f} | "
                     f"{g['origin_xy_mm']['vgb']:.1f} / {g['origin_xy_mm']['rl4vla']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main
def run_worker(args, requests: list[dict], work: Path) -> tuple[dict, dict]:
    import numpy as np

    from vla_gen_bench.envs.robots import widowx_urdf_path

    ms = work / "ms_asset_dir" / "data"
    (ms / "robots").mkdir(parents=True, exist_ok=True)
    (ms / "tasks").mkdir(parents=True, exist_ok=True)
    for link, target in ((ms / "robots" / "widowx", widowx_urdf_path().parent),
                         (ms / "tasks" / "bridge_v2_real2sim_dataset", args.bridge_assets)):  # fmt: skip
        if target and not link.is_symlink():
            link.symlink_to(Path(target).resolve())
    req = work / "request.json"
    req.write_text(json.dumps({"episodes": requests, "table_box": table_box()}, indent=1))
    env = {
        **os.environ,
        "MS_ASSET_DIR": str(ms.parent),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([args.rl4vla_python, str(WORKER), str(req), str(work / "rl4vla")], env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"RL4VLA's worker exited with status {proc.returncode} (its output is above)")
    data = np.load(work / "rl4vla" / "rl4vla.npz")
    return json.loads((work / "rl4vla" / "rl4vla.json").read_text()), {k: data[k] for k in data.files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rl4vla-python", help="Python of the environment where RL4VLA's ManiSkill fork is installed"
    )
    ap.add_argument("--rl4vla-root", help="RL4VLA clone (the folder holding ManiSkill/)")
    ap.add_argument("--bridge-assets", help="ManiSkill's bridge_v2_real2sim_dataset folder (optional)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--episodes", type=int, default=2, help="episodes per variant")
    ap.add_argument(
        "--grid-variants",
        nargs="*",
        default=list(GRID_VARIANTS),
        choices=VARIANTS,
        help="variants on whose first episode the success grid runs",
    )
    ap.add_argument("--grid-clearance", type=float, default=GRID_CLEARANCE, help="m above the plate top")
    ap.add_argument(
        "--grid-settle-s", type=float, default=GRID_SETTLE_S, help="s of physics before success is read"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--work", type=Path, help="folder for the images and the worker's files (default: a temp dir)"
    )
    args = ap.parse_args(argv)
    try:
        folder = check_inputs(args)
    except Missing as e:
        print(f"rl4vla_side_by_side: {e}", file=sys.stderr)
        return 2
    import numpy as np

    from vla_gen_bench.assets.rl4vla import content_hash, load_rl4vla

    work = args.work or Path(tempfile.mkdtemp(prefix="rl4vla-sbs-"))
    work.mkdir(parents=True, exist_ok=True)
    store = load_rl4vla(folder)
    specs, requests = plan_episodes(store, args.variants, args.episodes, args.seed, args.grid_variants,
                                    args.grid_clearance, args.grid_settle_s)  # fmt: skip
    t0 = time.time()
    rl_meta, rl_arrays = run_worker(args, requests, work)
    t1 = time.time()
    vgb, vgb_rgb, vgb_lab = run_vgb(store, specs, requests)
    t2 = time.time()
    cmp = compare(
        vgb, rl_meta["episodes"], vgb_rgb, list(rl_arrays["rgb"]), vgb_lab, list(rl_arrays["labels"])
    )
    np.savez_compressed(work / "vgb.npz", rgb=np.stack(vgb_rgb), labels=np.stack(vgb_lab))
    import mani_skill
    import sapien

    res = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "variants": args.variants,
           "seed": args.seed, "episodes_per_variant": args.episodes, "env_id": ENV_ID,
           "frame_offset": frame_offset(), "grid_clearance": args.grid_clearance, "grid_settle_s": args.grid_settle_s,
           "asset_folder_hash": content_hash(folder),
           "rl4vla": {k: rl_meta[k] for k in ("arena", "mani_skill", "sapien")},
           "vgb": {"mani_skill": mani_skill.__version__, "sapien": sapien.__version__},
           "seconds": {"rl4vla": round(t1 - t0, 1), "vgb": round(t2 - t1, 1)},
           "summary": summary(cmp), "comparison": cmp, "sides": {"vgb": vgb, "rl4vla": rl_meta["episodes"]},
           "images": str(work)}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "README.md").write_text(readme(res))
    s = res["summary"]
    print(f"identical pixels after reset: mean {100 * s['identical_pixels_mean']:.2f} %, min "
          f"{100 * s['identical_pixels_min']:.2f} %; object pose within {s['object_mm_max']:.2f} mm / "
          f"{s['object_deg_max']:.2f} deg, plate {s['plate_mm_max']:.2f} mm / {s['plate_deg_max']:.2f} deg; "
          f"success agreement {s['grid_agree']}/{s['grid_poses']} grid poses")  # fmt: skip
    print(f"wrote {args.out / 'results.json'}, {args.out / 'README.md'}; images in {work}")
    ok = s["identical_pixels_min"] >= PIXEL_TARGET and s["grid_agree"] == s["grid_poses"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
