"""Evaluation throughput: workers x render device x policy path, each configuration a real ``vgb evaluate`` run.

For each worker count in ``--workers``, each render device in ``--render-devices`` (``gpu`` = the GPU's Vulkan
device, ``--render-device cuda``; ``lavapipe`` = Mesa's CPU rasteriser, ``--render-device cpu``; or any
``--render-device`` value) and each mode in ``--modes`` (``per-worker``: a model copy in each worker; ``server``:
one batched policy process) it runs ``evaluate()`` of an OpenVLA checkpoint on the ``ind`` variant with
``--episodes-per-worker`` episodes per worker, in a fresh process (SAPIEN picks its Vulkan device once per
process), and reads from the run's ``run.json``:

* episodes/min over the scoring phase (set-up excluded: each worker's render-pipeline compile and model load are
  ``setup_s``), actions/s (80 per episode), and the render device actually used (name, CPU rasteriser or not);
* the policy process's mean batch;
* GPU utilisation (NVML) and CPU utilisation (all cores, ``/proc/stat``), sampled every 0.5 s and averaged over
  the scoring phase (the last ``run_s`` seconds of the run), with peak GPU memory;
* the extrapolated time of the paper's protocol (3,072 episodes): set-up + 3,072 / (episodes/min).

The defaults depend on the machine: with CUDA the table of the 7B on one GPU (OpenVLA-7B random init in bf16,
8 / 16 / 24 / 32 workers x gpu / lavapipe, one policy process, 224² camera, 3 episodes per worker); without, the
CPU figures (tiny preset, 1 and 2 workers, lavapipe, both modes, 128² camera)::

    python3 benchmarks/eval_throughput.py --out eval_7b.json          # a GPU machine with 16+ cores
    .venv/bin/python benchmarks/eval_throughput.py                    # this CPU (make bench)
    .venv/bin/python benchmarks/eval_throughput.py --dry-run          # one tiny run: 1 worker, lavapipe, 1 episode

``--checkpoint`` reuses a checkpoint folder (else a random-init one of ``--preset`` is written to a temp folder;
``openvla-7b`` is initialised on the GPU, bf16). Sampling is off (greedy), as for a reproducible throughput figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_EPISODES = 3072  # the paper's protocol: 16 variants x 3 seeds x 64 episodes
RENDER_ALIASES = {"gpu": "cuda", "lavapipe": "cpu"}


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores together, from /proc/stat (Linux)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


class Sampler:
    """Samples CPU utilisation (all cores) and, with an NVIDIA GPU, GPU utilisation and memory, in a thread."""

    def __init__(self, period_s: float = 0.5):
        self.samples: list[dict] = []  # {"t", "cpu", "gpu", "mem"}
        self.period_s = period_s
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVIDIA driver: CPU only
            self.nvml = None

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        busy0, total0 = cpu_times()
        while not self._stop.wait(self.period_s):
            busy, total = cpu_times()
            s = {"t": time.time(), "cpu": 100 * (busy - busy0) / max(total - total0, 1)}
            busy0, total0 = busy, total
            if self.nvml is not None:
                s["gpu"] = self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
                s["mem"] = self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**30
            self.samples.append(s)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self, since: float, until: float) -> dict:
        """Means over the samples taken between ``since`` and ``until`` (time.time()), peak GPU memory over the
        whole run."""
        window = [s for s in self.samples if since <= s["t"] <= until] or self.samples[-1:]

        def mean(k: str) -> float | None:
            return round(sum(s[k] for s in window) / len(window), 1) if window and k in window[0] else None

        mem = [s["mem"] for s in self.samples if "mem" in s]
        return {"cpu_util_mean_pct": mean("cpu"), "gpu_util_mean_pct": mean("gpu"),
                "gpu_mem_peak_gib": round(max(mem), 2) if mem else None}  # fmt: skip


def checkpoint(preset: str, given: Path | None, tmp: Path) -> Path:
    if given is not None:
        return given
    from vla_gen_bench.models.checkpoint import init_checkpoint

    t0 = time.perf_counter()
    device = "auto" if preset != "tiny" else "cpu"
    path = init_checkpoint(preset, tmp / preset, seed=0, device=device)
    print(f"wrote a random-init {preset} checkpoint in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def child(spec: str) -> int:
    """One configuration, in this (fresh) process: ``evaluate()`` with the Evaluate fields in ``spec`` (JSON)."""
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate

    kw = json.loads(spec)
    evaluate(Evaluate(**{**kw, "out": Path(kw["out"])}))
    return 0


def run_one(ckpt: Path, workers: int, render: str, mode: str, args, tmp: Path) -> dict:
    out = tmp / f"{mode}-{render}-w{workers}"
    kw = {"policy": f"openvla:{ckpt}", "out": str(out), "suite": "ind", "episodes": workers * args.episodes_per_worker,
          "workers": workers, "camera": args.camera, "videos": 0, "report": False, "check": False,
          "policy_server": "on" if mode == "server" else "off", "max_batch": args.max_batch,
          "max_wait_ms": args.max_wait_ms, "render_device": RENDER_ALIASES.get(render, render)}  # fmt: skip
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    t0 = time.perf_counter()
    with Sampler() as sampler, open(tmp / f"{out.name}.log", "w") as log:
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(kw)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, timeout=args.timeout_s)  # fmt: skip
        t_end = time.perf_counter()
    if proc.returncode != 0:
        tail = (tmp / f"{out.name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"exit code {proc.returncode}: {' | '.join(tail)}")
    run = json.loads((out / "run.json").read_text())
    scored_until = (out / "run.json").stat().st_mtime  # the run's last write: its timing, as scoring ends
    timing, dev = run["timing"], run.get("render_device") or {}
    eps_min = timing["episodes_per_min"]
    row = {"mode": mode, "workers": workers, "render_device": render, "render_name": dev.get("name"),
           "cpu_rasteriser": dev.get("cpu_rasteriser"), "episodes": timing["episodes"], "setup_s": timing["setup_s"],
           "run_s": timing["run_s"], "episodes_per_min": eps_min, "actions_per_s": round(eps_min * 80 / 60, 1),
           "mean_batch": (timing.get("batching") or {}).get("mean_batch", 1.0 if mode == "per-worker" else None),
           "protocol_h": round((timing["setup_s"] + 60 * PROTOCOL_EPISODES / max(eps_min, 1e-9)) / 3600, 2),
           "wall_s": round(t_end - t0, 1), **sampler.summary(scored_until - timing["run_s"], scored_until)}  # fmt: skip
    if "batching" in timing:
        row["batch_sizes"] = timing["batching"].get("batch_sizes")
    return row


def table(rows: list[dict]) -> str:
    def pct(v):
        return "-" if v is None else f"{v:.0f} %"

    head = f"{'mode':>10} {'workers':>7} {'render':>28} {'eps/min':>8} {'mean batch':>10} {'GPU util':>8} " \
           f"{'CPU util':>8} {'setup s':>7} {f'{PROTOCOL_EPISODES} eps':>9}"  # fmt: skip
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['mode']:>10} {r['workers']:>7} {r['render_device']:>28} failed: {r['error']}")
            continue
        render = f"{r['render_device']}: {(r['render_name'] or '?').split(' (')[0]}"
        lines.append(f"{r['mode']:>10} {r['workers']:>7} {render:>28} {r['episodes_per_min']:>8.2f} "
                     f"{r['mean_batch'] if r['mean_batch'] is not None else '-'!s:>10} {pct(r['gpu_util_mean_pct']):>8} "
                     f"{pct(r['cpu_util_mean_pct']):>8} {r['setup_s']:>7.0f} {r['protocol_h']:>8.2f}h")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--preset", help="default: openvla-7b with CUDA, else tiny")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--workers", type=int, nargs="+", help="default: 8 16 24 32 with CUDA, else 1 2")
    ap.add_argument("--render-devices", help="comma-separated: gpu (cuda), lavapipe (cpu), or --render-device "
                    "values; default: gpu,lavapipe with CUDA, else lavapipe")  # fmt: skip
    ap.add_argument(
        "--modes", help="comma-separated: per-worker, server; default: server with CUDA, else both"
    )
    ap.add_argument("--episodes-per-worker", type=int, help="default: 3 with CUDA, else 2")
    ap.add_argument("--camera", help="default: default (224²) with CUDA, else fast (128²)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=None, help="default: auto (see vgb serve)")
    ap.add_argument("--timeout-s", type=float, default=3600, help="per configuration")
    ap.add_argument("--dry-run", action="store_true",
                    help="one tiny run here on the CPU: tiny preset, 1 worker, lavapipe, 1 episode, fast camera")  # fmt: skip
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.child is not None:
        return child(args.child)
    import torch

    cuda = torch.cuda.is_available()
    defaults = {"preset": "tiny", "workers": [1], "render_devices": "lavapipe", "modes": "per-worker",
                "episodes_per_worker": 1, "camera": "fast"}  # fmt: skip
    if not args.dry_run:  # the table on a GPU machine; the CPU figures of docs/speed.md here
        defaults = {"preset": "openvla-7b", "workers": [8, 16, 24, 32], "render_devices": "gpu,lavapipe",
                    "modes": "server", "episodes_per_worker": 3, "camera": "default"} if cuda else \
                   {"preset": "tiny", "workers": [1, 2], "render_devices": "lavapipe", "modes": "per-worker,server",
                    "episodes_per_worker": 2, "camera": "fast"}  # fmt: skip
    for k, v in defaults.items():
        if args.dry_run or getattr(args, k) is None:
            setattr(args, k, v)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or not set(modes) <= {"per-worker", "server"}:
        ap.error("--modes takes per-worker and/or server")
    renders = [r.strip() for r in args.render_devices.split(",") if r.strip()]
    from vla_gen_bench.envs.render_device import RenderDeviceError, check_render_device

    for r in renders:
        try:
            check_render_device(RENDER_ALIASES.get(r, r))
        except RenderDeviceError as e:
            ap.error(f"--render-devices {r}: {e}")

    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:] if argv is None else argv,
              "cpus": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if cuda else None,
              "protocol_episodes": PROTOCOL_EPISODES, "rows": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vgb-eval-bench-") as d:
        tmp = Path(d)
        ckpt = checkpoint(args.preset, args.checkpoint, tmp)
        for w in args.workers:
            for render in renders:
                for mode in modes:
                    if mode == "server" and w == 1:
                        continue  # one worker: the model stays in-process (nothing to batch)
                    try:
                        row = run_one(ckpt, w, render, mode, args, tmp)
                    except Exception as e:  # noqa: BLE001 - keep what was measured, report the failure
                        row = {
                            "mode": mode,
                            "workers": w,
                            "render_device": render,
                            "error": f"{type(e).__name__}: {e}",
                        }
                    result["rows"].append(row)
                    print(json.dumps(row), flush=True)
                    if args.out:
                        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + table(result["rows"]))
    if args.out:
        print(f"wrote {args.out}")
    return 1 if any("error" in r for r in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
