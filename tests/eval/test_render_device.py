"""The render device: chosen (GPU with a Vulkan driver, else lavapipe with one line saying so), overridable with
--render-device, refused when malformed before anything starts, and recorded in run.json and the report."""

from __future__ import annotations

import io
import json
import os

import pytest

from vla_gen_bench.envs import render_device as rd
from vla_gen_bench.eval.evaluate import EvalConfigError, Evaluate, evaluate
from vla_gen_bench.eval.records import RunInfo

LLVMPIPE = "llvmpipe (LLVM 15.0.6, 256 bits)"
SUMMARY_GPU = f"""GPU: NVIDIA H100 80GB HBM3
  Supported: 1
  Present:   0
  cudaId:    0
  rayTrace:  1
  cudaMode   1
GPU: {LLVMPIPE}
  Supported: 1
  Present:   0
  cudaId:    -1
  rayTrace:  1
  cudaMode   -1
"""
SUMMARY_CPU = SUMMARY_GPU.split("GPU: llvmpipe")[0].replace("Supported: 1", "Supported: 0") + (
    "GPU: llvmpipe" + SUMMARY_GPU.split("GPU: llvmpipe")[1]
)


class FakeDevice:
    """sapien.Device as SAPIEN builds it from a summary: cuda:0 is the H100, which renders only with Vulkan."""

    def __init__(self, alias, vulkan: bool):
        if alias not in ("cuda", "cuda:0"):
            raise RuntimeError(f'failed to find device "{alias}"')
        self.name, self.cuda_id, self.vulkan = "NVIDIA H100 80GB HBM3", 0, vulkan

    def can_render(self):
        return self.vulkan


def fake_machine(monkeypatch, vulkan_gpu: bool) -> None:
    import sapien
    import sapien.render

    summary = SUMMARY_GPU if vulkan_gpu else SUMMARY_CPU
    monkeypatch.setattr(sapien.render, "get_device_summary", lambda: summary)
    monkeypatch.setattr(sapien, "Device", lambda alias: FakeDevice(alias, vulkan_gpu))


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_well_formed_values_pass(value):
    rd.check_render_device(value)


@pytest.mark.parametrize(
    "value, says",
    [("gpu", "did you mean 'cuda'"), ("lavapipe", "did you mean 'cpu'"), ("pci:0000:1b:00.0", "CUDA index"),
     ("cuda:x", "auto | cpu | cuda | cuda:<i>"), ("", "auto | cpu | cuda | cuda:<i>")],
)  # fmt: skip
def test_malformed_values_are_refused_in_one_line(value, says):
    with pytest.raises(rd.RenderDeviceError, match="--render-device") as e:
        rd.check_render_device(value)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_summary_is_parsed_and_sapien_best_device_is_the_gpu(monkeypatch):
    import sapien.render

    monkeypatch.setattr(sapien.render, "get_device_summary", lambda: SUMMARY_GPU)
    devices = rd.vulkan_devices()
    assert [(d["name"], d["render"], d["cuda_id"]) for d in devices] == [
        ("NVIDIA H100 80GB HBM3", True, 0), (LLVMPIPE, True, -1)
    ]  # fmt: skip
    assert rd.best_render_device(devices)["name"] == "NVIDIA H100 80GB HBM3"
    assert rd.best_render_device(devices[1:])["name"] == LLVMPIPE
    assert rd.is_cpu_rasteriser(LLVMPIPE) and not rd.is_cpu_rasteriser("NVIDIA H100 80GB HBM3")


def test_auto_takes_the_gpu_when_it_has_a_vulkan_driver(monkeypatch):
    fake_machine(monkeypatch, vulkan_gpu=True)
    dev = rd.resolve_render_device("auto")
    assert (dev.backend, dev.name, dev.cpu_rasteriser) == ("cuda:0", "NVIDIA H100 80GB HBM3", False)
    assert dev.note is None
    assert rd.resolve_render_device("cuda:0").backend == "cuda:0"
    # lavapipe cannot be chosen in a process whose Vulkan already shows the GPU: said, not silently the GPU
    with pytest.raises(rd.RenderDeviceError, match="new process"):
        rd.resolve_render_device("cpu")


def test_auto_falls_back_to_lavapipe_naming_the_missing_vulkan_driver(monkeypatch):
    fake_machine(monkeypatch, vulkan_gpu=False)
    dev = rd.resolve_render_device("auto")
    assert (dev.backend, dev.name, dev.cpu_rasteriser) == ("cpu", LLVMPIPE, True)
    assert "lavapipe" in dev.note and "has no Vulkan driver" in dev.note and "\n" not in dev.note
    assert rd.resolve_render_device("cpu").note is None
    # asked for explicitly: refused rather than silently lavapipe
    with pytest.raises(rd.RenderDeviceError, match="has no Vulkan driver"):
        rd.resolve_render_device("cuda")
    with pytest.raises(rd.RenderDeviceError, match="no CUDA device 'cuda:1'"):
        rd.resolve_render_device("cuda:1")


def test_cpu_shows_the_vulkan_loader_only_lavapipe_while_vulkan_starts(monkeypatch):
    import glob

    lvp = sorted(p for pattern in rd.LAVAPIPE_ICDS for p in glob.glob(pattern))
    if not lvp:
        pytest.skip("no lavapipe driver file on this machine")
    monkeypatch.setenv("VK_DRIVER_FILES", "/usr/share/vulkan/icd.d/nvidia_icd.json")
    monkeypatch.delenv("VK_ICD_FILENAMES", raising=False)
    with rd.vulkan_drivers("cpu"):
        assert os.environ["VK_DRIVER_FILES"] == os.environ["VK_ICD_FILENAMES"] == lvp[0]
    assert os.environ["VK_DRIVER_FILES"] == "/usr/share/vulkan/icd.d/nvidia_icd.json"
    assert "VK_ICD_FILENAMES" not in os.environ
    with rd.vulkan_drivers("auto"):  # the user's drivers otherwise
        assert os.environ["VK_DRIVER_FILES"] == "/usr/share/vulkan/icd.d/nvidia_icd.json"


def test_run_json_render_device_round_trips_and_old_runs_read_without_it():
    from tests.eval.conftest import VARIANTS

    base = {"policy": "scripted", "policy_id": "p" * 16, "suite": "ind", "suite_hash": "s", "catalog_hash": "c",
            "asset_pack_hash": "a", "control": "ind", "variants": {"ind": VARIANTS["ind"]}, "seeds": [0],
            "episodes_per_seed": 1, "versions": {}, "created": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    assert RunInfo.from_dict(base, "old").render_device is None
    dev = {"requested": "auto", "name": LLVMPIPE, "cpu_rasteriser": True, "backend": "cpu"}
    d = {**base, "render_device": dev}
    assert RunInfo.from_dict(d, "new").to_dict() == d
    with pytest.raises(Exception, match="render_device"):
        RunInfo.from_dict({**base, "render_device": "llvmpipe"}, "bad")


def test_malformed_render_device_is_refused_before_any_env_or_folder(tmp_path, monkeypatch):
    import vla_gen_bench.envs as envs

    monkeypatch.setattr(envs, "make_env", lambda **kw: pytest.fail("an env was made"))
    out = tmp_path / "run"
    with pytest.raises(EvalConfigError, match="--render-device 'gpu' is not one of"):
        evaluate(Evaluate(policy="scripted", out=out, suite="ind", episodes=1, render_device="gpu"))
    assert not out.exists()


@pytest.mark.sim
def test_auto_renders_with_lavapipe_here_says_so_once_and_records_it(tmp_path):
    from rich.console import Console

    if not rd.resolve_render_device("auto").cpu_rasteriser:
        pytest.skip("this machine has a GPU Vulkan device: the fallback path is not taken")
    text = io.StringIO()
    out = tmp_path / "run"
    evaluate(Evaluate(policy="scripted", out=out, suite="ind", episodes=1, videos=0, check=False),
             console=Console(file=text, width=400))  # fmt: skip
    said = [line for line in text.getvalue().splitlines() if line.startswith("render device:")]
    assert len(said) == 1 and "lavapipe on the CPU (llvmpipe" in said[0], text.getvalue()
    run = json.loads((out / "run.json").read_text())
    assert run["render_device"]["requested"] == "auto" and run["render_device"]["cpu_rasteriser"] is True
    assert run["render_device"]["name"].startswith("llvmpipe") and run["render_device"]["backend"] == "cpu"
    assert run["config"]["render_device"] == "auto"
    row = next(line for line in (out / "report.md").read_text().splitlines() if "render device" in line)
    assert "llvmpipe" in row and "CPU rasteriser" in row

    # --render-device cpu: the same device, asked for, so nothing to say
    text = io.StringIO()
    evaluate(Evaluate(policy="scripted", out=tmp_path / "cpu", suite="ind", episodes=1, videos=0, check=False,
                      report=False, render_device="cpu"), console=Console(file=text, width=400))  # fmt: skip
    assert "render device:" not in text.getvalue()
    cpu = json.loads((tmp_path / "cpu" / "run.json").read_text())["render_device"]
    assert cpu == {**run["render_device"], "requested": "cpu"}
