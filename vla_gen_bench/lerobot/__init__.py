"""LeRobot in and out: export vgb demonstrations as a LeRobotDataset, evaluate LeRobot policies.

``lerobot`` (0.4.4) pins torch < 2.11, so it lives in its own environment, ``.venv-lerobot`` at the repository root
(``scripts/setup_lerobot.sh``, ``make lerobot`` or ``vgb setup lerobot``). Nothing here imports lerobot: the vgb side
runs two small scripts of this folder with that environment's Python, ``export_worker.py`` (``vgb export lerobot``)
and ``server.py`` (the policy server behind ``--policy lerobot:<checkpoint dir>``), each importing only lerobot,
torch, numpy and (the server) websockets + msgpack.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_lerobot.sh"
FPS = 5
"""Frames per second of an export: vgb's control rate (``envs.put_on_receptacle.CONTROL_FREQ``)."""


class LerobotEnvError(RuntimeError):
    """The LeRobot environment is missing or broken; the message says how to create it."""


def venv_dir() -> Path:
    """Where the LeRobot environment lives: ``$VGB_LEROBOT_VENV``, else ``.venv-lerobot`` at the repository root."""
    return Path(os.environ.get("VGB_LEROBOT_VENV") or REPO_ROOT / ".venv-lerobot").expanduser()


def setup_hint() -> str:
    if SETUP_SCRIPT.is_file():
        return "create it with 'vgb setup lerobot' (or 'make lerobot'; about 8 GB, 10-20 minutes)"
    return (f"create it with: python3.11 -m venv {venv_dir()} && {venv_dir()}/bin/pip install lerobot==0.4.4 "
            "websockets msgpack (or set VGB_LEROBOT_VENV to an environment that has them)")  # fmt: skip


def lerobot_python() -> Path:
    """The LeRobot environment's Python.

    Raises:
        LerobotEnvError: the environment does not exist (the message says how to create it).
    """
    py = venv_dir() / "bin" / "python"
    if not py.is_file():
        raise LerobotEnvError(f"the LeRobot environment {venv_dir()} does not exist; {setup_hint()}")
    return py


def worker_env() -> dict[str, str]:
    """Environment for the LeRobot scripts: offline hub, one thread per process unless told otherwise."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PYTHONPATH", None)  # vgb's own packages must not shadow the LeRobot environment's
    return env


def run_setup(check: bool = False) -> int:
    """Run ``scripts/setup_lerobot.sh`` (idempotent); returns its exit code."""
    if not SETUP_SCRIPT.is_file():
        raise LerobotEnvError(f"{SETUP_SCRIPT} is not here (vgb installed from a wheel?); {setup_hint()}")
    return subprocess.call(["bash", str(SETUP_SCRIPT), *(["--check"] if check else [])], cwd=REPO_ROOT)
