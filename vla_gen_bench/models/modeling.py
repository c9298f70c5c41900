"""OpenVLA (Prismatic): fused DINOv2 + SigLIP featurizers, MLP projector, Llama-2, 256-bin action tokens.

Module names equal the official HF checkpoint's (``vision_backbone.featurizer``, ``vision_backbone.fused_featurizer``,
``projector.fc1..fc3``, ``language_model``), so its state dict loads without renaming (see ``checkpoint.py``).

Sequence layout, as in OpenVLA: ``[BOS] [image patches] [prompt tokens ... "Out:" "▁"] [7 action tokens] [</s>]``.
Batches are **left-padded** (pads before BOS), with position ids counted over real tokens only.

Decoding is our own KV-cache loop, constrained to the action tokens: at each step the logits are computed only for
the ``n_bins`` action ids (rows ``[begin, end)`` of ``lm_head``), so the policy distribution is the softmax over those
ids and no other token can be emitted. Greedy takes the arg-max; temperature ``T > 0`` samples from
``softmax(logits / T)`` and reports log-probs under that same distribution (under ``T = 1`` when greedy), which is
what :meth:`OpenVLAForActionPrediction.score_actions` recomputes for PPO.

``decode="unconstrained"`` decodes as the official ``predict_action`` does instead: the arg-max (or a sample) over
the whole vocabulary, so any token can come out, and :meth:`ActionTokenizer.decode_unconstrained` maps ids outside the
action block as the official code does (ids below it to the last bin centre, ids above it to the first). With
trained weights the two agree whenever the model's top token is an action token; random-init models mostly emit
non-action tokens, which unconstrained decoding turns into the last bin.

The value-head input is the last-layer hidden state (after the final RMSNorm, i.e. what ``lm_head`` reads) at the
position whose logits emit the first action token: the last prompt position (the ``"▁"`` separator). It is known
before any action token is sampled; RL4VLA's ``vh_mode="a0"`` reads the same position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla_gen_bench.models.action_tokenizer import ActionStats, ActionTokenizer, resolve_unnorm_key
from vla_gen_bench.models.config import OpenVLAConfig
from vla_gen_bench.models.processor import ImageProcessor
from vla_gen_bench.models.tokenizer import TextTokenizer, format_prompt
from vla_gen_bench.models.vision import build_featurizer, patch_features


class PrismaticVisionBackbone(nn.Module):
    def __init__(self, config: OpenVLAConfig) -> None:
        super().__init__()
        self.use_fused_vision_backbone = config.use_fused_vision_backbone
        self.featurizer = build_featurizer(config, 0)
        self.embed_dim = self.featurizer.embed_dim
        if self.use_fused_vision_backbone:
            self.fused_featurizer = build_featurizer(config, 1)
            self.embed_dim += self.fused_featurizer.embed_dim

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3 * n, S, S)`` channel-stacked images -> ``(B, N, D_total)`` patch features."""
        if not self.use_fused_vision_backbone:
            return patch_features(self.featurizer, pixel_values)
        img, img_fused = torch.split(pixel_values, [3, 3], dim=1)
        a = patch_features(self.featurizer, img)  # (b, n, d1)
        b = patch_features(self.fused_featurizer, img_fused)  # (b, n, d2)
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"fused featurizers give {a.shape[1]} and {b.shape[1]} patches; they must agree")
        return torch.cat([a, b], dim=2)


class PrismaticProjector(nn.Module):
    """``fused-gelu-mlp``: D -> 4D -> llm -> llm with GELUs; ``gelu-mlp``: D -> llm -> llm."""

    def __init__(self, use_fused_vision_backbone: bool, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.use_fused_vision_backbone = use_fused_vision_backbone
        if use_fused_vision_backbone:
            self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
            self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
            self.fc3 = nn.Linear(llm_dim, llm_dim)
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim)
            self.fc2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(F.gelu(self.fc1(x)))
        if self.use_fused_vision_backbone:
            x = self.fc3(F.gelu(x))
        return x


DECODE_MODES = ("actions", "unconstrained")
"""``actions``: only the action tokens can be emitted (vgb's default); ``unconstrained``: any token, as the official
OpenVLA ``predict_action``."""


@dataclass
class GenerateOutput:
    tokens: torch.Tensor  # (b, k) token ids (action ids only, unless decoded unconstrained)
    log_probs: torch.Tensor  # (b, k) float32, under the sampling distribution (T = 1 when greedy)
    value_hidden: torch.Tensor  # (b, d) hidden state at the position that emits the first action token


@dataclass
class ScoreOutput:
    log_probs: torch.Tensor  # (b, k)
    entropy: torch.Tensor  # (b, k) of the constrained distribution at each action position
    logits: torch.Tensor  # (b, k, n_bins) constrained logits (already divided by the temperature)
    value_hidden: torch.Tensor  # (b, d)


class OpenVLAForActionPrediction(nn.Module):
    """The network. Construct with :func:`build_model` (random init) or load with ``checkpoint.load_openvla``."""

    def __init__(self, config: OpenVLAConfig, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        from vla_gen_bench._compat import ensure_torchvision

        ensure_torchvision()
        from transformers import LlamaForCausalLM

        self.config = config
        self.vision_backbone = PrismaticVisionBackbone(config)
        llama = config.llama_config(attn_implementation)
        self.projector = PrismaticProjector(
            config.use_fused_vision_backbone, self.vision_backbone.embed_dim, llama.hidden_size
        )
        self.language_model = LlamaForCausalLM(llama)
        self.action_begin, self.action_end = config.action_token_range

    # --- HF-style accessors (peft's "all-linear" and tied-weight logic look for these) -----------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    @property
    def device(self) -> torch.device:
        return self.language_model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.lm_head.weight.dtype

    # --- building blocks -------------------------------------------------------------------------------------------
    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> projected patch embeddings ``(B, P, d_llm)``."""
        return self.projector(self.vision_backbone(pixel_values.to(self.device, self.dtype)))

    def build_inputs(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Insert the patch embeddings after BOS in left-padded prompts.

        Args:
            pixel_values: ``(B, C, S, S)``.
            input_ids: ``(B, T)`` left-padded, each row ``[pad...] BOS prompt...``.
            attention_mask: ``(B, T)`` 1 on real tokens (None: no padding).

        Returns:
            ``inputs_embeds (B, T + P, d)``, ``attention_mask (B, T + P)``, ``position_ids (B, T + P)``.
        """
        input_ids = input_ids.to(self.device)
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(self.device).long()
        n_pad = t - attention_mask.sum(1)  # (b,)
        ar = torch.arange(t, device=self.device)
        if not torch.equal(attention_mask, (ar[None] >= n_pad[:, None]).long()):
            raise ValueError("input_ids must be left-padded: attention_mask must be 0...0 1...1 in every row")
        patches = self.embed_images(pixel_values)  # (b, p, d)
        p, d = patches.shape[1], patches.shape[2]
        text = self.get_input_embeddings()(input_ids)  # (b, t, d)
        j = torch.arange(t + p, device=self.device)[None]  # (1, t+p)
        k = n_pad[:, None]  # (b, 1) position of BOS
        is_patch = (j > k) & (j <= k + p)  # (b, t+p)
        text_idx = torch.where(j <= k, j, j - p).clamp(0, t - 1)
        patch_idx = (j - k - 1).clamp(0, p - 1)
        embeds = torch.where(
            is_patch[..., None],
            patches.gather(1, patch_idx[..., None].expand(-1, -1, d)),
            text.gather(1, text_idx[..., None].expand(-1, -1, d)),
        )
        mask = torch.where(
            is_patch, torch.ones_like(is_patch, dtype=torch.long), attention_mask.gather(1, text_idx)
        )
        position_ids = (mask.cumsum(1) - 1).clamp(min=0)
        return embeds, mask, position_ids

    def run_language_model(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key_values: Any = None,
        use_cache: bool = False,
    ):
        """The Llama decoder (no lm_head) on embeddings; the mask is dropped when nothing is padded, so the
        attention takes its plain causal path."""
        return self.language_model.model(
            inputs_embeds=embeds,
            attention_mask=None if bool(mask.all()) else mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )

    def action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of the action tokens only: ``(..., d)`` -> ``(..., n_bins)`` float32."""
        w = self.get_output_embeddings().weight[self.action_begin : self.action_end]  # (n_bins, d)
        return F.linear(hidden, w).float()

    def all_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of every row of ``lm_head`` (the padding rows too, as the official decoding sees them), float32."""
        return self.get_output_embeddings()(hidden).float()

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> dict[str, torch.Tensor]:
        """Full multimodal forward.

        Returns:
            ``hidden`` (B, T + P, d) last-layer states after the final norm, ``attention_mask`` (B, T + P) and
            ``logits`` over the whole vocabulary for the last ``logits_to_keep`` positions (all when 0).
        """
        embeds, mask, pos = self.build_inputs(pixel_values, input_ids, attention_mask)
        hidden = self.run_language_model(embeds, mask, pos).last_hidden_state
        keep = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        return {"hidden": hidden, "attention_mask": mask, "logits": self.language_model.lm_head(keep)}

    # --- actions ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_actions(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        n_tokens: int = 7,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        uniforms: torch.Tensor | None = None,
        decode: str = "actions",
    ) -> GenerateOutput:
        """Decode exactly ``n_tokens`` action tokens per row (greedy when ``temperature == 0``).

        Sampling draws from ``generator`` (one stream for the whole batch), or, when ``uniforms`` ``(b, n_tokens)``
        in [0, 1) are given, by inverse CDF with row ``i``'s own numbers: then a row's tokens do not depend on which
        other rows share its batch (a re-batched or resumed evaluation samples the same actions).
        ``decode="unconstrained"`` chooses among all ``lm_head`` rows, as the official ``predict_action`` does
        (see :data:`DECODE_MODES`); the tokens may then be any id.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if decode not in DECODE_MODES:
            raise ValueError(f"unknown decode {decode!r}; choose from {', '.join(DECODE_MODES)}")
        offset = self.action_begin if decode == "actions" else 0
        logits_of = self.action_logits if decode == "actions" else self.all_logits
        if uniforms is not None and tuple(uniforms.shape) != (input_ids.shape[0], n_tokens):
            raise ValueError(
                f"uniforms must have shape ({input_ids.shape[0]}, {n_tokens}), got {tuple(uniforms.shape)}"
            )
        embeds, mask, pos = self.build_inputs(pixel_values, input_ids, attention_mask)
        out = self.run_language_model(embeds, mask, pos, use_cache=True)
        cache, h = out.past_key_values, out.last_hidden_state[:, -1]  # (b, d)
        value_hidden = h
        tokens, log_probs = [], []
        for step in range(n_tokens):
            logits = logits_of(h)  # (b, n_bins), or (b, vocab) unconstrained
            if temperature > 0:
                logp = F.log_softmax(logits / temperature, dim=-1)
                if uniforms is not None:  # inverse CDF: the first bin whose cumulative probability exceeds u
                    cdf = logp.exp().cumsum(-1)  # (b, n_bins)
                    u = uniforms[:, step, None].to(cdf)  # (b, 1)
                    idx = (cdf <= u).sum(-1).clamp(max=cdf.shape[-1] - 1)  # (b,)
                else:
                    idx = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)  # (b,)
            else:
                logp = F.log_softmax(logits, dim=-1)
                idx = logits.argmax(-1)
            tok = idx + offset
            tokens.append(tok)
            log_probs.append(logp.gather(-1, idx[:, None]).squeeze(-1))
            if step == n_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            out = self.run_language_model(
                self.get_input_embeddings()(tok[:, None]), mask, pos, past_key_values=cache, use_cache=True
            )
            cache, h = out.past_key_values, out.last_hidden_state[:, -1]
        return GenerateOutput(torch.stack(tokens, 1), torch.stack(log_probs, 1), value_hidden)

    def score_actions(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        action_tokens: torch.Tensor,
        temperature: float = 1.0,
    ) -> ScoreOutput:
        """Teacher-forced log-probs of given action tokens (differentiable; for PPO / GRPO / DPO).

        Args:
            action_tokens: ``(B, k)`` ids in the action range.
            temperature: the sampling temperature the tokens were drawn with (1.0 for greedy rollouts).
        """
        if temperature <= 0:
            raise ValueError(f"score_actions needs temperature > 0, got {temperature}")
        action_tokens = action_tokens.to(self.device)
        if ((action_tokens < self.action_begin) | (action_tokens >= self.action_end)).any():
            raise ValueError(f"action_tokens must lie in [{self.action_begin}, {self.action_end})")
        k = action_tokens.shape[1]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ids = torch.cat([input_ids.to(self.device), action_tokens], dim=1)
        mask = torch.cat([attention_mask.to(self.device), torch.ones_like(action_tokens)], dim=1)
        embeds, mask, pos = self.build_inputs(pixel_values, ids, mask)
        hidden = self.run_language_model(embeds, mask, pos).last_hidden_state
        h = hidden[:, -(k + 1) : -1]  # (b, k, d): position i predicts action token i
        logits = self.action_logits(h) / temperature  # (b, k, n_bins)
        logp = F.log_softmax(logits, dim=-1)
        chosen = logp.gather(-1, (action_tokens - self.action_begin)[..., None]).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return ScoreOutput(chosen, entropy, logits, h[:, 0])


class ValueHead(nn.Module):
    """RL4VLA's critic head (``vh_mode="a0"``), fed :attr:`GenerateOutput.value_hidden` / ``ScoreOutput.value_hidden``.

    ``hidden -> 512 -> GELU -> 128 -> GELU -> 1`` (no bias on the last layer); Kaiming-normal (fan_out) init for the
    first two layers, N(0, 0.02) for the last. Keep it in float32 (the hidden state is cast to its dtype).
    """

    def __init__(self, hidden_size: int, widths: tuple[int, ...] = (512, 128)) -> None:
        super().__init__()
        dims = (hidden_size, *widths)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            lin = nn.Linear(a, b)
            nn.init.kaiming_normal_(lin.weight, mode="fan_out")
            nn.init.zeros_(lin.bias)
            layers += [lin, nn.GELU()]
        out = nn.Linear(dims[-1], 1, bias=False)
        nn.init.normal_(out.weight, std=0.02)
        self.net = nn.Sequential(*layers, out)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` -> ``(B,)`` values."""
        return self.net(hidden.to(self.net[-1].weight.dtype)).squeeze(-1)


def build_model(
    config: OpenVLAConfig, seed: int = 0, attn_implementation: str = "sdpa"
) -> OpenVLAForActionPrediction:
    """A randomly initialised model (deterministic for a seed): timm's, transformers' and torch's own inits."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = OpenVLAForActionPrediction(config, attn_implementation=attn_implementation)
    return model.eval()


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts per top-level part and in total."""
    out: dict[str, int] = {}
    for name, p in model.named_parameters():
        part = ".".join(name.split(".")[:2]) if name.startswith("vision_backbone") else name.split(".")[0]
        out[part] = out.get(part, 0) + p.numel()
    out["total"] = sum(out.values())
    return out


# --- the bundle users call -----------------------------------------------------------------------------------------
@dataclass
class ActionPrediction:
    actions: np.ndarray  # (b, dim) de-normalised actions, in the dataset's units
    normalized: np.ndarray  # (b, dim) bin centres in [-1, 1]
    tokens: np.ndarray  # (b, dim) action token ids
    log_probs: np.ndarray  # (b, dim)
    value_hidden: torch.Tensor  # (b, d)
    unnorm_key: str


@dataclass
class OpenVLA:
    """Model + tokenizer + image processor + action codec: images and instructions in, actions out."""

    model: nn.Module  # OpenVLAForActionPrediction, or a peft PeftModel wrapping one
    config: OpenVLAConfig
    tokenizer: TextTokenizer
    processor: ImageProcessor
    source: str | None = None

    def __post_init__(self) -> None:
        if self.tokenizer.vocab_size != self.config.tokenizer_vocab_size:
            raise ValueError(
                f"the tokenizer has {self.tokenizer.vocab_size} base tokens but config.json says "
                f"text_config.vocab_size - pad_to_multiple_of = {self.config.tokenizer_vocab_size}; the action "
                "tokens would not line up"
            )
        self.action_tokenizer = ActionTokenizer(self.config.tokenizer_vocab_size, self.config.n_action_bins)

    @property
    def network(self) -> OpenVLAForActionPrediction:
        """The underlying OpenVLAForActionPrediction (through a peft wrapper if there is one)."""
        m = self.model
        while not isinstance(m, OpenVLAForActionPrediction):
            m = m.base_model.model if hasattr(m, "base_model") else m.model
        return m

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def norm_stats(self) -> dict[str, Any]:
        return self.config.norm_stats

    @property
    def chunk(self) -> int:
        """Actions per forward pass (``config.action_chunk``; 1 = OpenVLA)."""
        return int(getattr(self.config, "action_chunk", 1))

    def resolve_unnorm_key(self, unnorm_key: str | None) -> str:
        return resolve_unnorm_key(self.norm_stats, unnorm_key)

    def action_stats(self, unnorm_key: str | None) -> ActionStats:
        return ActionStats.from_norm_stats(self.norm_stats, unnorm_key)

    def prompts(self, instructions: list[str]) -> list[str]:
        return [format_prompt(i) for i in instructions]

    def prepare(self, images, instructions: list[str]) -> dict[str, torch.Tensor]:
        """Images ``(B, H, W, 3)`` uint8 (array or list) and instructions -> model inputs (left-padded)."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images but {len(instructions)} instructions")
        ids = [self.tokenizer.prompt_ids(text) for text in instructions]
        t = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (t - len(i)) + i for i in ids], dtype=torch.long)
        attention_mask = torch.tensor([[0] * (t - len(i)) + [1] * len(i) for i in ids], dtype=torch.long)
        pixel_values = torch.from_numpy(self.processor(images))
        return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}

    @torch.inference_mode()
    def predict_action(
        self,
        images,
        instructions: list[str],
        unnorm_key: str | None = None,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        uniforms: np.ndarray | None = None,
        decode: str = "actions",
    ) -> ActionPrediction:
        """Batched action prediction: constrained decoding of ``dim`` action tokens (7) per action, decoded and
        de-normalised with the statistics of ``unnorm_key`` (required when the checkpoint has several).
        ``uniforms`` ``(b, chunk * dim)`` gives each row its own random numbers for sampling (see
        ``generate_actions``). Actions are ``(b, dim)``, or ``(b, chunk, dim)`` for a chunking checkpoint.
        ``decode="unconstrained"``: any token may be emitted and is decoded as the official ``predict_action``
        decodes it (:data:`DECODE_MODES`)."""
        key = self.resolve_unnorm_key(unnorm_key)
        stats = self.action_stats(key)
        chunk = self.chunk
        inputs = self.prepare(images, instructions)
        out = self.network.generate_actions(
            inputs["pixel_values"],
            inputs["input_ids"],
            inputs["attention_mask"],
            n_tokens=stats.dim * chunk,
            temperature=temperature,
            generator=generator,
            uniforms=None if uniforms is None else torch.as_tensor(np.asarray(uniforms), dtype=torch.float64),
            decode=decode,
        )
        tokens = out.tokens.cpu().numpy()
        if decode == "actions":
            normalized = self.action_tokenizer.decode(tokens)
        else:
            normalized = self.action_tokenizer.decode_unconstrained(tokens)
        if chunk > 1:
            normalized = normalized.reshape(len(normalized), chunk, stats.dim)
        return ActionPrediction(
            actions=stats.denormalize(normalized),
            normalized=normalized,
            tokens=tokens,
            log_probs=out.log_probs.float().cpu().numpy(),
            value_hidden=out.value_hidden,
            unnorm_key=key,
        )
