"""The real OpenVLA-7B checkpoint layout, written down independently from the published architecture, must be
covered tensor for tensor (names and shapes) by the key map and the model built from the ``openvla-7b`` preset.
Built on the ``meta`` device: no weights, no download."""

from __future__ import annotations

import pytest
import torch

from vla_gen_bench.models.checkpoint import plan_load
from vla_gen_bench.models.config import OFFICIAL_AUTO_MAP, OpenVLAConfig
from vla_gen_bench.models.presets import get_preset


def official_openvla_7b_layout() -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of ``openvla/openvla-7b`` (HF), from the published dimensions."""
    out: dict[str, tuple[int, ...]] = {}

    def vit(
        prefix: str, dim: int, depth: int, mlp: int, layer_scale: bool, prefix_tokens: bool, attn_pool: bool
    ):
        if prefix_tokens:  # DINOv2 with 4 registers; position embeddings only for the patches
            out[f"{prefix}.cls_token"] = (1, 1, dim)
            out[f"{prefix}.reg_token"] = (1, 4, dim)
        out[f"{prefix}.pos_embed"] = (1, 256, dim)  # 224 / 14 = 16 -> 256 patches
        out[f"{prefix}.patch_embed.proj.weight"] = (dim, 3, 14, 14)
        out[f"{prefix}.patch_embed.proj.bias"] = (dim,)
        for i in range(depth):
            b = f"{prefix}.blocks.{i}"
            out.update({f"{b}.norm1.weight": (dim,), f"{b}.norm1.bias": (dim,), f"{b}.norm2.weight": (dim,),
                        f"{b}.norm2.bias": (dim,), f"{b}.attn.qkv.weight": (3 * dim, dim), f"{b}.attn.qkv.bias": (3 * dim,),
                        f"{b}.attn.proj.weight": (dim, dim), f"{b}.attn.proj.bias": (dim,),
                        f"{b}.mlp.fc1.weight": (mlp, dim), f"{b}.mlp.fc1.bias": (mlp,),
                        f"{b}.mlp.fc2.weight": (dim, mlp), f"{b}.mlp.fc2.bias": (dim,)})  # fmt: skip
            if layer_scale:
                out[f"{b}.ls1.scale_factor"] = (dim,)
                out[f"{b}.ls2.scale_factor"] = (dim,)
        out[f"{prefix}.norm.weight"] = (dim,)
        out[f"{prefix}.norm.bias"] = (dim,)
        if attn_pool:
            a = f"{prefix}.attn_pool"
            out.update({f"{a}.latent": (1, 1, dim), f"{a}.q.weight": (dim, dim), f"{a}.q.bias": (dim,),
                        f"{a}.kv.weight": (2 * dim, dim), f"{a}.kv.bias": (2 * dim,), f"{a}.proj.weight": (dim, dim),
                        f"{a}.proj.bias": (dim,), f"{a}.norm.weight": (dim,), f"{a}.norm.bias": (dim,),
                        f"{a}.mlp.fc1.weight": (mlp, dim), f"{a}.mlp.fc1.bias": (mlp,),
                        f"{a}.mlp.fc2.weight": (dim, mlp), f"{a}.mlp.fc2.bias": (dim,)})  # fmt: skip

    vit("vision_backbone.featurizer", 1024, 24, 4096, layer_scale=True, prefix_tokens=True, attn_pool=False)
    vit(
        "vision_backbone.fused_featurizer",
        1152,
        27,
        4304,
        layer_scale=False,
        prefix_tokens=False,
        attn_pool=True,
    )
    out.update({"projector.fc1.weight": (8704, 2176), "projector.fc1.bias": (8704,),
                "projector.fc2.weight": (4096, 8704), "projector.fc2.bias": (4096,),
                "projector.fc3.weight": (4096, 4096), "projector.fc3.bias": (4096,)})  # fmt: skip
    lm = "language_model.model"
    out[f"{lm}.embed_tokens.weight"] = (32064, 4096)
    for i in range(32):
        b = f"{lm}.layers.{i}"
        for p in "qkvo":
            out[f"{b}.self_attn.{p}_proj.weight"] = (4096, 4096)
        out[f"{b}.mlp.gate_proj.weight"] = (11008, 4096)
        out[f"{b}.mlp.up_proj.weight"] = (11008, 4096)
        out[f"{b}.mlp.down_proj.weight"] = (4096, 11008)
        out[f"{b}.input_layernorm.weight"] = (4096,)
        out[f"{b}.post_attention_layernorm.weight"] = (4096,)
    out[f"{lm}.norm.weight"] = (4096,)
    out["language_model.lm_head.weight"] = (32064, 4096)
    return out


@pytest.fixture(scope="module")
def meta_7b():
    from vla_gen_bench.models.modeling import OpenVLAForActionPrediction

    with torch.device("meta"):
        return OpenVLAForActionPrediction(get_preset("openvla-7b").config)


def numel(shape) -> int:
    return int(torch.Size(shape).numel())


def test_official_layout_counts():
    layout = official_openvla_7b_layout()
    assert len(layout) == 982  # spec/openvla_and_sd.md §2
    parts = {
        "vision_backbone.featurizer": 0,
        "vision_backbone.fused_featurizer": 0,
        "projector": 0,
        "language_model": 0,
    }
    for k, s in layout.items():
        parts[next(p for p in parts if k.startswith(p + "."))] += numel(s)
    assert round(parts["vision_backbone.featurizer"] / 1e6, 1) == 303.2
    assert round(parts["vision_backbone.fused_featurizer"] / 1e6, 1) == 427.7
    assert round(parts["projector"] / 1e6, 1) == 71.4
    assert round(parts["language_model"] / 1e9, 3) == 6.739
    assert round(sum(parts.values()) / 1e9, 3) == 7.541


def test_key_map_covers_every_tensor_of_the_real_layout(meta_7b):
    model_shapes = {k: tuple(v.shape) for k, v in meta_7b.state_dict().items()}
    layout = official_openvla_7b_layout()
    plan = plan_load(layout, model_shapes, where="openvla-7b (meta)")
    assert len(plan) == len(layout) == len(model_shapes) == 982
    assert (
        plan["vision_backbone.featurizer.blocks.0.ls1.scale_factor"]
        == "vision_backbone.featurizer.blocks.0.ls1.scale_factor"
    )
    assert all(v.is_meta for v in meta_7b.state_dict().values())


def test_real_config_json_fields_build_the_same_architecture(meta_7b):
    """A config.json as OpenVLA ships it (text_config only holds what differs from LlamaConfig's defaults)."""
    shipped = {
        "model_type": "openvla", "vision_backbone_id": "dinosiglip-vit-so-224px", "llm_backbone_id": "llama2-7b-pure",
        "arch_specifier": "no-align+fused-gelu-mlp", "use_fused_vision_backbone": True,
        "image_resize_strategy": "resize-naive", "llm_max_length": 2048, "pad_token_id": 32000,
        "pad_to_multiple_of": 64, "n_action_bins": 256, "output_projector_states": False,
        "text_config": {"model_type": "llama", "pad_token_id": 32000, "torch_dtype": "bfloat16", "vocab_size": 32064},
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "image_sizes": [224, 224], "hf_llm_id": "meta-llama/Llama-2-7b-hf",
        "auto_map": {"AutoConfig": "configuration_prismatic.OpenVLAConfig"}, "torch_dtype": "bfloat16",
        "norm_stats": {"bridge_orig": {"action": {"q01": [0.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}}},
    }  # fmt: skip
    cfg = OpenVLAConfig.from_dict(shipped)
    assert cfg.action_token_range == (31744, 32000)
    llama = cfg.llama_config()
    assert (llama.hidden_size, llama.num_hidden_layers, llama.intermediate_size) == (4096, 32, 11008)
    assert cfg.extra["hf_llm_id"] == "meta-llama/Llama-2-7b-hf"
    assert cfg.to_dict()["auto_map"] == OFFICIAL_AUTO_MAP  # written back whole: the official code loads it
    assert OpenVLAConfig.from_dict(cfg.to_dict()) == cfg
    # the derived fields come from vision_backbone_id when a config.json omits them
    minimal = {
        k: v
        for k, v in shipped.items()
        if k not in ("timm_model_ids", "image_sizes", "timm_override_act_layers")
    }
    assert OpenVLAConfig.from_dict(minimal).timm_model_ids == cfg.timm_model_ids


def test_lora_all_linear_targets_on_the_real_layout(meta_7b):
    from vla_gen_bench.models.lora import lora_target_modules

    names = lora_target_modules(meta_7b, "all-linear")
    # 32 Llama layers x 7 + projector 3 + the ViT blocks that run (23 DINOv2 + 26 SigLIP) x 4 linears
    assert len(names) == 32 * 7 + 3 + (23 + 26) * 4
    assert "language_model.lm_head" not in names
    unused = (
        ".attn_pool.",
        "vision_backbone.featurizer.blocks.23.",
        "vision_backbone.fused_featurizer.blocks.26.",
    )
    assert not any(u in n for n in names for u in unused)
    assert "vision_backbone.fused_featurizer.blocks.23.attn.qkv" in names
    assert len(lora_target_modules(meta_7b, "llm")) == 32 * 7
