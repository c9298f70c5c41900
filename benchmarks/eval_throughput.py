"""Evaluation throughput: a model per simulator worker vs one batched policy process, side by side in one run.

For each worker count in ``--workers`` and each mode in ``--modes`` it runs ``vgb evaluate`` (the real command path:
``evaluate()`` with ``--policy-server off`` or ``on``) of an OpenVLA checkpoint on the ``ind`` variant, with
``--episodes-per-worker`` episodes per worker, and reads from the run's ``run.json``:

* episodes/min over the scoring phase (set-up excluded: each worker's render-pipeline compile and model load are
  reported separately as ``setup_s``), and actions/s (80 per episode);
* the batch-size histogram of the policy process;
* on CUDA: GPU utilisation (mean while scoring) and peak GPU memory used, sampled with NVML every 0.5 s.

The ratio printed is ``server / per-worker`` at the same worker count, measured in the same run. Defaults fit this
2-core CPU machine (tiny preset, ``fast`` 128² camera)::

    .venv/bin/python benchmarks/eval_throughput.py                       # tiny, 1 and 2 workers, both modes
    python3 benchmarks/eval_throughput.py --preset openvla-7b --workers 16 --modes server --camera default \
        --episodes-per-worker 3 --out eval_7b.json                       # a GPU machine

``--checkpoint`` reuses a checkpoint folder (else a random-init one of ``--preset`` is written to a temp folder;
``openvla-7b`` is initialised on the GPU). Sampling is off (greedy), as for a reproducible throughput figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class GpuSampler:
    """Samples GPU utilisation and memory with NVML in a thread (no-op without an NVIDIA GPU)."""

    def __init__(self, period_s: float = 0.5):
        self.util: list[int] = []
        self.mem: list[float] = []
        self.period_s = period_s
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVIDIA driver: nothing to sample
            self.nvml = None

    def __enter__(self):
        if self.nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.util.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
            self.mem.append(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**30)

    def __exit__(self, *exc):
        self._stop.set()

    def summary(self) -> dict:
        if not self.util:
            return {}
        return {"gpu_util_mean_pct": round(sum(self.util) / len(self.util), 1), "gpu_util_max_pct": max(self.util),
                "gpu_mem_peak_gib": round(max(self.mem), 2)}  # fmt: skip


def checkpoint(preset: str, given: Path | None, tmp: Path) -> Path:
    if given is not None:
        return given
    from vla_gen_bench.models.checkpoint import init_checkpoint

    t0 = time.perf_counter()
    device = "auto" if preset != "tiny" else "cpu"
    path = init_checkpoint(preset, tmp / preset, seed=0, device=device)
    print(f"wrote a random-init {preset} checkpoint in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def run_one(ckpt: Path, workers: int, mode: str, args, tmp: Path) -> dict:
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate

    out = tmp / f"{mode}-w{workers}"
    cfg = Evaluate(policy=f"openvla:{ckpt}", out=out, suite="ind", episodes=workers * args.episodes_per_worker,
                   workers=workers, camera=args.camera, videos=0, report=False, check=False,
                   policy_server="on" if mode == "server" else "off", max_batch=args.max_batch,
                   max_wait_ms=args.max_wait_ms)  # fmt: skip
    t0 = time.perf_counter()
    with GpuSampler() as gpu:
        evaluate(cfg)
    timing = json.loads((out / "run.json").read_text())["timing"]
    row = {"mode": mode, "workers": workers, "episodes": timing["episodes"], "setup_s": timing["setup_s"],
           "run_s": timing["run_s"], "episodes_per_min": timing["episodes_per_min"],
           "actions_per_s": round(timing["episodes_per_min"] * 80 / 60, 1),
           "wall_s": round(time.perf_counter() - t0, 1), **gpu.summary()}  # fmt: skip
    if "batching" in timing:
        row["mean_batch"] = timing["batching"].get("mean_batch")
        row["batch_sizes"] = timing["batching"].get("batch_sizes")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", default="per-worker,server", help="comma-separated: per-worker, server")
    ap.add_argument("--episodes-per-worker", type=int, default=2)
    ap.add_argument("--camera", default="fast")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=None, help="default: auto (see vgb serve)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"per-worker", "server"}:
        ap.error("--modes takes per-worker and/or server")

    import torch

    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:] if argv is None else argv,
              "cpus": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "rows": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vgb-eval-bench-") as d:
        tmp = Path(d)
        ckpt = checkpoint(args.preset, args.checkpoint, tmp)
        for w in args.workers:
            for mode in modes:
                if mode == "server" and w == 1:
                    continue  # one worker: the model stays in-process (nothing to batch)
                try:
                    row = run_one(ckpt, w, mode, args, tmp)
                except Exception as e:  # noqa: BLE001 - keep what was measured, report the failure
                    row = {"mode": mode, "workers": w, "error": f"{type(e).__name__}: {e}"}
                result["rows"].append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    args.out.write_text(json.dumps(result, indent=2) + "\n")
    base = {r["workers"]: r for r in result["rows"] if r["mode"] == "per-worker" and "error" not in r}
    one = base.get(1)
    print(f"\n{'mode':>10} {'workers':>7} {'eps/min':>8} {'actions/s':>9} {'setup s':>8} {'vs per-worker':>13} "
          f"{'vs 1 worker':>11} {'mean batch':>10}")  # fmt: skip
    for r in result["rows"]:
        if "error" in r:
            print(f"{r['mode']:>10} {r['workers']:>7} failed: {r['error']}")
            continue
        same = base.get(r["workers"])
        vs = f"{r['episodes_per_min'] / same['episodes_per_min']:.2f}x" if same else "-"
        vs1 = f"{r['episodes_per_min'] / one['episodes_per_min']:.2f}x" if one else "-"
        print(f"{r['mode']:>10} {r['workers']:>7} {r['episodes_per_min']:>8.2f} {r['actions_per_s']:>9.1f} "
              f"{r['setup_s']:>8.0f} {vs:>13} {vs1:>11} {r.get('mean_batch', '-')!s:>10}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
