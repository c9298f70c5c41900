"""LoRA (peft) on the whole network: intended modules, official adapter names, save / load / merge."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from tests.models.conftest import INSTRUCTIONS
from vla_gen_bench.models.checkpoint import load_openvla, save_checkpoint
from vla_gen_bench.models.lora import attach_lora, load_lora, lora_target_modules, save_lora


@pytest.fixture
def adapted(tiny_vla):
    """A copy of the tiny bundle with a LoRA adapter whose B matrices are non-zero (as after training)."""
    vla = copy.copy(tiny_vla)
    peft_model = attach_lora(copy.deepcopy(tiny_vla.network), r=4)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    vla.model = peft_model
    return vla


def wrapped_modules(peft_model) -> set[str]:
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    return {n.removeprefix(prefix) for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)}


def test_adapters_attach_to_the_intended_modules(adapted, tiny_vla):
    net = tiny_vla.network
    expected = set(lora_target_modules(net, "all-linear"))
    assert wrapped_modules(adapted.model) == expected
    assert any(n.startswith("vision_backbone.featurizer.blocks.0.") for n in expected)
    assert {"projector.fc1", "projector.fc2", "projector.fc3"} <= expected
    assert "language_model.model.layers.3.mlp.down_proj" in expected
    assert "language_model.lm_head" not in expected
    last = len(net.vision_backbone.featurizer.blocks) - 1
    assert not any(f"blocks.{last}." in n or "attn_pool" in n for n in expected)  # never run: no adapters
    trainable = {n for n, p in adapted.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert set(lora_target_modules(net, "llm")) == {n for n in expected if n.startswith("language_model.")}
    assert set(lora_target_modules(net, "llm+projector")) - set(lora_target_modules(net, "llm")) == {
        "projector.fc1", "projector.fc2", "projector.fc3"
    }  # fmt: skip


def test_fresh_adapter_is_a_no_op_and_a_trained_one_is_not(tiny_vla, adapted, images):
    fresh = copy.copy(tiny_vla)
    fresh.model = attach_lora(copy.deepcopy(tiny_vla.network), r=4)  # B = 0
    base = tiny_vla.predict_action(images, INSTRUCTIONS).log_probs
    assert np.allclose(fresh.predict_action(images, INSTRUCTIONS).log_probs, base, atol=1e-5)
    assert not np.allclose(adapted.predict_action(images, INSTRUCTIONS).log_probs, base, atol=1e-3)


def test_save_and_load_adapter(adapted, tiny_ckpt, tmp_path, images):
    out = save_lora(adapted.model, tmp_path / "adapter")
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    # the official names: adapters saved by OpenVLA / RL4VLA fine-tuning have the same keys
    assert "base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight" in keys
    assert "base_model.model.vision_backbone.featurizer.blocks.0.attn.qkv.lora_B.weight" in keys
    want = adapted.predict_action(images, INSTRUCTIONS)
    merged = load_openvla(tiny_ckpt, device="cpu", lora=out)
    assert not hasattr(merged.model, "peft_config")  # merged back into a plain model
    got = merged.predict_action(images, INSTRUCTIONS)
    assert np.array_equal(got.tokens, want.tokens)
    assert np.allclose(got.log_probs, want.log_probs, atol=1e-3)  # merged weights: fp32 rounding differs
    # statistics saved next to the adapter (as OpenVLA / RL4VLA fine-tunes do) become available keys
    stats = {"sft": {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}}}
    (out / "dataset_statistics.json").write_text(json.dumps(stats))
    unmerged = load_openvla(tiny_ckpt, device="cpu", lora=out, merge_lora=False, unnorm_key="sft")
    assert sorted(unmerged.norm_stats) == ["random_init", "sft"]
    assert hasattr(unmerged.model, "peft_config")
    got = unmerged.predict_action(images, INSTRUCTIONS, unnorm_key="random_init")
    assert np.allclose(got.log_probs, want.log_probs, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Found missing adapter keys")  # our adapter skipped the never-run modules
def test_openvla_recipe_all_linear_adapter_config_loads(adapted, tiny_ckpt, tmp_path, images):
    """OpenVLA's finetune.py saves target_modules="all-linear"; loading must expand it like peft did there."""
    out = save_lora(adapted.model, tmp_path / "adapter")
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["target_modules"] = "all-linear"
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    vla = load_openvla(tiny_ckpt, device="cpu", lora=out, merge_lora=False)
    assert "language_model.lm_head" not in wrapped_modules(vla.model)
    got = vla.predict_action(images, INSTRUCTIONS)
    assert np.allclose(got.log_probs, adapted.predict_action(images, INSTRUCTIONS).log_probs, atol=1e-5)


def test_merged_checkpoint_from_an_adapted_model(adapted, tmp_path, images):
    out = save_checkpoint(adapted, tmp_path / "merged")
    back = load_openvla(out, device="cpu")
    assert np.allclose(
        back.predict_action(images, INSTRUCTIONS).log_probs,
        adapted.predict_action(images, INSTRUCTIONS).log_probs,
        atol=1e-3,  # merged weights: fp32 rounding of W + BA differs from the adapter's separate matmuls (~4e-4)
    )
    assert hasattr(adapted.model, "peft_config")  # saving did not merge the live model


def test_missing_adapter_folder(tiny_vla, tmp_path):
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        load_lora(copy.deepcopy(tiny_vla.network), tmp_path)
