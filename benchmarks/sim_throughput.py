"""Simulation throughput on this machine, measured side by side in one run.

For each camera resolution (128², 224², 640x480) and robot mesh (low-poly vs stock Panda) it times env steps of
VgbPutOnReceptacle-v1 with a trivial policy, and splits a step into physics and observation (render + compose)
by timing ``env.step`` with obs_mode="state" as well. Prints a table and the low-poly speed-up ratios.

    python benchmarks/sim_throughput.py [--steps 160] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def bench(robot: str, camera: str, steps: int, obs_mode: str = "rgb", sim_freq: int = 100) -> dict:
    import numpy as np

    from vla_gen_bench.envs import make_env

    t0 = time.perf_counter()
    env = make_env(camera=camera, robot=robot, obs_mode=obs_mode, sim_freq=sim_freq)
    make_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    t_reset = time.perf_counter()
    for s in range(1, 6):
        env.reset(seed=s)
    reset_ms = (time.perf_counter() - t_reset) / 5 * 1000
    blocks = []
    for b in range(3):
        env.reset(seed=100 + b)
        t = time.perf_counter()
        for _ in range(steps // 3):
            a = rng.uniform(-1, 1, 7) * [0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 1]
            env.step(a)
        blocks.append((steps // 3) / (time.perf_counter() - t))
    env.close()
    return {"robot": robot, "camera": camera, "obs": obs_mode, "sim_freq": sim_freq,
            "steps_per_s": float(np.median(blocks)), "make_s": make_s, "reset_ms": reset_ms}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--quick", action="store_true", help="only 224² low-poly vs stock")
    args = ap.parse_args()
    cams = ["default"] if args.quick else ["fast", "default", "paper"]
    rows = [bench("panda_lowpoly", "default", args.steps, obs_mode="state")]
    rows.append(bench("panda_lowpoly", "default", args.steps, obs_mode="state", sim_freq=500))
    for cam in cams:
        for robot in ("panda_lowpoly", "panda_stock"):
            rows.append(bench(robot, cam, args.steps))
    size = {"fast": "128x128", "default": "224x224", "paper": "640x480"}
    print(
        f"{'robot':14s} {'obs':6s} {'camera':8s} {'sim Hz':>6s} {'steps/s':>8s} {'ms/step':>8s} {'make s':>7s} {'reset ms':>8s}"
    )
    for r in rows:
        cam = size[r["camera"]] if r["obs"] == "rgb" else "-"
        print(f"{r['robot']:14s} {r['obs']:6s} {cam:8s} {r['sim_freq']:6d} {r['steps_per_s']:8.1f} "
              f"{1000 / r['steps_per_s']:8.1f} {r['make_s']:7.1f} {r['reset_ms']:8.1f}")  # fmt: skip
    state = rows[0]["steps_per_s"]
    print(f"physics at 500 Hz vs 100 Hz: {rows[1]['steps_per_s'] / state:.2f}x the step rate")
    for cam in cams:
        lo = next(
            r for r in rows if r["camera"] == cam and r["robot"] == "panda_lowpoly" and r["obs"] == "rgb"
        )
        st = next(r for r in rows if r["camera"] == cam and r["robot"] == "panda_stock")
        share = 1 - lo["steps_per_s"] / state
        print(
            f"{size[cam]}: low-poly / stock = {lo['steps_per_s'] / st['steps_per_s']:.2f}x; "
            f"render+compose share of a low-poly step = {share:.0%}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
