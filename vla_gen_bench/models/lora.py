"""LoRA adapters (peft) on the whole OpenVLA network, as OpenVLA's fine-tuning recipe does.

Adapters wrap the model itself, so their tensor names are the official ones
(``base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight``) and adapters saved by OpenVLA /
RL4VLA fine-tuning load here unchanged.

Scopes (which ``nn.Linear`` modules get an adapter):

* ``all-linear`` — every linear layer that runs in the forward pass: the ViT blocks that are used, the projector,
  and the Llama attention and MLP projections. Excluded: ``lm_head`` (as peft excludes a model's output embedding),
  and the modules that exist in the checkpoint but never run (each ViT's last block and SigLIP's ``attn_pool``),
  which would only collect dead adapters (and trip DDP's unused-parameter check).
* ``llm`` — the Llama attention and MLP projections only.
* ``llm+projector`` — those plus the projector.

An adapter folder whose ``adapter_config.json`` says ``"target_modules": "all-linear"`` (OpenVLA's recipe) is
expanded to every linear layer except ``lm_head``, which is what peft did on OpenVLA's HF class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

LORA_SCOPES = ("all-linear", "llm", "llm+projector")


def _unused_prefixes(model: nn.Module) -> list[str]:
    from vla_gen_bench.models.vision import unused_module_prefixes

    out = []
    vb = model.vision_backbone
    for name in ("featurizer", "fused_featurizer"):
        feat = getattr(vb, name, None)
        if feat is not None:
            out += [f"vision_backbone.{name}.{p}" for p in unused_module_prefixes(feat)]
    return out


def lora_target_modules(model: nn.Module, scope: str = "all-linear") -> list[str]:
    """Full names of the ``nn.Linear`` modules that get an adapter in ``scope``."""
    if scope not in LORA_SCOPES:
        raise ValueError(f"unknown LoRA scope {scope!r}; choose from {LORA_SCOPES}")
    skip = _unused_prefixes(model)
    names = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or name == "language_model.lm_head":
            continue
        if any(name == p or name.startswith(p + ".") for p in skip):
            continue
        in_llm = name.startswith("language_model.model.layers.")
        in_proj = name.startswith("projector.")
        if scope == "all-linear" or in_llm or (scope == "llm+projector" and in_proj):
            names.append(name)
    return names


def _all_linear_except_head(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "language_model.lm_head"]


def attach_lora(
    model: nn.Module,
    r: int = 32,
    alpha: int | None = None,
    dropout: float = 0.0,
    scope: str = "all-linear",
    init: str | bool = "gaussian",
):
    """Wrap ``model`` in a trainable peft ``PeftModel`` (OpenVLA's recipe: r=32, alpha=min(r, 16), gaussian init).

    Only the adapter weights require grad afterwards.
    """
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()  # peft imports transformers
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha if alpha is not None else min(r, 16),
        lora_dropout=dropout,
        target_modules=lora_target_modules(model, scope),
        init_lora_weights=init,
    )
    return get_peft_model(model, cfg)


def save_lora(peft_model, out_dir: str | Path) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors``."""
    out = Path(out_dir)
    peft_model.save_pretrained(str(out))
    return out


def load_lora(model: nn.Module, adapter_dir: str | Path, merge: bool = True, trainable: bool = False):
    """Attach a saved adapter to ``model``.

    Args:
        merge: fold the adapter into the base weights and return the plain model (fast inference).
        trainable: when not merging, keep the adapter weights trainable.

    Raises:
        FileNotFoundError: the folder has no ``adapter_config.json`` / adapter weights.
    """
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    from peft import LoraConfig, PeftModel

    adapter_dir = Path(adapter_dir).expanduser()
    cfg_file = adapter_dir / "adapter_config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{adapter_dir} is not a LoRA adapter folder: no adapter_config.json")
    if not any((adapter_dir / n).is_file() for n in ("adapter_model.safetensors", "adapter_model.bin")):
        raise FileNotFoundError(f"{adapter_dir} has no adapter_model.safetensors")
    raw: dict[str, Any] = json.loads(cfg_file.read_text())
    config = None
    if isinstance(raw.get("target_modules"), str) and raw["target_modules"].lower() == "all-linear":
        fields = {k: v for k, v in raw.items() if k in LoraConfig.__dataclass_fields__}
        fields["target_modules"] = _all_linear_except_head(model)
        config = LoraConfig(**fields)
    peft_model = PeftModel.from_pretrained(
        model, str(adapter_dir), config=config, is_trainable=trainable and not merge
    )
    if merge:
        return peft_model.merge_and_unload()
    return peft_model


def merged_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """The base model's state dict with the adapters folded in, leaving ``peft_model`` untouched."""
    import copy

    return copy.deepcopy(peft_model).merge_and_unload().state_dict()
