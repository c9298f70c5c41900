"""``vgb export lerobot`` and ``vgb setup lerobot``: the CLI side of the LeRobot bridge (nothing of lerobot is
imported here; the work runs in the LeRobot environment)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from vla_gen_bench.lerobot import FPS, PACKAGE_DIR, LerobotEnvError, lerobot_python, run_setup, worker_env


class ExportError(ValueError):
    """Inputs that cannot be exported (not a demonstrations folder, an existing --out, a bad repo id)."""


@dataclass(frozen=True)
class ExportLerobot:
    """Write vgb demonstrations ('vgb collect-demos') as a LeRobotDataset, through lerobot's own dataset API."""

    demos: tyro.conf.Positional[Path]
    """The demonstrations folder 'vgb collect-demos --out' wrote (dataset.json, episodes/)."""
    out: Path
    """The dataset folder to create (must not exist): meta/, data/, videos/; load it with
    LeRobotDataset(<repo-id>, root=<out>)."""
    repo_id: str | None = None
    """The dataset's repo id (default: vgb/<demos folder name>)."""
    steps: Literal["episode", "kept", "all"] = "episode"
    """Which steps: 'episode' = every step until success has held for the idle filter's success_hold steps (the
    demonstration, evenly spaced at the control rate); 'kept' = only the idle-filtered steps vgb's SFT trains on;
    'all' = every recorded step."""
    vcodec: str = "libsvtav1"
    """Video codec (lerobot's; libsvtav1 is its default and decodes with pyav on any CPU)."""
    limit: int | None = None
    """Export only the first N episodes (by name)."""
    image_size: tuple[int, int] | None = None
    """Resize the images to (height, width) (bilinear, antialiased; the LeRobot policy server resizes evaluation
    images the same way when their size differs from the checkpoint's). Default: as collected."""


def check_export(cfg: ExportLerobot) -> str:
    """The repo id, after checking the inputs (no lerobot needed).

    Raises:
        ExportError: what is wrong and what to do.
    """
    demos = Path(cfg.demos)
    if not (demos / "dataset.json").is_file() or not (demos / "episodes").is_dir():
        raise ExportError(f"{demos} is not a vgb demonstrations folder (no dataset.json and episodes/); collect one "
                          "with 'vgb collect-demos --out <folder>'")  # fmt: skip
    if not any((demos / "episodes").glob("*.npz")):
        raise ExportError(f"{demos / 'episodes'} holds no episodes yet; run 'vgb collect-demos' to fill it")
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {out} already exists; LeRobotDataset.create writes a new folder: remove it or "
                          "choose another --out")  # fmt: skip
    repo_id = cfg.repo_id or f"vgb/{demos.resolve().name}"
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
        raise ExportError(
            f"--repo-id {repo_id!r} is not of the form <owner>/<name> (letters, digits, '-', '_', '.')"
        )
    if cfg.limit is not None and cfg.limit < 1:
        raise ExportError(f"--limit must be >= 1 (got {cfg.limit})")
    if cfg.image_size is not None and min(cfg.image_size) < 16:
        raise ExportError(f"--image-size must be at least 16 16 (got {' '.join(map(str, cfg.image_size))})")
    return repo_id


def export_lerobot(cfg: ExportLerobot) -> int:
    """Handler of ``vgb export lerobot``. Returns the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, soft_wrap=True)
    try:
        repo_id = check_export(cfg)
        py = lerobot_python()
    except (ExportError, LerobotEnvError) as e:
        console.print(f"error: {e}", style="red", markup=False)
        return 2
    out = Path(cfg.out)
    if out.is_dir():
        out.rmdir()  # empty (checked): LeRobotDataset.create makes it
    n = len([p for p in (Path(cfg.demos) / "episodes").glob("*.npz") if ".tmp" not in p.name])
    n = min(n, cfg.limit) if cfg.limit else n
    cmd = [str(py), str(PACKAGE_DIR / "export_worker.py"), str(cfg.demos), "--out", str(out), "--repo-id", repo_id,
           "--fps", str(FPS), "--steps", cfg.steps, "--vcodec", cfg.vcodec]  # fmt: skip
    if cfg.limit:
        cmd += ["--limit", str(cfg.limit)]
    if cfg.image_size:
        cmd += ["--size", *map(str, cfg.image_size)]
    log_path = out.parent / f".{out.name}.export.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    cols = (TextColumn("export"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with open(log_path, "w") as log, Progress(*cols, console=console) as bar:
        task = bar.add_task("export", total=n)
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=worker_env()
        )
        last = ""
        for line in proc.stdout:
            log.write(line)
            if line.startswith("episode "):
                bar.update(task, advance=1)
            elif line.strip():
                last = line.strip()
        rc = proc.wait()
    if rc != 0:
        console.print(f"error: the export failed in the LeRobot environment (exit code {rc}): {last}; full log: "
                      f"{log_path}", style="red", markup=False)  # fmt: skip
        return 1
    log_path.unlink(missing_ok=True)
    summary = json.loads(last)
    console.print(f"{summary['episodes']} episodes, {summary['frames']} frames at {summary['fps']} fps "
                  f"({summary['image_key']} {summary['image_shape']}, steps: {summary['steps']}) in "
                  f"{summary['wall_s']} s; load with LeRobotDataset({repo_id!r}, root={str(out)!r})", markup=False)  # fmt: skip
    console.print(f"wrote {out} (meta/, data/, videos/)", markup=False)
    print(out)
    return 0


@dataclass(frozen=True)
class SetupLerobot:
    """Create (or check) LeRobot's own environment, .venv-lerobot (pinned; ~8 GB, ~10 minutes the first time)."""

    check: bool = False
    """Only say whether it is there and current (exit 1 if not); install nothing."""


def setup_lerobot(cfg: SetupLerobot) -> int:
    """Handler of ``vgb setup lerobot``. Returns the exit code."""
    try:
        return run_setup(check=cfg.check)
    except LerobotEnvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
