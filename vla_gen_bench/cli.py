"""``vgb``: the command line. Parsing and dispatch only; the work happens in the package's rooms.

    vgb assets build [--force]          materialise + verify the built-in procedural asset pack
    vgb assets list [--kind object]     every asset with its split and name
    vgb render --out sheet.png          contact sheet: first frames of several seeds, with instructions
    vgb run-episode --policy scripted --seed 0 --video out.mp4
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console

console = Console(stderr=True)


def _quiet_sim() -> None:
    # one torch thread per sim process: with 2 threads on a 2-vCPU VM small ops stall 3-10x
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    logging.getLogger("mani_skill").setLevel(logging.ERROR)


# ---------------------------------------------------------------------------- assets
@dataclass(frozen=True)
class AssetsBuild:
    """Build the procedural asset pack into the cache and verify every file against the manifest."""

    force: bool = False
    """Rebuild even if a pack is already there."""
    out: Path | None = None
    """Pack folder (default: the cache, $VGB_CACHE/assets/procedural_v1)."""


@dataclass(frozen=True)
class AssetsList:
    """List assets with id, kind, split and name."""

    kind: Literal["object", "receptacle", "table", "overlay"] | None = None
    split: Literal["train", "unseen"] | None = None


def assets_build(cfg: AssetsBuild) -> int:
    import shutil

    from vla_gen_bench.assets.store import PROCEDURAL_VERSION, AssetStore
    from vla_gen_bench.paths import cache_dir

    root = cfg.out or cache_dir() / "assets" / f"procedural_v{PROCEDURAL_VERSION}"
    if cfg.force:
        shutil.rmtree(root, ignore_errors=True)
    store = AssetStore.procedural(root)
    problems = store.verify()
    if problems:
        for p in problems:
            console.print(f"[red]{p}")
        console.print("[red]pack is corrupt; rebuild with 'vgb assets build --force'")
        return 1
    counts = {k: (len(store.ids(k, "train")), len(store.ids(k, "unseen"))) for k in ("object", "receptacle", "table", "overlay")}
    for k, (tr, un) in counts.items():
        console.print(f"{k:11s} train {tr:3d}  unseen {un:3d}")
    console.print(f"pack hash {store.pack_hash} -> {root}")
    return 0


def assets_list(cfg: AssetsList) -> int:
    from vla_gen_bench.assets.store import default_store

    store = default_store()
    kinds = [cfg.kind] if cfg.kind else ["object", "receptacle", "table", "overlay"]
    for k in kinds:
        for i in store.ids(k, cfg.split):
            e = store.entry(i)
            print(f"{e.kind:10s} {e.split:7s} {e.id:34s} {e.name}")
    return 0


# ---------------------------------------------------------------------------- simulation commands
@dataclass(frozen=True)
class Render:
    """Contact sheet of first frames (in-distribution setting, several seeds) with instruction captions."""

    out: Path = Path("sheet.png")
    seeds: int = 8
    """Number of seeds (tiles)."""
    first_seed: int = 0
    camera: Literal["default", "fast", "paper"] = "default"
    columns: int = 4


@dataclass(frozen=True)
class RunEpisode:
    """Run one episode of a policy and print its result (JSON); optionally save the policy-view video."""

    policy: str = "scripted"
    """scripted | random | zero | openvla:<dir> | ws://host:port | package.module:ClassName"""
    seed: int = 0
    video: Path | None = None
    """Write the policy's view as mp4 here."""
    camera: Literal["default", "fast", "paper"] = "default"
    robot: str = "panda"


def render(cfg: Render) -> int:
    _quiet_sim()
    import numpy as np
    from PIL import Image, ImageDraw

    from vla_gen_bench.eval.runner import make_env

    if cfg.seeds < 1 or cfg.columns < 1:
        raise SystemExit("--seeds and --columns must be >= 1")
    env = make_env(camera=cfg.camera)
    tiles = []
    for s in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        obs, _ = env.reset(seed=s)
        img = Image.fromarray(obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy())
        w, h = img.size
        tile = Image.new("RGB", (w, h + 28), (255, 255, 255))
        tile.paste(img, (0, 0))
        d = ImageDraw.Draw(tile)
        d.text((3, h + 2), f"seed {s}", fill=(90, 90, 90))
        d.text((3, h + 14), env.unwrapped.instructions[0], fill=(0, 0, 0))
        tiles.append(np.asarray(tile))
    env.close()
    cols = min(cfg.columns, len(tiles))
    rows = -(-len(tiles) // cols)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * cols - len(tiles))
    sheet = np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], 1) for r in range(rows)], 0)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(cfg.out)
    console.print(f"wrote {cfg.out} ({len(tiles)} tiles)")
    return 0


def run_episode(cfg: RunEpisode) -> int:
    _quiet_sim()
    from vla_gen_bench.eval.runner import make_env, run_episode, write_video
    from vla_gen_bench.policies.registry import resolve_policy

    policy = resolve_policy(cfg.policy)
    env = make_env(camera=cfg.camera, robot=cfg.robot)
    res = run_episode(env, policy, seed=cfg.seed, record_frames=cfg.video is not None)
    env.close()
    if cfg.video is not None:
        cfg.video.parent.mkdir(parents=True, exist_ok=True)
        write_video(res.frames, cfg.video)
        console.print(f"wrote {cfg.video} ({len(res.frames)} frames)")
    print(json.dumps({k: v for k, v in res.record().items() if k != "episode"}))
    return 0


@dataclass(frozen=True)
class RunEpisodes:
    """Run a policy on seeded in-distribution episodes; one JSONL line per finished episode (re-running resumes)."""

    out: Path
    """JSONL file; seeds already in it are skipped."""
    policy: str = "scripted"
    """scripted | random | zero | openvla:<dir> | ws://host:port | package.module:ClassName"""
    episodes: int = 10
    first_seed: int = 0
    camera: Literal["default", "fast", "paper"] = "default"
    robot: str = "panda"


@dataclass(frozen=True)
class Summarize:
    """Success rate with Wilson 95 % CI, grasp rate and failure labels for one or more episode JSONL files."""

    files: tyro.conf.Positional[tuple[Path, ...]]
    out: Path | None = None
    """Also write the table as markdown here."""


def run_episodes(cfg: RunEpisodes) -> int:
    _quiet_sim()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from vla_gen_bench.eval.runner import make_env, run_episode
    from vla_gen_bench.policies.registry import resolve_policy

    done = set()
    if cfg.out.exists():
        for n, line in enumerate(cfg.out.read_text().splitlines(), 1):
            try:
                done.add(json.loads(line)["seed"])
            except (json.JSONDecodeError, KeyError) as e:
                raise SystemExit(f"{cfg.out}:{n}: not an episode record ({e}); move the file away or fix the line") from None
    todo = [s for s in range(cfg.first_seed, cfg.first_seed + cfg.episodes) if s not in done]
    if not todo:
        console.print(f"all {cfg.episodes} episodes already in {cfg.out}")
        return 0
    policy = resolve_policy(cfg.policy)
    env = make_env(camera=cfg.camera, robot=cfg.robot)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    wins = 0
    cols = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn())
    with Progress(*cols, console=console) as bar:
        task = bar.add_task(cfg.policy, total=len(todo))
        for k, seed in enumerate(todo, 1):
            res = run_episode(env, policy, seed=seed)
            row = {"policy": cfg.policy, **res.record()}
            with cfg.out.open("a") as f:  # one line per finished episode: an interrupted run loses only this one
                f.write(json.dumps(row) + "\n")
            wins += res.success_at_end
            bar.update(task, advance=1, description=f"{cfg.policy} success {wins}/{k}")
    env.close()
    console.print(f"wrote {cfg.out}")
    return 0


def summarize(cfg: Summarize) -> int:
    from collections import Counter

    from vla_gen_bench.eval.stats import wilson_interval

    lines = ["| episodes | policy | n | success | 95 % CI (Wilson) | grasped | failures |", "|---|---|---|---|---|---|---|"]
    for path in cfg.files:
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        n = len(rows)
        k = sum(r["success_at_end"] for r in rows)
        lo, hi = wilson_interval(k, n)
        grasp = sum(r["ever_grasped"] for r in rows)
        fails = Counter(r["failure"] for r in rows if r["failure"] != "success")
        pol = ",".join(sorted({r.get("policy", "?") for r in rows}))
        lines.append(f"| {path.name} | {pol} | {n} | {k / max(n, 1):.2f} | [{lo:.2f}, {hi:.2f}] | "
                     f"{grasp / max(n, 1):.2f} | {', '.join(f'{a}: {b}' for a, b in fails.most_common()) or '-'} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    if cfg.out:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        cfg.out.write_text("# vgb demo report\n\nIn-distribution setting, seeded episodes.\n\n" + table + "\n")
        console.print(f"wrote {cfg.out}")
    return 0


# ---------------------------------------------------------------------------- dispatch
GROUPS = {
    "assets": {"build": (AssetsBuild, assets_build), "list": (AssetsList, assets_list)},
}
COMMANDS = {
    "render": (Render, render),
    "run-episode": (RunEpisode, run_episode),
    "run-episodes": (RunEpisodes, run_episodes),
    "summarize": (Summarize, summarize),
}


def _usage() -> str:
    lines = ["usage: vgb <command> [options]   (vgb <command> --help for details)", ""]
    for g, subs in GROUPS.items():
        for s, (cls, _) in subs.items():
            lines.append(f"  vgb {g} {s:12s} {cls.__doc__.splitlines()[0]}")
    for c, (cls, _) in COMMANDS.items():
        lines.append(f"  vgb {c:19s} {cls.__doc__.splitlines()[0]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    head, rest = argv[0], argv[1:]
    if head in GROUPS:
        subs = GROUPS[head]
        if not rest or rest[0] not in subs:
            if rest and rest[0] not in ("-h", "--help"):
                console.print(f"[red]unknown command 'vgb {head} {rest[0]}'; choose from: {', '.join(subs)}")
            print(_usage())
            return 0 if rest and rest[0] in ("-h", "--help") else 2
        cls, fn = subs[rest[0]]
        cfg = tyro.cli(cls, args=rest[1:], prog=f"vgb {head} {rest[0]}")
        return fn(cfg)
    if head in COMMANDS:
        cls, fn = COMMANDS[head]
        return fn(tyro.cli(cls, args=rest, prog=f"vgb {head}"))
    import difflib

    options = list(GROUPS) + list(COMMANDS)
    close = difflib.get_close_matches(head, options, n=1)
    console.print(f"[red]unknown command {head!r}" + (f"; did you mean {close[0]!r}?" if close else "") + "\n")
    print(_usage())
    return 2


if __name__ == "__main__":
    sys.exit(main())
