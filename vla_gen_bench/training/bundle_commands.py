"""``vgb model bundle`` / ``vgb model verify``: config dataclasses (tyro) and their handlers
(:mod:`vla_gen_bench.training.bundle` does the work)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro


@dataclass(frozen=True)
class ModelBundle:
    """Copy a trained checkpoint into the repository (<= 20 MB) with its model card (card.json + MODEL_CARD.md)."""

    checkpoint: Path
    """The checkpoint folder: <run>/final of 'vgb train-baseline sft', <run>/policy of an RL run."""
    out: Path
    """The bundle folder, e.g. baselines/checkpoints/sft-tiny (an earlier bundle there is replaced)."""
    run: Path | None = None
    """The training run folder (config.json, metrics.csv, DONE): recipe, dataset fingerprint, training cost."""
    eval: Annotated[tuple[Path, ...], tyro.conf.UseAppendAction] = ()
    """An evaluation folder of these weights ('vgb evaluate --out'); repeat for several. Runs of other weights are
    refused."""
    note: str | None = None
    """Free text for the card (what the checkpoint is for, how it was chosen)."""
    name: str | None = None
    """The bundle's name (default: the --out folder's name)."""
    recipe: str | None = None
    """The recipe file, when the run's config does not name it (RL runs: e.g. ppo_tiny.toml)."""


def model_bundle(cfg: ModelBundle) -> int:
    """Handler of ``vgb model bundle``. Returns the exit code."""
    from rich.console import Console

    from vla_gen_bench.models.checkpoint import CheckpointError
    from vla_gen_bench.training.bundle import BundleError, bundle_checkpoint, read_card

    console = Console(stderr=True, soft_wrap=True)
    try:
        out = bundle_checkpoint(cfg.checkpoint, cfg.out, run_dir=cfg.run, evals=cfg.eval, name=cfg.name,
                                note=cfg.note, recipe=cfg.recipe)  # fmt: skip
    except (BundleError, CheckpointError) as e:
        console.print(f"error: {e}", style="red", markup=False)
        return 2
    card = read_card(out)
    if card["left_behind"]:
        console.print(f"left behind (not needed to load): {', '.join(card['left_behind'])}", markup=False)
    if not (card.get("git") or {}).get("commit"):
        console.print("[yellow]not a git checkout: the card records no commit[/]")
    elif card["git"].get("dirty"):
        console.print(
            "[yellow]the checkout has uncommitted changes: the card's commit does not pin the code[/]"
        )
    t = card.get("training")
    if t is None:
        console.print("[yellow]no --run: the card records no recipe, dataset or training cost[/]")
    elif t.get("recipe") is None or t["recipe"].get("sha256") is None:
        console.print("[yellow]the recipe could not be read: pass --recipe FILE[/]")
    for row in card["evals"]:
        if row.get("complete") is False:
            console.print(
                f"[yellow]{row['folder']} ({row['variant']}) is incomplete: {row['episodes']} episodes[/]"
            )
    console.print(
        f"wrote {out} ({card['size_bytes'] / 1e6:.1f} MB, {card['parameters'] / 1e6:.2f} M parameters, "
        f"checkpoint_sha256 {card['checkpoint_sha256'][:16]}..., {len(card['evals'])} evaluation rows); "
        f"check it with: vgb model verify {out}",
        markup=False,
    )
    print(out)
    return 0


@dataclass(frozen=True)
class ModelVerify:
    """Check a bundled checkpoint against its card.json (every file's sha256 and the checkpoint fingerprint)."""

    folder: tyro.conf.Positional[Path]
    """The bundle folder, e.g. baselines/checkpoints/sft-tiny."""


def model_verify(cfg: ModelVerify) -> int:
    """Handler of ``vgb model verify``. Returns 0 when the bundle matches its card, 1 when it does not."""
    from rich.console import Console

    from vla_gen_bench.training.bundle import BundleError, verify_bundle

    console = Console(stderr=True, soft_wrap=True)
    try:
        res = verify_bundle(cfg.folder)
    except BundleError as e:
        console.print(f"error: {e}", style="red", markup=False)
        return 1
    console.print(f"{cfg.folder}: {res['files']} files match card.json (checkpoint_sha256 "
                  f"{res['checkpoint_sha256']}, {res['size_bytes'] / 1e6:.1f} MB)", markup=False)  # fmt: skip
    return 0
