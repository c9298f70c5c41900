"""`pip install vla-gen-bench` works outside the repository: the wheel ships the recipes and the reference checkpoints
their `init = "bundled:<name>"` names (each still matching its card), and a tiny RL recipe's first step runs from
another folder, starting from the shipped checkpoint."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from vla_gen_bench import recipes

REPO = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 12_000_000
"""The wheel stays small: only the checkpoints a recipe starts from ship (three of ~3.4 MB compressed today)."""
RUN = dict(capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the sources, installed into a bare folder (``site``; the dependencies come
    from this venv), and the environment and working folder that use it from outside the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, src / f)
    # the package as git holds it: vla_gen_bench/checkpoints/<name> stays a link to baselines/checkpoints/<name>
    shutil.copytree(REPO / "vla_gen_bench", src / "vla_gen_bench", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for link in (REPO / "vla_gen_bench" / "checkpoints").iterdir():
        if link.is_symlink():
            target = link.resolve()
            shutil.copytree(target, src / target.relative_to(REPO))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    r = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "w"), str(src)],
                       **RUN)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp / "w").glob("vla_gen_bench-*.whl")
    site = tmp / "site"
    r = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], **RUN)
    assert r.returncode == 0, r.stderr
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return SimpleNamespace(wheel=wheel, site=site, cwd=cwd, env=env)


def _python(installed, code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` with the installed package, from outside the repository."""
    return subprocess.run([sys.executable, "-c", code], cwd=installed.cwd, env=env or installed.env, **RUN)


def test_wheel_ships_the_recipes_and_only_the_bundled_checkpoints(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    shipped = {n.split("/")[2] for n in names if n.startswith("vla_gen_bench/checkpoints/")}
    assert shipped == set(recipes.bundled()) == {"sft-tiny-v12", "ppo-tiny-v12", "sft-tiny"}
    for name in shipped:  # every file of the folder in git, card included
        want = {p.name for p in (REPO / "baselines" / "checkpoints" / name).iterdir()}
        assert {
            n.rsplit("/", 1)[1] for n in names if n.startswith(f"vla_gen_bench/checkpoints/{name}/")
        } == want
    assert installed.wheel.stat().st_size <= MAX_WHEEL_BYTES, "the wheel grew: ship fewer checkpoints"

    r = subprocess.run([sys.executable, "-m", "vla_gen_bench.cli", "train-baseline", "sft", "--help"],
                       cwd=installed.cwd, env=installed.env, **RUN)  # fmt: skip
    assert r.returncode == 0 and "--collect.episodes" in r.stdout, r.stderr
    # every recipe builds from the installed package (test_recipes.py's loader, without the repository on the path)
    (installed.cwd / "tests_probe.py").write_text(
        (REPO / "tests" / "test_recipes.py")
        .read_text()
        .split("def test_every_recipe")[0]
        .replace("from vla_gen_bench.cli import main\n", "")
    )
    code = (
        "import vla_gen_bench, tests_probe\n"
        f"assert vla_gen_bench.__file__.startswith({str(installed.site)!r}), vla_gen_bench.__file__\n"
        "print(len(tests_probe.load_every_recipe()))\n"
    )
    r = _python(
        installed, code, env={**installed.env, "PYTHONPATH": f"{installed.site}{os.pathsep}{installed.cwd}"}
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) == len(recipes.names())


def test_installed_checkpoints_resolve_by_name_and_match_their_cards(installed):
    code = (
        "import json\n"
        "from vla_gen_bench import recipes\n"
        "from vla_gen_bench.training.bundle import verify_bundle\n"
        "folders = {n: recipes.checkpoint('bundled:' + n) for n in recipes.bundled()}\n"
        "print(json.dumps({n: [str(f), verify_bundle(f)['checkpoint_sha256']] for n, f in folders.items()}))\n"
    )
    r = _python(installed, code)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    assert sorted(got) == recipes.bundled()
    for name, (folder, sha) in got.items():
        assert Path(folder) == (installed.site / "vla_gen_bench" / "checkpoints" / name).resolve()
        card = json.loads((REPO / "baselines" / "checkpoints" / name / "card.json").read_text())
        assert sha == card["checkpoint_sha256"], name


@pytest.mark.slow
@pytest.mark.sim
def test_tiny_ppo_recipe_runs_its_first_step_from_outside_the_repository(installed):
    """`vgb train-baseline ppo --preset tiny` from another folder: one iteration of one 4-step episode, started from
    the checkpoint shipped in the wheel (its path and fingerprint in the log, its name in config.json)."""
    out = installed.cwd / "ppo"
    cmd = ["train-baseline", "ppo", "--preset", "tiny", "--iterations", "1", "--episodes-per-iter", "1",
           "--rollout.horizon", "4", "--rollout.workers", "0", "--minibatch-size", "1", "--grad-accum", "1",
           "--eval.no-at-end", "--out", str(out)]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "vla_gen_bench.cli", *cmd], cwd=installed.cwd, env=installed.env,
                       **{**RUN, "timeout": 600})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["init"] == "bundled:sft-tiny-v12" and config["rollout"]["horizon"] == 4
    folder = (installed.site / "vla_gen_bench" / "checkpoints" / "sft-tiny-v12").resolve()
    sha = json.loads((REPO / "baselines" / "checkpoints" / "sft-tiny-v12" / "card.json").read_text())
    assert (
        f"model.init bundled:sft-tiny-v12: {folder} (checkpoint_sha256 {sha['checkpoint_sha256']})"
        in r.stderr
    )
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [(r["iteration"], r["env_steps"]) for r in rows] == [("1", "4")]
    assert (out / "policy" / "config.json").is_file() and (out / "state.pt").is_file()
