"""benchmarks/rl4vla_side_by_side.py without RL4VLA's fork: each missing input is refused in one line (status 2)
before anything is simulated, and the comparison's arithmetic (identical pixels, where they differ, pose differences,
grid agreement) on hand-made arrays."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sbs():
    spec = importlib.util.spec_from_file_location(
        "rl4vla_side_by_side", ROOT / "benchmarks" / "rl4vla_side_by_side.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _refusal(sbs, capsys, argv: list[str]) -> str:
    assert sbs.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err  # one line
    return err


def test_missing_python_is_refused(sbs, capsys):
    err = _refusal(sbs, capsys, [])
    assert err.startswith("rl4vla_side_by_side: missing --rl4vla-python")


def test_python_that_is_not_a_file_is_refused(sbs, capsys, tmp_path):
    err = _refusal(sbs, capsys, ["--rl4vla-python", str(tmp_path / "nope"), "--rl4vla-root", str(tmp_path)])
    assert f"--rl4vla-python {tmp_path / 'nope'} is not an executable file" in err


def test_missing_root_and_a_folder_that_is_no_clone_are_refused(sbs, capsys, tmp_path):
    assert "missing --rl4vla-root" in _refusal(sbs, capsys, ["--rl4vla-python", sys.executable])
    err = _refusal(sbs, capsys, ["--rl4vla-python", sys.executable, "--rl4vla-root", str(tmp_path)])
    assert (
        f"--rl4vla-root {tmp_path} is not an RL4VLA clone" in err
        and "put_on_in_scene_multi.py is missing" in err
    )


def test_a_python_without_the_fork_is_refused(sbs, capsys, tmp_path):
    """vgb's own Python imports the ManiSkill release, not the fork in the clone: named, with the install line."""
    fork_file = tmp_path / sbs.FORK_ENV_FILE
    fork_file.parent.mkdir(parents=True)
    fork_file.write_text("")
    err = _refusal(sbs, capsys, ["--rl4vla-python", sys.executable, "--rl4vla-root", str(tmp_path)])
    assert "imports mani_skill from" in err and "not RL4VLA's fork at" in err
    assert f"pip install -e {tmp_path / 'ManiSkill'} --no-deps" in err


def test_frame_offset_moves_our_base_onto_rl4vlas(sbs):
    assert sbs.frame_offset() == pytest.approx((-0.06, 0.0, 0.869532))


def test_pose_differences(sbs):
    yaw = lambda a: [math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)]  # noqa: E731
    mm, deg = sbs.pose_diff([0.0, 0.0, 0.0, *yaw(0.1)], [0.003, 0.004, 0.0, *yaw(0.1 + math.radians(5))])
    assert mm == pytest.approx(5.0) and deg == pytest.approx(5.0)
    assert sbs.angle_deg([1, 0, 0, 0], [-1, 0, 0, 0]) == pytest.approx(
        0.0, abs=1e-6
    )  # q and -q: one rotation
    tilt = [math.cos(math.radians(2)), math.sin(math.radians(2)), 0.0, 0.0]  # 4 deg about x
    assert sbs._tilt([0, 0, 0, *tilt]) == pytest.approx(4.0)


def test_compare_counts_identical_pixels_and_where_they_differ(sbs):
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0] = 9  # background pixel, shading
    b[1, :2, 1] = 3  # two object pixels vs robot on the other side
    la = np.zeros((4, 5), dtype=np.uint8)
    lb = la.copy()
    la[1, :2], lb[1, :2] = 2, 1
    pose = [0.0, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0]
    moved = [0.001, 0.0, 0.9, 1.0, 0.0, 0.0, 0.0]
    grid = lambda ok: [{"dx": -0.065, "dy": 0.0, "success": ok, "object_pose": pose, "plate_pose": pose}]  # noqa: E731
    vgb = [
        {
            "name": "ind/0/0",
            "object_pose": pose,
            "plate_pose": pose,
            "success_at_reset": False,
            "grid": grid(False),
        }
    ]
    rl = [{"name": "ind/0/0", "object_pose": moved, "plate_pose": pose, "success_at_reset": False, "grid": grid(True),
           "carrot": "001_carrot_simpler", "overlay": 0}]  # fmt: skip
    cmp = sbs.compare(vgb, rl, [a], [b], [la], [lb])
    e = cmp["episodes"][0]
    assert e["identical_pixels"] == pytest.approx(17 / 20)
    assert e["differing_pixels_vgb_rl4vla_labels"] == {"background / background": 1, "object / robot": 2}
    assert e["object_mm"] == pytest.approx(1.0) and e["plate_mm"] == 0.0
    assert cmp["grid"] == [{"episode": "ind/0/0", "dx": -0.065, "dy": 0.0, "vgb": False, "rl4vla": True,
                            "agree": False, "object_mm": 0.0, "object_deg": 0.0,
                            "origin_xy_mm": {"vgb": 0.0, "rl4vla": 0.0}}]  # fmt: skip
    s = sbs.summary(cmp)
    assert (s["grid_agree"], s["grid_poses"], s["identical_pixels_min"]) == (0, 1, pytest.approx(0.85))
    assert "0/1" in sbs.readme({"summary": s, "comparison": cmp, "created": "2026-12-07T00:00:00+00:00",
                                "rl4vla": {"mani_skill": "x", "sapien": "y", "arena": "z"},
                                "variants": ["ind"], "seed": 0})  # fmt: skip
