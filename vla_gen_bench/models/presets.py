"""Named model presets (one registry): ``openvla-7b`` (the real dimensions) and ``tiny`` (same architecture, CPU).

``tiny`` keeps every structural choice of OpenVLA-7B: the same timm model ids (DINOv2 with 4 register tokens and
LayerScale, SigLIP with its attention-pool head), the fused-GELU-MLP projector, a Llama language model, a Llama-style
tokenizer whose last 256 ids are the action tokens and an embedding padded by 64 rows. Only the sizes shrink: 128 px
images with 16 px patches (64 patches per backbone), width 96 / depth 4 ViTs, a 256-wide 4-layer Llama and a
1024-token vocabulary. ``tiny-conv`` swaps the ViTs for the small CNN featurizer (DESIGN.md §8). ``micro`` is the
smallest useful size (64 px, 16 patches per backbone, a 128-wide 2-layer Llama): ~3x faster to run and ~8x faster
to train than ``tiny``, for quick tests and latency-bound runs.

The tiny presets load in vgb only (their ViT size overrides and 1024-token vocabulary are not in the official OpenVLA
code; config.json says so). ``official-small`` is the smallest checkpoint the official HF code builds: that code
creates each ViT from its timm id alone (no size overrides), and its processor stacks the two backbones' images, so
both need the same patch size: DINOv2 ViT-S/14-reg4 (the smallest DINOv2 with registers) and SigLIP So400m/14 (the
only SigLIP with 14 px patches) at 112 px (64 patches each), a 256-wide 2-layer Llama and the 32000-token tokenizer
(action ids 31744-31999, separator 29871). The official config reads ``timm_model_ids`` / ``image_sizes`` from
config.json over its backbone table, so these load there as written.

Random-init checkpoints carry placeholder statistics under the key ``random_init``: q01/q99 at the benchmark's
per-step action bounds (±0.1 m, ±0.5 rad), gripper un-normalised (mask False). Training replaces them with dataset
statistics.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from vla_gen_bench.models.config import DINOV2_L, LLAMA2_7B_TEXT_CONFIG, SIGLIP_SO400M, OpenVLAConfig

DINOV2_S = "vit_small_patch14_reg4_dinov2.lvd142m"

RANDOM_INIT_STATS = {
    "random_init": {
        "action": {
            "q01": [-0.1, -0.1, -0.1, -0.5, -0.5, -0.5, 0.0],
            "q99": [0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 1.0],
            "mask": [True, True, True, True, True, True, False],
        }
    }
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: OpenVLAConfig
    dtype: str
    """The dtype checkpoints of this preset are written in (bf16 for the 7B, as OpenVLA ships it)."""


def _tiny(
    featurizer_type: str = "timm",
    image_size: int = 128,
    vit: tuple[int, int, int] = (96, 4, 3),
    llama: tuple[int, int, int, int] = (256, 4, 4, 688),
) -> OpenVLAConfig:
    """Small OpenVLA. ``vit``: (width, depth, heads) of each ViT; ``llama``: (hidden, layers, heads, mlp)."""
    width, depth, heads = vit
    hidden, layers, n_heads, mlp = llama
    kwargs = (
        {"embed_dim": width, "depth": depth, "num_heads": heads, "patch_size": 16}
        if featurizer_type == "timm"
        else {"patch_size": 16, "embed_dim": width, "widths": [32, 64, 96, 96]}
    )
    return OpenVLAConfig(
        timm_model_ids=(DINOV2_L, SIGLIP_SO400M),
        image_sizes=(image_size, image_size),
        text_config={
            "model_type": "llama",
            "vocab_size": 1024 + 64,
            "hidden_size": hidden,
            "intermediate_size": mlp,
            "num_hidden_layers": layers,
            "num_attention_heads": n_heads,
            "num_key_value_heads": n_heads,
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "pad_token_id": 1024,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "tie_word_embeddings": False,
        },
        llm_max_length=512,
        pad_token_id=1024,
        norm_stats=RANDOM_INIT_STATS,
        featurizer_type=featurizer_type,
        featurizer_kwargs=(dict(kwargs), dict(kwargs)),
    )


def _official_small() -> OpenVLAConfig:
    """Loads in the official code: ViTs from timm ids alone, Llama-2's 32000-token vocabulary (+64 padding rows)."""
    return OpenVLAConfig(
        timm_model_ids=(DINOV2_S, SIGLIP_SO400M),
        image_sizes=(112, 112),
        text_config={
            "model_type": "llama",
            "vocab_size": 32000 + 64,
            "hidden_size": 256,
            "intermediate_size": 688,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
            "pad_token_id": 32000,
        },
        llm_max_length=512,
        norm_stats=RANDOM_INIT_STATS,
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "openvla-7b",
            "OpenVLA-7B dimensions: DINOv2 ViT-L/14-reg4 + SigLIP So400m/14 at 224 px, Llama-2-7B (7.54 B params; GPU)",
            OpenVLAConfig(text_config=dict(LLAMA2_7B_TEXT_CONFIG), norm_stats=RANDOM_INIT_STATS),
            "bfloat16",
        ),
        Preset(
            "tiny",
            "Same architecture, small: ViTs width 96 depth 4 at 128 px, Llama 256x4, 1024-token vocab (~6 M params)",
            _tiny("timm"),
            "float32",
        ),
        Preset(
            "tiny-conv",
            "tiny with a small CNN featurizer in place of each ViT (for CPU-scale training)",
            _tiny("conv"),
            "float32",
        ),
        Preset(
            "micro",
            "Smallest: ViTs width 64 depth 3 at 64 px (16 patches each), Llama 128x2 (~1.3 M params; fast tests)",
            _tiny("timm", image_size=64, vit=(64, 3, 2), llama=(128, 2, 2, 344)),
            "float32",
        ),
        Preset(
            "official-small",
            "Smallest that loads in the official OpenVLA code: DINOv2 ViT-S/14-reg4 + SigLIP So400m/14 at 112 px, "
            "Llama 256x2, 32000-token vocab (~468 M params, 450 M of them SigLIP + DINOv2; CPU: ~1 min to build)",
            _official_small(),
            "float32",
        ),
    )
}


class PresetError(ValueError):
    """An unknown preset name."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``, with its ``preset`` field set; unknown names get a did-you-mean."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PresetError(f"unknown model preset {name!r}{hint}; available: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return replace(p, config=replace(p.config, preset=name))
