"""Write vgb demonstrations as a LeRobotDataset, through lerobot's own dataset API (``LeRobotDataset.create``,
``add_frame``, ``save_episode``, ``finalize``).

Runs in the LeRobot environment (``.venv-lerobot/bin/python export_worker.py ...``), started by ``vgb export
lerobot``: it imports only the standard library, numpy and lerobot, and reads vgb's demonstration files directly
(plain ``.npz`` / ``.npy`` / JSON, see ``vla_gen_bench/training/demos.py``). Its last stdout line is a JSON summary.

Features written (one frame per control step, ``fps`` = the control rate):

* ``observation.images.<camera>``  video (H, W, 3) uint8, the policy camera's image before the step
* ``observation.state``            (16,) float32, the proprio vgb policies get (qpos 9, TCP pose xyz + wxyz 7)
* ``action``                       (7,) float32, the demonstrator's action: end-effector delta xyz (m), delta rpy
                                   (rad), gripper (+1 open, -1 close)
* ``task``                         the episode's instruction
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

STATE_NAMES = [*(f"joint_{i}" for i in range(7)), "finger_0", "finger_1",
               "tcp_x", "tcp_y", "tcp_z", "tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz"]  # fmt: skip
ACTION_NAMES = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]


def episode_files(demos: Path) -> list[Path]:
    """The finished episodes of a vgb demonstrations folder, in name order (the npz is written last)."""
    return sorted(p for p in (demos / "episodes").glob("*.npz") if ".tmp" not in p.name)


def steps_to_write(z, mode: str, success_hold: int) -> np.ndarray:
    """Indices of the steps of one episode to export.

    ``episode``: every step until success has held ``success_hold`` consecutive steps (the end of the
    demonstration; the rest is the robot idling); ``kept``: the idle-filtered steps vgb's SFT trains on (frames are
    then not evenly spaced in time); ``all``: every recorded step.
    """
    t = len(z["actions"])
    if mode == "all":
        return np.arange(t)
    if mode == "kept":
        return np.flatnonzero(z["keep"].astype(bool))
    end, run = t, 0
    for i, s in enumerate(z["success"].astype(bool)):
        run = run + 1 if s else 0
        if success_hold > 0 and run >= success_hold:
            end = i + 1
            break
    return np.arange(end)


def resize(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, h, w, 3) uint8: bilinear with antialiasing on [0, 1] floats, the resize
    ``server.py`` applies to an evaluation image whose size differs from the checkpoint's (so both see the same)."""
    if size is None or tuple(images.shape[1:3]) == tuple(size):
        return np.asarray(images)
    import torch

    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    t = torch.nn.functional.interpolate(
        t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def export(demos: Path, out: Path, repo_id: str, fps: int, steps: str, vcodec: str, limit: int | None,
           size: tuple[int, int] | None = None) -> dict:  # fmt: skip
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    card = json.loads((demos / "dataset.json").read_text())
    cfg = card.get("config", {})
    camera = str(cfg.get("camera", "default"))
    success_hold = int((cfg.get("filter") or {}).get("success_hold", 6))
    files = episode_files(demos)[:limit] if limit else episode_files(demos)
    if not files:
        raise SystemExit(f"error: no episodes in {demos / 'episodes'}; collect some with 'vgb collect-demos'")
    h, w, _ = np.load(
        files[0].with_name(files[0].name.removesuffix(".npz") + ".images.npy"), mmap_mode="r"
    ).shape[1:]
    h, w = size if size else (h, w)
    image_key = f"observation.images.{camera}"
    features = {
        image_key: {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": STATE_NAMES},
        "action": {"dtype": "float32", "shape": (len(ACTION_NAMES),), "names": ACTION_NAMES},
    }
    ds = LeRobotDataset.create(repo_id=repo_id, fps=fps, features=features, root=out, robot_type="panda",
                               use_videos=True, vcodec=vcodec)  # fmt: skip
    t0 = time.perf_counter()
    frames, names = 0, []
    for p in files:
        name = p.name.removesuffix(".npz")
        with np.load(p) as z:
            idx = steps_to_write(z, steps, success_hold)
            actions, states = z["actions"].astype(np.float32), z["states"].astype(np.float32)
            task = str(z["instruction"])
        if len(idx) == 0:
            continue
        images = resize(np.load(p.with_name(f"{name}.images.npy"), mmap_mode="r")[idx], size)
        for j, i in enumerate(idx):
            ds.add_frame({image_key: images[j], "observation.state": states[i],
                          "action": actions[i], "task": task})  # fmt: skip
        ds.save_episode()
        frames += len(idx)
        names.append(name)
        print(f"episode {len(names)}/{len(files)} {name}: {len(idx)} frames", file=sys.stderr, flush=True)
    ds.finalize()
    summary = {"out": str(out), "repo_id": repo_id, "episodes": len(names), "frames": frames, "fps": fps,
               "steps": steps, "image_key": image_key, "image_shape": [int(h), int(w), 3], "vcodec": vcodec,
               "source": str(demos), "source_episodes": names, "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    (out / "meta" / "vgb_export.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demos", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repo-id", required=True)
    ap.add_argument("--fps", type=int, required=True)
    ap.add_argument("--steps", choices=("episode", "kept", "all"), default="episode")
    ap.add_argument("--vcodec", default="libsvtav1")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"))
    a = ap.parse_args(argv)
    summary = export(a.demos, a.out, a.repo_id, a.fps, a.steps, a.vcodec, a.limit, a.size)
    print(json.dumps({k: v for k, v in summary.items() if k != "source_episodes"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
