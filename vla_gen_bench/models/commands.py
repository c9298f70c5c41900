"""``vgb model ...`` commands: config dataclasses (tyro) and their handlers. The CLI only parses and dispatches."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelInit:
    """Write a randomly initialised OpenVLA checkpoint (HF folder layout) for a model preset."""

    preset: str = "tiny"
    """Model preset: tiny, tiny-conv, micro, official-small (loads in the official OpenVLA code too; 1.8 GB) or
    openvla-7b (the 7B needs ~15 GB of disk and ~30 GB of RAM)."""
    out: Path = Path("checkpoints/tiny-init")
    """Output folder (created); it must not already hold a checkpoint unless --overwrite."""
    seed: int = 0
    """Seed of the random initialisation (same seed, same weights)."""
    dtype: str | None = None
    """Weight dtype on disk (float32 / bfloat16); default: the preset's (tiny fp32, openvla-7b bf16)."""
    max_shard_size: str = "5GB"
    """Largest safetensors shard; bigger models are split with a model.safetensors.index.json."""
    overwrite: bool = False
    """Replace an existing checkpoint in --out."""
    device: str = "cpu"
    """Where the weights are initialised: cpu, auto (CUDA when present; ~7x faster for openvla-7b), cuda:0 ..."""


def model_init(cfg: ModelInit) -> int:
    """Handler of ``vgb model init``: writes the folder and prints what it wrote. Returns the exit code."""
    from rich.console import Console

    from vla_gen_bench.models.checkpoint import describe, init_checkpoint
    from vla_gen_bench.models.presets import PresetError

    console = Console(stderr=True, soft_wrap=True)
    t = time.perf_counter()
    try:
        out = init_checkpoint(
            cfg.preset, cfg.out, seed=cfg.seed, dtype=cfg.dtype, max_shard_size=cfg.max_shard_size,
            overwrite=cfg.overwrite, device=cfg.device,
        )  # fmt: skip
    except (PresetError, FileExistsError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    info = describe(out)
    (out / "vgb_init.json").write_text(
        json.dumps({"command": "model init", **asdict(cfg), "out": str(cfg.out)}, indent=2) + "\n"
    )
    console.print(
        f"wrote {cfg.preset} checkpoint ({info['parameters'] / 1e6:.2f} M parameters, {info['tensors']} tensors, "
        f"unnorm keys: {', '.join(info['unnorm_keys'])}) to {out} in {time.perf_counter() - t:.1f} s"
    )
    print(out)
    return 0
