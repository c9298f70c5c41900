"""Vectorised simulation throughput: ``VgbPutOnReceptacle-v1`` with N parallel envs, side by side in one run.

``num_envs = 1`` is the CPU PhysX path every evaluation on a CPU machine uses (rendering still on whatever Vulkan
device there is); ``num_envs > 1`` is ManiSkill's GPU simulator (PhysX CUDA) with batched rendering, the path
``vgb evaluate --num-envs N`` takes on a GPU machine. For each N it builds the env at the given camera, resets,
and times ``--steps`` steps of random 7-D actions (RGB observations rendered every step, as a policy needs them).
It prints env-steps/s (N x steps / wall time), the speed-up over N = 1, reset time and peak GPU memory.

    python benchmarks/gpu_sim_throughput.py [--num-envs 1 16 64 256] [--camera fast] [--steps 60] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def bench(num_envs: int, camera: str, steps: int) -> dict:
    import numpy as np
    import torch

    from vla_gen_bench.envs import make_env

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    env = make_env(camera=camera, num_envs=num_envs)
    make_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=list(range(num_envs)) if num_envs > 1 else 0)
    reset_s = time.perf_counter() - t0
    rgb = obs["sensor_data"]["policy_camera"]["rgb"]
    rng = np.random.default_rng(0)
    scale = np.array([0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 1.0], np.float32)

    def actions():
        a = rng.uniform(-1, 1, (num_envs, 7)).astype(np.float32) * scale
        return a[0] if num_envs == 1 else torch.as_tensor(a, device=env.unwrapped.device)

    for _ in range(3):  # warm-up (first render / kernel launches)
        env.step(actions())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(actions())
        _ = obs["sensor_data"]["policy_camera"]["rgb"]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    out = {
        "num_envs": num_envs,
        "camera": camera,
        "image": list(rgb.shape[1:]),
        "sim_backend": str(getattr(env.unwrapped, "backend", None) and env.unwrapped.backend.sim_backend),
        "make_s": round(make_s, 2),
        "reset_s": round(reset_s, 3),
        "steps": steps,
        "wall_s": round(wall, 3),
        "env_steps_per_s": round(num_envs * steps / wall, 1),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if torch.cuda.is_available()
        else None,
    }
    env.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--camera", default="fast")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}  # fmt: skip
    rows = []
    for n in args.num_envs:
        try:
            rows.append(bench(n, args.camera, args.steps))
        except Exception as e:  # keep what was measured; say what failed
            rows.append({"num_envs": n, "error": f"{type(e).__name__}: {e}"})
        print(json.dumps(rows[-1]), flush=True)
    base = next((r["env_steps_per_s"] for r in rows if r.get("num_envs") == 1 and "error" not in r), None)
    print(f"{'num_envs':>8} {'env-steps/s':>12} {'vs 1 env':>9} {'reset s':>8} {'peak GiB':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['num_envs']:>8} failed: {r['error']}")
            continue
        ratio = f"{r['env_steps_per_s'] / base:.1f}x" if base else "-"
        print(
            f"{r['num_envs']:>8} {r['env_steps_per_s']:>12} {ratio:>9} {r['reset_s']:>8} {r['peak_gpu_gib']!s:>9}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"info": info, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
