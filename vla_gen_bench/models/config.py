"""OpenVLA configuration: the fields of an HF OpenVLA ``config.json``, plus this package's few extensions.

Pure Python (no torch, no transformers), so presets and the CLI can read it cheaply. The official
``configuration_prismatic.py`` derives ``timm_model_ids`` / ``image_sizes`` / ``timm_override_act_layers`` from
``vision_backbone_id``; a ``config.json`` stores them too, and this class reads them from the file when present and
from the same lookup tables otherwise.

Extensions live under the ``"vgb"`` key of ``config.json`` (absent from official checkpoints; the defaults reproduce
the official architecture): ``featurizer_type`` (``"timm"`` ViTs or a small ``"conv"`` featurizer, DESIGN.md §8),
``featurizer_kwargs`` (per-backbone overrides for ``timm.create_model`` or the conv featurizer) and ``preset``.

Official loading. A config the official OpenVLA HF code can build (:meth:`OpenVLAConfig.vgb_only_reasons` is empty:
timm ViTs from their ids alone, a Llama with Llama-2's 32000-token vocabulary, one action per forward pass, backbone
and LLM ids from the official tables) is written with the official ``auto_map``, so
``AutoModelForVision2Seq.from_pretrained(folder, trust_remote_code=True)`` finds ``configuration_prismatic.py`` /
``modeling_prismatic.py`` next to it. Any other config is written with ``"vgb": {"compatibility": "loads in vgb only",
"vgb_only": [reasons]}`` and no ``auto_map``; a config that carries ``auto_map`` together with a vgb-only option is
refused, when written and when read.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DINOV2_L = "vit_large_patch14_reg4_dinov2.lvd142m"
SIGLIP_SO400M = "vit_so400m_patch14_siglip_224"

# vision_backbone_id -> (timm ids, act-layer overrides, image sizes); the subset of Prismatic's table OpenVLA uses.
VISION_BACKBONES: dict[str, tuple[tuple[str, ...], tuple[str | None, ...], tuple[int, ...]]] = {
    "dinosiglip-vit-so-224px": ((DINOV2_L, SIGLIP_SO400M), (None, None), (224, 224)),
    "siglip-vit-so400m": ((SIGLIP_SO400M,), (None,), (224,)),
    "dinov2-vit-l": ((DINOV2_L,), (None,), (224,)),
}
ARCH_SPECIFIERS = ("no-align+fused-gelu-mlp", "no-align+gelu-mlp", "fused-gelu-mlp", "gelu-mlp")
RESIZE_STRATEGIES = ("resize-naive", "letterbox")
FEATURIZER_TYPES = ("timm", "conv")

# The official configuration_prismatic.py accepts these ids (its lookup tables); other ids raise there.
OFFICIAL_VISION_BACKBONES = frozenset({
    "clip-vit-l", "siglip-vit-so400m", "dinov2-vit-l", "in1k-vit-l", "clip-vit-l-336px", "siglip-vit-so400m-384px",
    "dinoclip-vit-l-336px", "dinosiglip-vit-so-224px", "dinosiglip-vit-so-384px",
})  # fmt: skip
OFFICIAL_LLAMA_BACKBONES = frozenset({
    "llama2-7b-pure", "llama2-13b-pure", "llama2-7b-chat", "llama2-13b-chat", "vicuna-v15-7b", "vicuna-v15-13b",
})  # fmt: skip
OFFICIAL_TOKENIZER_VOCAB_SIZE = 32000  # Llama-2's; the official predict_action appends its id 29871
# config.json's auto_map as openvla/openvla-7b ships it: the remote-code files must lie next to config.json.
OFFICIAL_AUTO_MAP = {
    "AutoConfig": "configuration_prismatic.OpenVLAConfig",
    "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction",
}
VGB_ONLY = "loads in vgb only"

# Llama-2-7B's text_config as the official config.json stores it: only the fields that differ from LlamaConfig's
# defaults (hidden 4096, 32 layers, 32 heads, intermediate 11008), so the rest come from transformers' defaults.
LLAMA2_7B_TEXT_CONFIG: dict[str, Any] = {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064}

_KNOWN_KEYS = {
    "vision_backbone_id",
    "llm_backbone_id",
    "arch_specifier",
    "use_fused_vision_backbone",
    "image_resize_strategy",
    "timm_model_ids",
    "timm_override_act_layers",
    "image_sizes",
    "text_config",
    "llm_max_length",
    "pad_token_id",
    "pad_to_multiple_of",
    "n_action_bins",
    "norm_stats",
    "output_projector_states",
    "model_type",
    "vgb",
    "auto_map",  # remote-code plumbing: never used here; written (OFFICIAL_AUTO_MAP) when the official code loads it
    "architectures",  # always written as OpenVLAForActionPrediction
}


class ConfigError(ValueError):
    """A config.json that does not describe an OpenVLA model this package can build."""


@dataclass(frozen=True)
class OpenVLAConfig:
    """Everything needed to build the network; mirrors the official ``OpenVLAConfig`` fields."""

    vision_backbone_id: str = "dinosiglip-vit-so-224px"
    llm_backbone_id: str = "llama2-7b-pure"
    arch_specifier: str = "no-align+fused-gelu-mlp"
    use_fused_vision_backbone: bool = True
    image_resize_strategy: str = "resize-naive"
    timm_model_ids: tuple[str, ...] = (DINOV2_L, SIGLIP_SO400M)
    timm_override_act_layers: tuple[str | None, ...] = (None, None)
    image_sizes: tuple[int, ...] = (224, 224)
    text_config: dict[str, Any] = field(default_factory=lambda: dict(LLAMA2_7B_TEXT_CONFIG))
    """Keyword arguments of ``transformers.LlamaConfig``; missing fields take LlamaConfig's defaults."""
    llm_max_length: int = 2048
    pad_token_id: int = 32000
    pad_to_multiple_of: int = 64
    """The embedding has ``tokenizer vocab + pad`` rows rounded up to this; action ids sit below that padding."""
    n_action_bins: int = 256
    norm_stats: dict[str, Any] = field(default_factory=dict)
    """``{dataset key: {"action": {"q01", "q99", "mask", ...}, "proprio": ...}}`` as in OpenVLA checkpoints."""
    output_projector_states: bool = False
    featurizer_type: str = "timm"
    featurizer_kwargs: tuple[dict[str, Any], ...] = ({}, {})
    preset: str | None = None
    action_chunk: int = 1
    """Actions decoded per forward pass (``action_chunk * 7`` tokens, executed open-loop; ACT / OpenVLA-OFT style
    chunking). 1 = OpenVLA. Stored under config.json's ``vgb`` block when > 1."""
    execute: int = 0
    """How many actions of each chunk the policy runs before decoding the next one, unless the evaluation says
    otherwise (receding horizon; 0 = the whole chunk). The training recipe's choice, stored as ``vgb.execute``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields of config.json this package does not use (auto_map, architectures, ...), kept for the round trip."""

    def __post_init__(self) -> None:
        n = 2 if self.use_fused_vision_backbone else 1
        for name in ("timm_model_ids", "timm_override_act_layers", "image_sizes", "featurizer_kwargs"):
            if len(getattr(self, name)) != n:
                raise ConfigError(
                    f"{name} has {len(getattr(self, name))} entries but use_fused_vision_backbone="
                    f"{self.use_fused_vision_backbone} needs {n}"
                )
        if self.arch_specifier not in ARCH_SPECIFIERS:
            raise ConfigError(
                f"unsupported arch_specifier {self.arch_specifier!r}; supported: {ARCH_SPECIFIERS}"
            )
        if ("fused" in self.arch_specifier) != self.use_fused_vision_backbone:
            raise ConfigError(
                f"arch_specifier {self.arch_specifier!r} does not match "
                f"use_fused_vision_backbone={self.use_fused_vision_backbone}"
            )
        if self.image_resize_strategy not in RESIZE_STRATEGIES:
            raise ConfigError(
                f"unsupported image_resize_strategy {self.image_resize_strategy!r}; supported: {RESIZE_STRATEGIES}"
            )
        if self.featurizer_type not in FEATURIZER_TYPES:
            raise ConfigError(
                f"unknown featurizer_type {self.featurizer_type!r}; choose from {FEATURIZER_TYPES}"
            )
        if self.text_config.get("model_type", "llama") != "llama":
            raise ConfigError(
                f"only Llama language models are supported, got {self.text_config.get('model_type')!r}"
            )
        if int(self.action_chunk) < 1:
            raise ConfigError(f"action_chunk must be >= 1, got {self.action_chunk}")
        if not 0 <= int(self.execute) <= int(self.action_chunk):
            raise ConfigError(f"execute must be 0 (the whole chunk) to action_chunk={self.action_chunk}, got "
                              f"{self.execute}")  # fmt: skip
        if self.tokenizer_vocab_size <= self.n_action_bins:
            raise ConfigError(
                f"text_config.vocab_size - pad_to_multiple_of = {self.tokenizer_vocab_size} leaves no room for "
                f"{self.n_action_bins} action tokens"
            )
        if "auto_map" in self.extra:
            check_official_label(self)

    # --- official loading ----------------------------------------------------------------------------------------
    def vgb_only_reasons(self) -> list[str]:
        """Why the official OpenVLA HF code (transformers 4.40.1, timm 0.9.x) cannot load this config; empty when
        it can. timm ids are not checked: the official code builds whatever id its timm version knows."""
        reasons = []
        if self.featurizer_type != "timm":
            reasons.append(
                f"featurizer_type {self.featurizer_type!r} (the official code builds timm ViTs only)"
            )
        elif any(self.featurizer_kwargs):
            reasons.append(
                "featurizer_kwargs resize the ViTs (the official code builds each timm id at its own size)"
            )
        if self.tokenizer_vocab_size != OFFICIAL_TOKENIZER_VOCAB_SIZE:
            reasons.append(
                f"a {self.tokenizer_vocab_size}-token vocabulary (the official predict_action decodes actions as the "
                f"last 256 of Llama-2's {OFFICIAL_TOKENIZER_VOCAB_SIZE} ids and appends id 29871)"
            )
        if int(self.action_chunk) != 1:
            reasons.append(
                f"action_chunk {self.action_chunk} (the official predict_action decodes one 7-D action)"
            )
        if self.vision_backbone_id not in OFFICIAL_VISION_BACKBONES:
            reasons.append(f"vision_backbone_id {self.vision_backbone_id!r} is not in the official tables")
        if self.llm_backbone_id not in OFFICIAL_LLAMA_BACKBONES:
            reasons.append(
                f"llm_backbone_id {self.llm_backbone_id!r} is not a Llama id of the official tables"
            )
        return reasons

    @property
    def loads_in_official_code(self) -> bool:
        return not self.vgb_only_reasons()

    # --- derived -------------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Rows of the embedding / lm_head (32064 for OpenVLA-7B)."""
        return int(self.text_config.get("vocab_size", 32000))

    @property
    def tokenizer_vocab_size(self) -> int:
        """Size of the tokenizer's base vocabulary (32000): the action tokens are its last ``n_action_bins`` ids."""
        return self.vocab_size - self.pad_to_multiple_of

    @property
    def action_token_range(self) -> tuple[int, int]:
        """``[begin, end)`` of the action token ids (31744, 32000 for OpenVLA-7B)."""
        return self.tokenizer_vocab_size - self.n_action_bins, self.tokenizer_vocab_size

    def llama_config(self, attn_implementation: str | None = None):
        """The ``transformers.LlamaConfig`` of the language model (imports transformers)."""
        from vla_gen_bench._compat import ensure_torchvision

        ensure_torchvision()
        from transformers import LlamaConfig

        kwargs = {
            k: v for k, v in self.text_config.items() if k not in ("model_type", "torch_dtype", "dtype")
        }
        kwargs.setdefault("pad_token_id", self.pad_token_id)
        cfg = LlamaConfig(**kwargs)
        if attn_implementation is not None:
            cfg._attn_implementation = attn_implementation
        return cfg

    # --- HF config.json ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenVLAConfig:
        """Read the dict of an HF OpenVLA ``config.json`` (or one this package wrote)."""
        if not isinstance(d, dict):
            raise ConfigError(f"config.json must hold a JSON object, got {type(d).__name__}")
        model_type = d.get("model_type", "openvla")
        if model_type not in ("openvla", "prismatic"):
            raise ConfigError(f"config.json has model_type {model_type!r}; expected 'openvla'")
        backbone = d.get("vision_backbone_id", cls.vision_backbone_id)
        if backbone not in VISION_BACKBONES and "timm_model_ids" not in d:
            raise ConfigError(
                f"unknown vision_backbone_id {backbone!r} and no timm_model_ids in config.json; "
                f"known: {sorted(VISION_BACKBONES)}"
            )
        ids, acts, sizes = VISION_BACKBONES.get(backbone, ((), (), ()))
        fused = d.get("use_fused_vision_backbone")
        if fused is None:
            fused = backbone.startswith(("dinoclip", "dinosiglip"))
        vgb = d.get("vgb") or {}
        n = 2 if fused else 1
        text_config = d.get("text_config") or dict(LLAMA2_7B_TEXT_CONFIG)
        config = cls(
            vision_backbone_id=backbone,
            llm_backbone_id=d.get("llm_backbone_id", cls.llm_backbone_id),
            arch_specifier=d.get("arch_specifier", cls.arch_specifier),
            use_fused_vision_backbone=bool(fused),
            image_resize_strategy=d.get("image_resize_strategy", cls.image_resize_strategy),
            timm_model_ids=tuple(d.get("timm_model_ids") or ids),
            timm_override_act_layers=tuple(d.get("timm_override_act_layers") or acts),
            image_sizes=tuple(int(s) for s in (d.get("image_sizes") or sizes)),
            text_config=dict(text_config),
            llm_max_length=int(d.get("llm_max_length", 2048)),
            pad_token_id=int(d.get("pad_token_id", 32000)),
            pad_to_multiple_of=int(d.get("pad_to_multiple_of", 64)),
            n_action_bins=int(d.get("n_action_bins", 256)),
            norm_stats=copy.deepcopy(d.get("norm_stats") or {}),
            output_projector_states=bool(d.get("output_projector_states", False)),
            featurizer_type=vgb.get("featurizer_type", "timm"),
            featurizer_kwargs=tuple(vgb.get("featurizer_kwargs") or [{}] * n),
            preset=vgb.get("preset"),
            action_chunk=int(vgb.get("action_chunk", 1)),
            execute=int(vgb.get("execute", 0)),
            extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS},
        )
        if "auto_map" in d:
            check_official_label(config)
        return config

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` dict, in the official field names. With the official ``auto_map`` when the official
        code can load it, else labelled ``"vgb": {"compatibility": "loads in vgb only", "vgb_only": [...]}``."""
        reasons = self.vgb_only_reasons()
        d = dict(self.extra)
        if not reasons:
            d["auto_map"] = dict(OFFICIAL_AUTO_MAP)
        d.update(
            model_type="openvla",
            architectures=["OpenVLAForActionPrediction"],
            vision_backbone_id=self.vision_backbone_id,
            llm_backbone_id=self.llm_backbone_id,
            arch_specifier=self.arch_specifier,
            use_fused_vision_backbone=self.use_fused_vision_backbone,
            image_resize_strategy=self.image_resize_strategy,
            timm_model_ids=list(self.timm_model_ids),
            timm_override_act_layers=list(self.timm_override_act_layers),
            image_sizes=list(self.image_sizes),
            text_config=copy.deepcopy(self.text_config),
            llm_max_length=self.llm_max_length,
            pad_token_id=self.pad_token_id,
            pad_to_multiple_of=self.pad_to_multiple_of,
            n_action_bins=self.n_action_bins,
            norm_stats=copy.deepcopy(self.norm_stats),
            output_projector_states=self.output_projector_states,
        )
        vgb: dict[str, Any] = {}
        if reasons:
            vgb.update(compatibility=VGB_ONLY, vgb_only=reasons)
        vgb.update(
            featurizer_type=self.featurizer_type,
            featurizer_kwargs=[dict(k) for k in self.featurizer_kwargs],
        )
        if self.preset is not None:
            vgb["preset"] = self.preset
        if self.action_chunk != 1:
            vgb["action_chunk"] = int(self.action_chunk)
        if self.execute:
            vgb["execute"] = int(self.execute)
        if (reasons or self.featurizer_type != "timm" or any(self.featurizer_kwargs) or self.preset is not None
                or self.action_chunk != 1):  # fmt: skip
            d["vgb"] = vgb
        return d

    @classmethod
    def from_json_file(cls, path: str | Path) -> OpenVLAConfig:
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(d)

    def with_norm_stats(self, norm_stats: dict[str, Any]) -> OpenVLAConfig:
        return replace(self, norm_stats=copy.deepcopy(norm_stats))


def check_official_label(config: OpenVLAConfig) -> None:
    """Refuse an ``auto_map`` (the claim that the official code loads the checkpoint) on a vgb-only config.

    Raises:
        ConfigError: the config has vgb-only options; the message lists them.
    """
    reasons = config.vgb_only_reasons()
    if reasons:
        raise ConfigError(
            f"config.json has an auto_map (the official OpenVLA code would try to load it) but this checkpoint "
            f"{VGB_ONLY}: {'; '.join(reasons)}. Remove auto_map from config.json; vgb labels such checkpoints "
            f'"{VGB_ONLY}"'
        )
