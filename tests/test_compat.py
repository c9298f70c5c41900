"""ensure_torchvision(): real libraries import after it, and it changes nothing where torchvision imports normally.

Each case runs in a fresh interpreter, because the step acts on process-global import state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_py(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=180
    )


def fake_torchvision(tmp_path: Path, body: str) -> Path:
    pkg = tmp_path / "torchvision"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return tmp_path


def test_real_libraries_import_after_ensure_torchvision():
    r = run_py(
        """
        import json
        from vla_gen_bench._compat import ensure_torchvision
        status = ensure_torchvision()
        import torch, torchvision
        import torchvision.transforms.functional
        import timm
        from transformers import LlamaForCausalLM
        vit = timm.create_model("vit_small_patch16_224", pretrained=False, depth=1, num_classes=0)
        nms_error = None
        if status == "shimmed":
            try:
                torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)
            except RuntimeError as e:
                nms_error = str(e)
        print(json.dumps({"status": status, "again": ensure_torchvision(), "nms_error": nms_error}))
        """
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] in ("native", "shimmed")
    assert out["again"] == out["status"]
    if out["status"] == "shimmed":
        # a compiled op fails loudly with torchvision's own message instead of returning garbage
        assert "custom C++ ops" in out["nms_error"]


def test_native_torchvision_is_left_alone(tmp_path):
    path = fake_torchvision(tmp_path, "NATIVE = True\n")
    r = run_py(
        """
        import torch
        from vla_gen_bench import _compat
        status = _compat.ensure_torchvision()
        import torchvision
        assert torchvision.NATIVE
        assert _compat._library is None, "no schema may be defined when torchvision imports by itself"
        print(status)
        """,
        path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-1] == "native"


# Reproduces the CPU-machine failure on any machine: an unconditional fake-kernel registration for an op whose
# compiled library never loaded.
BROKEN = """
import torch
import torchvision.helper  # a submodule imported before the failure, as torchvision.extension is
torch.library.register_fake("torchvision::{op}")(lambda dets, scores, iou_threshold: dets.new_empty(0))
LOADED = True
"""


def test_missing_op_schema_is_defined_and_import_retried(tmp_path):
    path = fake_torchvision(tmp_path, BROKEN.format(op="nms"))
    (path / "torchvision" / "helper.py").write_text("")
    r = run_py(
        """
        import torch
        from vla_gen_bench._compat import ensure_torchvision
        try:
            import torchvision
        except RuntimeError as e:
            assert "torchvision::nms does not exist" in str(e)
        else:
            raise AssertionError("the fake torchvision should fail before the step")
        status = ensure_torchvision()
        import torchvision
        assert torchvision.LOADED
        assert torch.ops.torchvision.nms.default._schema.name == "torchvision::nms"
        print(status, ensure_torchvision())
        """,
        path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-2:] == ["shimmed", "shimmed"]


def test_unknown_missing_op_is_a_clear_error(tmp_path):
    path = fake_torchvision(tmp_path, BROKEN.format(op="frobnicate"))
    (path / "torchvision" / "helper.py").write_text("")
    r = run_py("from vla_gen_bench._compat import ensure_torchvision; ensure_torchvision()", path)
    assert r.returncode != 0
    assert "torchvision::frobnicate is missing" in r.stderr
    assert "Install a torchvision built for torch" in r.stderr


@pytest.mark.parametrize("error", ["RuntimeError('CUDA driver too old')", "ImportError('libfoo.so')"])
def test_other_import_errors_propagate(tmp_path, error):
    path = fake_torchvision(tmp_path, f"raise {error}\n")
    r = run_py("from vla_gen_bench._compat import ensure_torchvision; ensure_torchvision()", path)
    assert r.returncode != 0
    assert error.split("(")[1].strip("')") in r.stderr
