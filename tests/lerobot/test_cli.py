"""The LeRobot bridge's vgb side, without LeRobot's environment: spec parsing, refusals with one clear line, and
nothing of lerobot (or torch) imported by the bridge's vgb modules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vla_gen_bench.cli import main
from vla_gen_bench.lerobot import FPS, REPO_ROOT
from vla_gen_bench.policies.registry import PolicyError, PolicySpec, check_policy


@pytest.fixture
def no_venv(tmp_path, monkeypatch):
    monkeypatch.setenv("VGB_LEROBOT_VENV", str(tmp_path / "no-such-venv"))


@pytest.fixture
def fake_ckpt(tmp_path) -> Path:
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"type": "act"}))
    (d / "model.safetensors").write_bytes(b"x")
    return d


def test_spec_round_trip():
    spec = PolicySpec.parse("lerobot:runs/act/pretrained_model")
    assert (spec.kind, spec.path, str(spec)) == (
        "lerobot",
        "runs/act/pretrained_model",
        "lerobot:runs/act/pretrained_model",
    )
    with pytest.raises(PolicyError, match="needs the checkpoint folder"):
        PolicySpec.parse("lerobot:")


def test_check_policy_refusals(tmp_path, fake_ckpt, no_venv):
    with pytest.raises(PolicyError, match="does not exist"):
        check_policy(f"lerobot:{tmp_path / 'nope'}")
    (fake_ckpt / "model.safetensors").unlink()
    with pytest.raises(PolicyError, match="not a LeRobot checkpoint: no model.safetensors"):
        check_policy(f"lerobot:{fake_ckpt}")
    (fake_ckpt / "model.safetensors").write_bytes(b"x")
    (fake_ckpt / "config.json").write_text("{}")
    with pytest.raises(PolicyError, match="names no policy 'type'"):
        check_policy(f"lerobot:{fake_ckpt}")
    (fake_ckpt / "config.json").write_text(json.dumps({"type": "act"}))
    with pytest.raises(PolicyError, match="does not exist; create it with 'vgb setup lerobot'"):
        check_policy(f"lerobot:{fake_ckpt}")


def test_evaluate_without_lerobot_env_is_one_line(fake_ckpt, no_venv, tmp_path, capsys):
    assert main(["evaluate", "--policy", f"lerobot:{fake_ckpt}", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr()
    text = err.out + err.err
    assert "vgb setup lerobot" in text and "Traceback" not in text
    assert not (tmp_path / "run" / "episodes.jsonl").exists()


def test_export_refusals(tmp_path, no_venv, capsys):
    assert main(["export", "lerobot", str(tmp_path), "--out", str(tmp_path / "ds")]) == 2
    assert "is not a vgb demonstrations folder" in capsys.readouterr().err
    demos = tmp_path / "demos"
    (demos / "episodes").mkdir(parents=True)
    (demos / "dataset.json").write_text("{}")
    assert main(["export", "lerobot", str(demos), "--out", str(tmp_path / "ds")]) == 2
    assert "holds no episodes yet" in capsys.readouterr().err
    (demos / "episodes" / "s1000_e000000.npz").write_bytes(b"")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("x")
    assert main(["export", "lerobot", str(demos), "--out", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        main(["export", "lerobot", str(demos), "--out", str(tmp_path / "ds"), "--repo-id", "no slash"]) == 2
    )
    assert "is not of the form <owner>/<name>" in capsys.readouterr().err
    assert main(["export", "lerobot", str(demos), "--out", str(tmp_path / "ds")]) == 2
    assert "vgb setup lerobot" in capsys.readouterr().err


def test_setup_check_says_what_to_do(tmp_path):
    r = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup_lerobot.sh"), "--check"], capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin", "VGB_LEROBOT_VENV": str(tmp_path / "v")})  # fmt: skip
    assert r.returncode == 1
    assert "make lerobot" in r.stderr and "vgb setup lerobot" in r.stderr
    assert not (tmp_path / "v").exists()


def test_export_fps_is_the_control_rate():
    src = (REPO_ROOT / "vla_gen_bench" / "envs" / "put_on_receptacle.py").read_text()
    assert FPS == int(re.search(r"^CONTROL_FREQ = (\d+)", src, re.M).group(1))


def test_bridge_modules_import_nothing_heavy():
    code = ("import sys; import vla_gen_bench.lerobot.commands, vla_gen_bench.policies.lerobot; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('lerobot', 'torch')]; print(bad); assert not bad")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
