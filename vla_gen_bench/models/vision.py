"""Vision featurizers: timm ViTs built exactly as OpenVLA builds them, or a small CNN behind the same interface.

A featurizer maps ``(B, 3, S, S)`` to patch tokens ``(B, N, D)`` and exposes ``embed_dim``. The timm ViT is the
module itself (so parameter names match the checkpoint: ``vision_backbone.featurizer.blocks.0.attn.qkv.weight``); its
patch tokens are the output of the **second-to-last** block, without the final norm and without prefix tokens, as
``get_intermediate_layers(x, n={depth - 2})`` returns them. The final block, norm and SigLIP's ``attn_pool`` exist in
the checkpoint but are never used.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class LayerScale(nn.Module):
    """timm's LayerScale with its parameter named ``scale_factor``, the name OpenVLA's HF checkpoints use (they
    renamed ``gamma`` to dodge an old transformers load-time rename)."""

    def __init__(self, dim: int, init_values: float = 1e-5, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.scale_factor = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.scale_factor) if self.inplace else x * self.scale_factor


def _replace_layer_scale(model: nn.Module) -> None:
    from timm.layers import LayerScale as TimmLayerScale

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, TimmLayerScale):
                new = LayerScale(child.gamma.shape[0], inplace=child.inplace)
                with torch.no_grad():
                    new.scale_factor.copy_(child.gamma)
                setattr(parent, name, new.to(child.gamma.device, child.gamma.dtype))


def timm_vit(model_id: str, image_size: int, act_layer: str | None, **overrides: Any) -> nn.Module:
    """``timm.create_model(model_id, pretrained=False, num_classes=0, img_size=..., act_layer=...)`` plus size
    overrides (``embed_dim``, ``depth``, ``num_heads``, ``patch_size``, ...; empty for the real architecture)."""
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    model = timm.create_model(
        model_id, pretrained=False, num_classes=0, img_size=image_size, act_layer=act_layer, **overrides
    )
    _replace_layer_scale(model)
    return model


class ConvFeaturizer(nn.Module):
    """A small CNN that yields ``(S / patch_size)^2`` patch tokens; an option for CPU-scale training (DESIGN §8).

    Stages of 3x3 stride-2 convolutions (GroupNorm, GELU) until the stride equals ``patch_size``, a 1x1
    projection to ``embed_dim``, optional batch normalisation of the tokens (``batchnorm``), and a learned position
    embedding per patch. ``keypoints`` > 0 replaces the patch grid by spatial soft-argmax keypoints. ``coords`` appends two constant
    channels holding each pixel's x and y in [-1, 1] to the input (CoordConv, Liu et al. 2018), so features can
    say *where* inside a patch something is; without them a 4x4 grid localises to about a patch (32 px at 128).
    """

    def __init__(
        self,
        img_size: int = 128,
        patch_size: int = 16,
        embed_dim: int = 96,
        widths: tuple[int, ...] = (32, 64),
        coords: bool = False,
        keypoints: int = 0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        n_stages = int(round(math.log2(patch_size)))
        if 2**n_stages != patch_size or img_size % patch_size:
            raise ValueError(
                f"patch_size must be a power of 2 dividing img_size, got {patch_size} / {img_size}"
            )
        widths = tuple(widths) + (widths[-1],) * max(0, n_stages - len(widths))
        layers: list[nn.Module] = []
        self.coords = bool(coords)
        c = 5 if self.coords else 3
        for w in widths[:n_stages]:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.GroupNorm(min(8, w), w), nn.GELU()]
            c = w
        self.stages = nn.Sequential(*layers)
        self.keypoints = int(keypoints)
        if self.keypoints:
            # spatial soft-argmax (Levine et al. 2016): K attention maps over the (S / patch_size)^2 feature map;
            # token k = linear([x_k, y_k, features pooled under map k]) + a learned embedding of k
            self.kp_logits = nn.Conv2d(c, self.keypoints, 1)
            self.kp_temperature = nn.Parameter(torch.zeros(()))  # log temperature
            self.proj = nn.Linear(c + 2, embed_dim)
            self.num_patches = self.keypoints
        else:
            self.proj = nn.Conv2d(c, embed_dim, 1)
            self.num_patches = (img_size // patch_size) ** 2
        # standardise every (token, channel) over the batch: what differs between images then has unit scale from
        # the first step (without it the image-dependent part is ~1 % of a token and a from-scratch model spends
        # tens of thousands of samples predicting from the prompt alone)
        self.norm = nn.BatchNorm1d(self.num_patches * embed_dim) if batchnorm else None
        self.pos_embed = nn.Parameter(torch.randn(1, self.num_patches, embed_dim) * 0.02)
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coords:
            b, _, h, w = x.shape
            ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)[:, None].expand(h, w)
            xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)[None, :].expand(h, w)
            x = torch.cat([x, torch.stack([xs, ys]).expand(b, 2, h, w)], 1)
        f = self.stages(x)  # (b, c, h, w)
        if self.keypoints:
            b, c, h, w = f.shape
            att = torch.softmax(self.kp_logits(f).flatten(2) * self.kp_temperature.exp(), -1)  # (b, k, h*w)
            ys = torch.linspace(-1, 1, h, device=f.device, dtype=f.dtype)[:, None].expand(h, w).reshape(-1)
            xs = torch.linspace(-1, 1, w, device=f.device, dtype=f.dtype)[None, :].expand(h, w).reshape(-1)
            xy = torch.stack([att @ xs, att @ ys], -1)  # (b, k, 2) expected coordinates
            feats = att @ f.flatten(2).transpose(1, 2)  # (b, k, c)
            tokens = self.proj(torch.cat([xy, feats], -1))  # (b, k, d)
        else:
            tokens = self.proj(f).flatten(2).transpose(1, 2)  # (b, h*w, d)
        if self.norm is not None:
            tokens = self.norm(tokens.reshape(len(tokens), -1)).reshape(tokens.shape)
        return tokens + self.pos_embed


def build_featurizer(config, index: int) -> nn.Module:
    """Featurizer ``index`` (0 = ``featurizer``, 1 = ``fused_featurizer``) of an OpenVLAConfig."""
    kwargs = dict(config.featurizer_kwargs[index])
    if config.featurizer_type == "conv":
        return ConvFeaturizer(img_size=config.image_sizes[index], **kwargs)
    return timm_vit(
        config.timm_model_ids[index],
        config.image_sizes[index],
        config.timm_override_act_layers[index],
        **kwargs,
    )


def patch_features(featurizer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch tokens ``(B, N, D)`` of one featurizer (second-to-last ViT block, or the CNN output)."""
    if isinstance(featurizer, ConvFeaturizer):
        return featurizer(x)
    out = featurizer.get_intermediate_layers(x, n={len(featurizer.blocks) - 2})
    return out[0] if isinstance(out, (list, tuple)) else out  # timm 0.9 returned a tuple, timm 1.x a list


def unused_module_prefixes(featurizer: nn.Module) -> list[str]:
    """Submodules of a timm ViT that exist in the checkpoint but never run (last block, norms, attn_pool)."""
    if isinstance(featurizer, ConvFeaturizer):
        return []
    names = [f"blocks.{len(featurizer.blocks) - 1}"]
    for name in ("norm", "fc_norm", "attn_pool", "head"):
        mod = getattr(featurizer, name, None)
        if isinstance(mod, nn.Module) and any(True for _ in mod.parameters()):
            names.append(name)
    return names
