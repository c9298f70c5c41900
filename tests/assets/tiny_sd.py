"""Tiny, randomly initialised SD 1.x + ControlNet models in the diffusers folder layout, built offline.

Same classes and geometry as SD 1.5 (VAE scale factor 8, a ControlNet hint encoder that downsamples 8x, the real
CLIP BPE vocabulary), tiny widths: the real loading and sampling code runs in about a second on a CPU.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for the bytes (printable ASCII/Latin-1 first)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def clip_tokenizer():
    """CLIP's tokenizer (49408 tokens) rebuilt from the BPE merges file that open_clip ships; no Hub access."""
    from transformers import CLIPTokenizer

    # find_spec, not importlib.resources: importing open_clip would pull in torchvision
    folder = Path(importlib.util.find_spec("open_clip").submodule_search_locations[0])
    lines = gzip.open(folder / "bpe_simple_vocab_16e6.txt.gz").read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=77,
    )


def build_tiny_sd(root: Path, seed: int = 0) -> dict[str, Path]:
    """Save a tiny SD 1.x pipeline and two ControlNets (canny, depth) under ``root``; return their folders."""
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        StableDiffusionPipeline,
        UNet2DConditionModel,
        UniPCMultistepScheduler,  # fmt: skip
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )  # fmt: skip
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, projection_dim=32, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))  # fmt: skip
    scheduler = UniPCMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )
    base = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=clip_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip
    out = {
        "base": Path(root) / "tiny-sd",
        "canny": Path(root) / "tiny-cn-canny",
        "depth": Path(root) / "tiny-cn-depth",
    }
    base.save_pretrained(out["base"])
    for k in ("canny", "depth"):
        torch.manual_seed(seed + (1 if k == "canny" else 2))
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16, 32))
        # a trained ControlNet's zero convolutions are not zero: let the condition matter
        with torch.no_grad():
            for name, prm in net.named_parameters():
                if name.startswith(
                    ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
                ):
                    prm.normal_(0.0, 0.05)
        net.save_pretrained(out[k])
    return out
