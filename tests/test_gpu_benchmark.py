"""The GPU benchmarks run end to end on this CPU: benchmarks/gpu_openvla.py with the micro preset, without tyro or
the simulator (the GPU machine it is written for has neither), and benchmarks/eval_throughput.py --dry-run (one
tiny real evaluation with lavapipe); each writes every measured field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# run the script with tyro / mani_skill / sapien made unimportable
RUNNER = """
import runpy, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tyro", "mani_skill", "sapien"):
            raise ImportError(f"{name} is not available on the GPU machine")

sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_gpu_benchmark_runs_on_cpu_with_the_micro_preset(tmp_path):
    out = tmp_path / "gpu_openvla.json"
    cmd = [sys.executable, "-c", RUNNER, str(ROOT / "benchmarks" / "gpu_openvla.py"), "--preset", "micro",
           "--device", "cpu", "--batches", "1", "2", "--train-batches", "2", "4", "--repeats", "2",
           "--warmup", "1", "--out", str(out)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "predict_action" in proc.stdout and "LoRA SFT step" in proc.stdout

    r = json.loads(out.read_text())
    assert r["environment"]["device"] == "cpu" and r["environment"]["torch"]
    m = r["model"]
    assert m["preset"] == "micro" and m["dtype"] == "float32"
    assert m["params"] > 0 and m["weights_gib"] > 0 and m["build_s"] > 0 and m["prefill_tokens"] > 0
    assert m["allocated_gib"] is None  # no CUDA memory on CPU

    assert [row["batch"] for row in r["inference"]["rows"]] == [1, 2]
    for row in r["inference"]["rows"]:
        assert row["latency_ms"] > 0 and row["actions_per_s"] > 0 and len(row["samples_ms"]) == 2

    sft = r["lora_sft"]
    assert sft["rank"] == 32 and sft["trainable_params"] > 0
    assert [row["batch"] for row in sft["steps"]] == [2, 4]
    for row in sft["steps"]:
        assert row["oom"] is False and row["step_ms"] > 0 and row["samples_per_s"] > 0 and row["loss"] > 0
    assert r["total_s"] > 0


@pytest.mark.sim
@pytest.mark.slow
def test_eval_throughput_dry_run_measures_one_lavapipe_configuration(tmp_path):
    out = tmp_path / "eval_throughput.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "eval_throughput.py"), "--dry-run", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3072 eps" in proc.stdout and "lavapipe: llvmpipe" in proc.stdout

    r = json.loads(out.read_text())
    assert r["protocol_episodes"] == 3072 and r["cuda"] is None
    [row] = r["rows"]
    assert (row["mode"], row["workers"], row["render_device"], row["episodes"]) == (
        "per-worker",
        1,
        "lavapipe",
        1,
    )
    # the device recorded by the run itself (run.json), not the one asked for
    assert row["render_name"].startswith("llvmpipe") and row["cpu_rasteriser"] is True
    assert row["episodes_per_min"] > 0 and row["setup_s"] > 0 and row["mean_batch"] == 1.0
    assert 0 < row["cpu_util_mean_pct"] <= 100
    assert row["gpu_util_mean_pct"] is None and row["gpu_mem_peak_gib"] is None  # no NVIDIA GPU here
    expected_h = (row["setup_s"] + 60 * 3072 / row["episodes_per_min"]) / 3600
    assert abs(row["protocol_h"] - expected_h) < 0.01
