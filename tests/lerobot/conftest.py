"""The LeRobot bridge's tests. Those marked ``lerobot`` need LeRobot's own environment (.venv-lerobot, ~8 GB, ~10
minutes to create): ``make test-lerobot`` creates it and runs them; without it they are skipped, saying so."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vla_gen_bench.lerobot import lerobot_python, venv_dir, worker_env

HERE = Path(__file__).resolve().parent
SKIP_REASON = (f"LeRobot's environment {venv_dir()} is absent: 'make test-lerobot' creates it (~8 GB, ~10 min) and "
               "runs these tests")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    if (venv_dir() / "bin" / "python").is_file():
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "lerobot" in item.keywords:
            item.add_marker(skip)


def lerobot_side(*args: str, timeout: float = 600) -> str:
    """Run tests/lerobot/lerobot_side.py in the LeRobot environment; its stdout (last line: JSON)."""
    r = subprocess.run([str(lerobot_python()), str(HERE / "lerobot_side.py"), *args], capture_output=True,
                       text=True, env=worker_env(), timeout=timeout)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


def smooth_frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """(t, h, w, 3) uint8 frames a video codec keeps well: a colour gradient with a bright square that moves."""
    rng = np.random.default_rng(seed)
    base = np.zeros((h, w, 3), np.float32)
    base[..., 0] = np.linspace(40, 200, w)[None, :]
    base[..., 1] = np.linspace(200, 60, h)[:, None]
    base[..., 2] = rng.uniform(60, 160)
    frames = np.repeat(base[None], t, 0)
    for i in range(t):
        y, x = (4 + 3 * i) % (h - 12), (6 + 5 * i) % (w - 12)
        frames[i, y : y + 12, x : x + 12] = 250
    return frames.round().astype(np.uint8)


@pytest.fixture(scope="session")
def demos(tmp_path_factory) -> Path:
    """A small vgb demonstrations folder written with vgb's own writers (two episodes, 64x64 frames)."""
    from vla_gen_bench.training.demos import DemoConfig, save_episode, write_card

    root = tmp_path_factory.mktemp("demos") / "demos_tiny"
    rng = np.random.default_rng(0)
    for k, (t, instr) in enumerate(
        [(9, "put the red cube on the plate"), (7, "put the green ball in the bowl")]
    ):
        actions = rng.uniform(-0.05, 0.05, (t, 7)).astype(np.float32)
        actions[:, 6] = np.where(np.arange(t) < t // 2, 1.0, -1.0)
        success = np.zeros(t, bool)
        success[-3:] = True
        save_episode(root / "episodes", f"s1000_e{k:06d}", images=smooth_frames(t, 64, 64, k), actions=actions,
                     executed=actions, states=rng.normal(size=(t, 16)).astype(np.float32),
                     rewards=np.zeros(t, np.float32), success=success, keep=np.ones(t, bool), instruction=instr,
                     variant="ind", seed=1000, episode=k, spec="{}")  # fmt: skip
    write_card(root, DemoConfig(episodes=2, out=root, camera="fast"))
    return root


@pytest.fixture(scope="session")
def exported(demos, tmp_path_factory) -> Path:
    """``demos`` exported by ``vgb export lerobot`` (every step)."""
    from vla_gen_bench.cli import main

    out = tmp_path_factory.mktemp("export") / "ds"
    assert main(["export", "lerobot", str(demos), "--out", str(out), "--steps", "all"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_act(exported, tmp_path_factory) -> Path:
    """A tiny randomly initialised ACT (no pretrained backbone) with the export's features and statistics."""
    out = tmp_path_factory.mktemp("ckpt") / "act"
    json.loads(lerobot_side("make-act", str(exported), "vgb/demos_tiny", str(out)))
    return out
