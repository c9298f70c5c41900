"""``vgb assets generate-tables`` and ``vgb assets import-tables``: configs (tyro) and handlers.

The asset room imports no env module: the handlers take a :class:`TableRenderer` (the camera's view and the empty
table's render), which the CLI wires in from :mod:`vla_gen_bench.envs.table_render`, and hand the images to the
generator.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import numpy as np
import tyro

from vla_gen_bench.assets.sdgen import GateConfig, SDConfig
from vla_gen_bench.cameras import CameraName
from vla_gen_bench.paths import repo_root


class TableRenderer(Protocol):
    """What the table commands need from the simulator (``vla_gen_bench.envs.table_render`` provides both)."""

    def view_spec(self, camera: str, size: tuple[int, int] | None = None) -> dict[str, Any]:
        """The policy camera's view (size, intrinsics, pose) as a pack's manifest records it."""
        ...

    def render_empty_table(self, camera: str, size: tuple[int, int] | None = None) -> Any:
        """The empty table from the policy camera: ``.rgb``, ``.depth``, ``.table_mask``, ``.view``."""
        ...


@dataclass(frozen=True)
class GenerateTables:
    """Generate a table pack with Stable Diffusion + ControlNet, conditioned on the simulated table's render."""

    pack: str
    """Pack name; the pack goes to $VGB_CACHE/assets/packs/NAME (or --out). Re-running resumes it."""
    prompts: Path = Path("asset_pipeline/prompts.toml")
    """Table descriptions (TOML, train and unseen); a relative path is also looked up in the source checkout."""
    n_train: int = 16
    """Tables in the train split."""
    n_unseen: int = 5
    """Tables in the unseen split."""
    seed: int = 0
    """Pack seed: every image's seed derives from it."""
    camera: CameraName = "default"
    """Policy camera to render for (default and fast share a frustum, so they share packs)."""
    out: Path | None = None
    """Pack folder (default: $VGB_CACHE/assets/packs/NAME)."""
    overwrite: bool = False
    """Delete an existing pack of this name first (default: resume it)."""
    license: str = "CreativeML Open RAIL-M (generated with Stable Diffusion 1.5)"
    """License recorded for every generated image."""
    sd: SDConfig = field(default_factory=SDConfig)
    gates: GateConfig = field(default_factory=GateConfig)


@dataclass(frozen=True)
class ImportTables:
    """Import a folder of table images (e.g. RL4VLA's 640x480 photographs) as a table pack."""

    pack: str
    """Pack name; the pack goes to $VGB_CACHE/assets/packs/NAME (or --out)."""
    from_: Annotated[Path, tyro.conf.arg(name="from")]
    """Folder with the images (searched recursively; png, jpg, jpeg, webp, bmp)."""
    unseen: str | None = None
    """Glob of the images that form the unseen split, e.g. 'unseen/*' or '*marble*' (default: all train)."""
    camera: CameraName = "default"
    """Policy camera whose size the images are resized to."""
    fit: Literal["crop", "stretch"] = "crop"
    """crop: centre-crop to the camera's aspect ratio, then resize; stretch: resize only."""
    out: Path | None = None
    """Pack folder (default: $VGB_CACHE/assets/packs/NAME)."""
    overwrite: bool = False
    """Replace an existing pack of this name."""
    license: str = "unknown (imported; check the terms of the source)"
    """License recorded for every image."""


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _pack_root(pack: str, out: Path | None) -> Path:
    from vla_gen_bench.assets.packs import packs_dir, validate_name

    validate_name(pack)
    return Path(out) if out else packs_dir() / pack


def _prompts_path(p: Path) -> Path:
    if p.exists() or p.is_absolute():
        return p
    return repo_root() / p if (repo_root() / p).exists() else p


def _render(root: Path, camera: str, size: tuple[int, int], console, sim: TableRenderer):
    """The empty-table render at the generation size, cached in the pack so that a resume needs no simulator."""
    cache = root / "control" / "render.npz"
    view = sim.view_spec(camera, size)
    if cache.exists():
        with np.load(cache) as z:
            if json.loads(str(z["view"])) == view:
                return z["rgb"], z["depth"]
    console.print(f"rendering the empty table from the '{camera}' camera at {size[0]}x{size[1]} ...")
    r = sim.render_empty_table(camera, size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        np.savez_compressed(f, rgb=r.rgb, depth=r.depth, table_mask=r.table_mask, view=json.dumps(r.view))
    return r.rgb, r.depth


def generate_tables(cfg: GenerateTables, sim: TableRenderer) -> int:
    """``vgb assets generate-tables``; ``sim`` renders the empty table (the CLI passes ``envs.table_render``)."""
    import logging
    import os

    from vla_gen_bench.assets.sdgen import GateFailure, generate_pack, generation_size, load_prompts
    from vla_gen_bench.assets.store import AssetError

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.getLogger("mani_skill").setLevel(logging.ERROR)
    console = _console()
    try:
        root = _pack_root(cfg.pack, cfg.out)
        prompts = load_prompts(_prompts_path(cfg.prompts))  # fails before any heavy work
        if cfg.overwrite and root.exists():
            shutil.rmtree(root)
        view = sim.view_spec(cfg.camera)
        size = generation_size(view["width"], view["height"], cfg.sd.resolution)
        rgb, depth = _render(root, cfg.camera, size, console, sim)
        m = generate_pack(root, cfg.pack, prompts, rgb, depth, view, n_train=cfg.n_train, n_unseen=cfg.n_unseen,
                          seed=cfg.seed, sd=cfg.sd, gates=cfg.gates, license=cfg.license, console=console)  # fmt: skip
    except GateFailure as e:
        console.print(f"[red]{e}")
        return 1
    except AssetError as e:
        console.print(f"[red]{e}")
        return 2
    _summary(console, m, root)
    return 0


def import_tables(cfg: ImportTables, sim: TableRenderer) -> int:
    """``vgb assets import-tables``; ``sim`` gives the camera's view the images are fitted to."""
    from vla_gen_bench.assets import packs
    from vla_gen_bench.assets.store import AssetError

    console = _console()
    try:
        root = _pack_root(cfg.pack, cfg.out)
        m = packs.import_tables(cfg.from_, root, cfg.pack, sim.view_spec(cfg.camera), unseen=cfg.unseen, fit=cfg.fit,
                                license=cfg.license, overwrite=cfg.overwrite)  # fmt: skip
    except AssetError as e:
        console.print(f"[red]{e}")
        return 2
    for w in m.get("warnings", []):
        console.print(f"[yellow]warning: {w}")
    console.print("[yellow]note: imported images are not aligned with the simulated table (see "
                  "docs/asset_pipeline.md); their edges will not match the scene's geometry")  # fmt: skip
    _summary(console, m, root)
    return 0


def _summary(console, m: dict, root: Path) -> None:
    from vla_gen_bench.assets.packs import load_pack

    store = load_pack(root)
    counts = m["counts"]
    console.print(f"table pack {m['name']!r}: train {counts['train']}, unseen {counts['unseen']}; "
                  f"pack hash {m['pack_hash']}; with the procedural objects: store hash {store.pack_hash}")  # fmt: skip
    if m.get("rejected"):
        console.print(f"{len(m['rejected'])} image(s) rejected by the quality gates (listed in the manifest)")
    console.print(f"wrote {root / 'manifest.json'} (use it with: vgb evaluate --asset-pack {m['name']})")
