"""Supervised fine-tuning of OpenVLA on demonstrations: next-token cross-entropy on the 7 action tokens.

Reads top to bottom like a cleanrl script: the config (one docstring per field), then :func:`train` — model, data,
optimiser, the loop (loss on the action tokens only, gradient accumulation, AdamW), checkpoints, in-training
evaluation. The loss helpers above it are shared with tests.

Sequence per sample (OpenVLA): ``[BOS] [image patches] [prompt ... "Out:" "▁"] [a_1 ... a_7]``; the logits at the
position before each action token predict it. The softmax is over the 256 action ids only — the same constrained
distribution :meth:`OpenVLAForActionPrediction.generate_actions` decodes from. ``label_sigma > 0`` replaces the
one-hot target by a Gaussian over neighbouring bins (σ in bins), which gives credit for near misses (DESIGN §8).

Run directory (``out``)::

    config.json            this config (written before any work)
    metrics.csv            step, samples, loss, token accuracy, |Δa| (normalised), lr, samples/s, wall time
    eval.csv               in-training evaluations: step, variant, n, successes, rate, Wilson CI (one row per
                           variant of ``eval_suite``, from the evaluation's own summary)
    checkpoints/step_XXXXXX/   HF OpenVLA folder (merged weights) + dataset_statistics.json
                               + adapter/ (LoRA runs) + trainer_state.pt (optimiser, step, RNG)
    final/                 the last checkpoint (loadable by ``--policy openvla:<out>/final``)
    tb/                    TensorBoard events, when tensorboard is installed
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

try:  # only the CLI reads the tyro markers below; benchmarks/gpu_openvla.py imports this module without tyro
    import tyro
except ImportError:  # pragma: no cover - exercised by tests/test_gpu_benchmark.py
    tyro = None

from vla_gen_bench.cameras import CameraName
from vla_gen_bench.options import PolicyOptions


@dataclass(frozen=True)
class SFTConfig:
    """One SFT run."""

    demos: tyro.conf.Suppress[Path]
    """Demonstration folder written by 'vgb collect-demos' (train-baseline: the recipe's --collect.out)."""
    out: Path
    """Run directory (created; an existing one is resumed from its last checkpoint)."""
    init: str = "micro"
    """Starting point: a model preset (micro, tiny, tiny-conv, openvla-7b: random init) or a checkpoint folder."""
    init_seed: int = 0
    """Seed of a preset's random initialisation."""
    featurizer: str | None = None
    """With a preset: 'conv' swaps each ViT for the small CNN featurizer (same image size and patch grid, as
    tiny-conv does for tiny; DESIGN §8), None keeps the preset's."""
    image_size: int | None = None
    """With featurizer='conv': the input size in pixels (the patch grid stays the preset's, e.g. 4x4 for micro),
    so objects span more pixels without more tokens; None keeps the preset's."""
    conv_coords: bool = False
    """With featurizer='conv': CoordConv input (x, y channels), for localising objects within a patch."""
    conv_keypoints: int = 0
    """With featurizer='conv': > 0 replaces the patch grid by this many spatial soft-argmax keypoint tokens per
    image (each = its expected (x, y) on a 16x16 feature map + the features pooled there); 0 = patch tokens."""
    conv_batchnorm: bool = False
    """With featurizer='conv': batch-normalise the visual tokens (each token and channel over the batch), so the
    image-dependent signal enters the language model at unit scale from the start."""
    patch_grid: int | None = None
    """With featurizer='conv': patches per side (e.g. 8 = 64 tokens per image; more spatial detail for the Llama,
    ~2x its cost); None keeps the preset's grid (4 for micro)."""
    single_featurizer: bool = False
    """With featurizer='conv': one CNN instead of OpenVLA's fused pair (DINOv2 + SigLIP stand-ins that both see the
    same image): half the vision compute per sample; the checkpoint says use_fused_vision_backbone=false."""
    num_demos: int | None = None
    """Use only the first N episodes of the dataset (None: all)."""
    extra_demos: tuple[Path, ...] = ()
    """More dataset folders trained on together with ``demos`` (all their episodes), e.g. the DAgger data that
    'vgb collect-demos --learner' writes; the action statistics cover every step used."""
    extra_until_close: int | None = None
    """Keep an ``extra_demos`` episode only up to this many steps after its first label that closes the gripper: the
    learner's reach and grasp with the demonstrator's corrections, without its carry and place (which the
    demonstrations show); None keeps every step."""
    idle_min_translation: float | None = None
    """Re-filter the demonstrations at load time with RL4VLA's idle-action filter at these thresholds (translation in
    m; gripper changes always kept; the dataset's success truncation kept), instead of the keep mask stored at
    collection. None = the stored mask. Small thresholds (2 mm) drop only the motionless holds, e.g. while the
    gripper closes, which otherwise teach a policy that "near the object, standing still" is a likely action."""
    idle_min_rotation: float = 0.06
    """Rotation threshold (rad) of that filter."""
    lora_rank: int = 32
    """LoRA rank (OpenVLA's recipe: 32, alpha = min(rank, 16)); 0 = full fine-tune (fine for the small presets)."""
    lora_scope: str = "all-linear"
    """Which linear layers get adapters: all-linear, llm, llm+projector."""
    lr: float = 5e-4
    """AdamW learning rate (constant after warm-up; RL4VLA: 5e-4 with LoRA)."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up (optimizer steps)."""
    cosine: bool = False
    """Cosine decay to 10 % of lr over max_steps after the warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    batch_size: int = 8
    """Samples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (effective batch = batch_size x grad_accum)."""
    max_steps: int = 1000
    """Optimizer steps."""
    time_budget_min: float | None = None
    """Stop (and save) after this many minutes of training, whatever max_steps says."""
    label_sigma: float = 0.0
    """Gaussian soft labels over neighbouring bins, σ in bins (0 = hard one-hot labels)."""
    prefix_noise: float = 0.0
    """Probability of replacing each teacher-forced action token *in the input* by a random one (targets
    unchanged): trains the model to read each dimension from the image rather than from the previous dimensions'
    true values, which it does not have when it decodes its own (0 = plain teacher forcing, as OpenVLA)."""
    gripper_weight: float = 1.0
    """Weight of the gripper token's cross-entropy relative to the six motion tokens (1 = OpenVLA's plain mean).
    The open/close switch is one frame per phase but decides the episode."""
    aux_state: float = 0.0
    """Weight of an auxiliary loss (0 = off, as OpenVLA): a linear head on the vision features regresses the
    standardised privileged state of each demo step (joint angles, finger width, TCP pose, the object's and the
    receptacle's initial xy). Training-only: the head is not part of the checkpoint, the policy still sees only the
    image and the instruction. It gives the from-scratch featurizer a dense signal for *where* things are."""
    action_chunk: int = 1
    """Actions predicted per image (ACT / OpenVLA-OFT chunking): the labels are the demonstrator's next
    ``action_chunk`` actions (7 tokens each), the checkpoint records it, and the policy executes the chunk open-loop.
    1 = OpenVLA. With ``prefix_noise = 1`` every token is predicted from the image and prompt alone (parallel
    decoding in effect). RL fine-tuning (PPO/GRPO/DPO) takes each chunk as one decision."""
    execute: int = 0
    """With action_chunk > 1: how many actions of each chunk the policy runs before decoding the next chunk from a
    new image (receding horizon), recorded in the checkpoint (``vgb.execute``) as its default for ``vgb evaluate``
    and the in-training evaluation (``--policy-arg execute=k`` still overrides it); 0 = the whole chunk."""
    shift_aug: int = 0
    """Random image shift of up to this many pixels (replicate padding; 0 = no augmentation, as RL4VLA's SFT)."""
    grad_clip: float = 1.0
    """Clip the gradient norm (0 = off)."""
    save_every: int = 500
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep only the newest N step checkpoints (final/ is kept anyway)."""
    log_every: int = 20
    """Metrics row every this many steps."""
    eval_every: int = 0
    """In-training evaluation every this many steps (0: only at the end if eval_episodes > 0)."""
    eval_episodes: int = 0
    """Episodes per in-training evaluation (0 = none)."""
    eval_suite: str = "ind"
    """Variants for in-training evaluation (training pools: 'ind')."""
    eval_seeds: tuple[int, ...] = (500,)
    """Manifest seeds of in-training evaluation; disjoint from the test seeds (0-2) and the demo seeds."""
    eval_camera: CameraName = "fast"
    """Camera profile for in-training evaluation: the one the demos were collected with."""
    eval_policy: PolicyOptions = field(default_factory=PolicyOptions)
    """Options of the evaluated policy (``temperature``: not given = greedy; the tiny recipes evaluate at RL4VLA's
    0.6); its device is ``device`` unless given here."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda:0 ..."""
    dtype: str = "auto"
    """auto = bf16 autocast on CUDA, fp32 on CPU; or float32 / bfloat16."""
    threads: int = 0
    """torch threads on CPU (0: leave torch's setting / OMP_NUM_THREADS)."""
    seed: int = 0
    """Data order and augmentation seed."""
    unnorm_key: str | None = None
    """Key of the dataset statistics in the checkpoint (default: the dataset's key, 'vgb_demos')."""
    tensorboard: bool = True
    """Also write TensorBoard events when tensorboard is installed."""
    extra: tyro.conf.Suppress[dict[str, Any]] = field(default_factory=dict)
    """Free-form notes recorded in config.json (e.g. the recipe name)."""


# ---------------------------------------------------------------------------------------------- loss
def corrupt_prefix(action_tokens, prob: float, action_begin: int, n_bins: int, rng: np.random.Generator):
    """A copy of ``(B, K)`` action tokens where each one is replaced, with probability ``prob``, by a uniformly
    random action token: the teacher-forced prefix then stops being a shortcut (a model that reads the gripper off
    the true ``dz`` token decodes it from its own noisy ``dz`` at evaluation)."""
    import torch

    if prob <= 0:
        return action_tokens
    b, k = action_tokens.shape
    hit = torch.from_numpy(rng.random((b, k)) < prob)
    rand = torch.from_numpy(rng.integers(0, n_bins, (b, k))) + action_begin
    return torch.where(hit, rand.to(action_tokens.dtype), action_tokens)


def soft_targets(bins, n_bins: int, sigma: float):
    """``(...,)`` bin indices -> ``(..., n_bins)`` Gaussian label distributions (one-hot when sigma == 0)."""
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return F.one_hot(bins, n_bins).float()
    j = torch.arange(n_bins, device=bins.device, dtype=torch.float32)
    w = torch.exp(-0.5 * ((j - bins[..., None].float()) / sigma) ** 2)
    return w / w.sum(-1, keepdim=True)


def action_token_loss(
    network,
    pixel_values,
    input_ids,
    attention_mask,
    action_tokens,
    label_sigma: float = 0.0,
    input_action_tokens=None,
    dim_weights=None,
):
    """Cross-entropy of the action tokens under the constrained (action-ids-only) softmax, teacher-forced.

    ``input_action_tokens`` (default: ``action_tokens``) are the tokens fed as the teacher-forced prefix; passing a
    corrupted copy (``corrupt_prefix``) trains against exposure bias while the targets stay ``action_tokens``.
    ``dim_weights`` (``(K,)``, default all ones) weights each action dimension's cross-entropy; the loss stays a
    weighted mean, so all-equal weights give the plain mean.

    Returns:
        ``(loss, stats)``: a scalar tensor and ``{"acc": token accuracy, "bin_err": mean |argmax - target| in bins}``.
    """
    import torch
    import torch.nn.functional as F

    dev = network.device
    action_tokens = action_tokens.to(dev)
    k = action_tokens.shape[1]
    fed = action_tokens if input_action_tokens is None else input_action_tokens.to(dev)
    ids = torch.cat([input_ids.to(dev), fed], 1)
    mask = torch.cat([attention_mask.to(dev), torch.ones_like(action_tokens)], 1)
    embeds, mask, pos = network.build_inputs(pixel_values, ids, mask)
    hidden = network.run_language_model(embeds, mask, pos).last_hidden_state
    logits = network.action_logits(hidden[:, -(k + 1) : -1])  # (b, k, n_bins) float32
    target = action_tokens - network.action_begin  # (b, k) bin index
    logp = F.log_softmax(logits, -1)
    ce = -(soft_targets(target, logits.shape[-1], label_sigma) * logp).sum(-1)  # (b, k)
    if dim_weights is None:
        loss = ce.mean()
    else:
        w = torch.as_tensor(dim_weights, device=ce.device, dtype=ce.dtype)
        loss = (ce * w).sum(-1).mean() / w.sum()
    with torch.no_grad():
        pred = logits.argmax(-1)
        stats = {"acc": (pred == target).float().mean().item(),
                 "bin_err": (pred - target).abs().float().mean().item()}  # fmt: skip
    return loss, stats


def heldout_metrics(vla, dataset, key: str | None = None, shuffle_images: bool = False, batch_size: int = 64,
                    seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Teacher-forced hard-label cross-entropy and mean |argmax - target| (bins, per action dim) on ``dataset``,
    and the same error for greedy free decoding (``decoded_bin_err_per_dim``: each token conditioned on the model's
    own previous tokens, as at evaluation; a large gap to the teacher-forced error is exposure bias).

    With ``shuffle_images`` every image is paired with another sample's prompt and actions: the gap to the
    unshuffled numbers measures how much the policy's predictions depend on what it sees.
    """
    import torch
    import torch.nn.functional as F

    net = vla.network.eval()
    batcher = Batcher(vla, key or vla.resolve_unnorm_key(None))
    gen = torch.Generator().manual_seed(seed)
    ce, err, dec = [], [], []
    with torch.no_grad():
        for s in range(0, len(dataset), batch_size):
            b = batcher([dataset[i] for i in range(s, min(s + batch_size, len(dataset)))])
            pv = b["pixel_values"]
            if shuffle_images:
                pv = pv[torch.randperm(len(pv), generator=gen)]
            tok = b["action_tokens"].to(net.device)
            k = tok.shape[1]
            ids = torch.cat([b["input_ids"].to(net.device), tok], 1)
            mask = torch.cat([b["attention_mask"].to(net.device), torch.ones_like(tok)], 1)
            embeds, mask, pos = net.build_inputs(pv, ids, mask)
            logits = net.action_logits(
                net.run_language_model(embeds, mask, pos).last_hidden_state[:, -(k + 1) : -1]
            )
            target = tok - net.action_begin
            ce.append(F.cross_entropy(logits.transpose(1, 2), target, reduction="none"))  # (b, k)
            err.append((logits.argmax(-1) - target).abs().float())
            # what the policy does at evaluation: greedy decoding from its own previous tokens
            free = net.generate_actions(pv, b["input_ids"].to(net.device), b["attention_mask"].to(net.device),
                                        n_tokens=k).tokens - net.action_begin  # fmt: skip
            dec.append((free - target).abs().float())
    ce_t, err_t, dec_t = torch.cat(ce), torch.cat(err), torch.cat(dec)
    return {"n": len(dataset), "ce": round(ce_t.mean().item(), 4),
            "ce_per_dim": [round(v, 4) for v in ce_t.mean(0).tolist()],
            "bin_err_per_dim": [round(v, 2) for v in err_t.mean(0).tolist()],
            "decoded_bin_err_per_dim": [round(v, 2) for v in dec_t.mean(0).tolist()],
            "shuffled_images": shuffle_images}  # fmt: skip


class Batcher:
    """Turns dataset items into model inputs: prompt ids (cached per instruction), pixels, action tokens."""

    def __init__(self, vla, stats_key: str, shift_aug: int = 0):
        self.vla = vla
        self.stats = vla.action_stats(stats_key)
        self.shift_aug = shift_aug
        self._ids: dict[str, list[int]] = {}

    def _shift(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.shift_aug
        h, w = img.shape[:2]
        pad = np.pad(img, ((s, s), (s, s), (0, 0)), mode="edge")
        dy, dx = rng.integers(0, 2 * s + 1, size=2)
        return pad[dy : dy + h, dx : dx + w]

    def __call__(self, items: list[dict[str, Any]], rng: np.random.Generator | None = None) -> dict[str, Any]:
        import torch

        images = [it["image"] for it in items]
        if self.shift_aug and rng is not None:
            images = [self._shift(im, rng) for im in images]
        ids = []
        for it in items:
            text = it["instruction"]
            if text not in self._ids:
                self._ids[text] = self.vla.tokenizer.prompt_ids(text)
            ids.append(self._ids[text])
        t = max(len(i) for i in ids)
        pad = self.vla.tokenizer.pad_token_id
        if "chunk" in items[0]:  # (B, chunk, 7) -> (B, chunk * 7) tokens, action after action
            actions = np.stack([it["chunk"] for it in items])
        else:
            actions = np.stack([it["action"] for it in items])
        tokens = self.vla.action_tokenizer.encode(self.stats.normalize(actions)).reshape(len(items), -1)
        return {
            "pixel_values": torch.from_numpy(self.vla.processor(images)),
            "input_ids": torch.tensor([[pad] * (t - len(i)) + i for i in ids], dtype=torch.long),
            "attention_mask": torch.tensor(
                [[0] * (t - len(i)) + [1] * len(i) for i in ids], dtype=torch.long
            ),
            "action_tokens": torch.from_numpy(tokens),
        }


def batch_indices(n: int, batch_size: int, micro_step: int, seed: int) -> np.ndarray:
    """Dataset indices of micro-batch ``micro_step``: consecutive slices of per-epoch permutations, a pure
    function of its arguments (so a resumed run sees exactly the batches it would have seen)."""
    start = micro_step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, off = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.extend(perm[off : off + batch_size - len(out)].tolist())
    return np.asarray(out, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- checkpoints
def init_from_preset(preset: str, out: Path, seed: int = 0, featurizer: str | None = None,
                     image_size: int | None = None, patch_grid: int | None = None,
                     conv_coords: bool = False, conv_keypoints: int = 0,
                     conv_batchnorm: bool = False, single_featurizer: bool = False,
                     device: str = "cpu") -> Path:  # fmt: skip
    """A random-init checkpoint of ``preset``; ``featurizer='conv'`` swaps the ViTs for the CNN featurizer (at
    ``image_size`` pixels, with the preset's patch grid)."""
    from dataclasses import replace

    from vla_gen_bench.models.checkpoint import init_checkpoint, save_checkpoint
    from vla_gen_bench.models.modeling import OpenVLA, build_model
    from vla_gen_bench.models.presets import get_preset
    from vla_gen_bench.models.processor import ImageProcessor
    from vla_gen_bench.models.tokenizer import build_tokenizer

    p = get_preset(preset)
    conv_opts = (image_size is not None or patch_grid is not None or conv_coords or conv_keypoints or conv_batchnorm
                 or single_featurizer)  # fmt: skip
    if conv_opts and featurizer != "conv":
        raise ValueError(
            "image_size, patch_grid and the conv_* options need featurizer='conv' (the ViTs are fixed)"
        )
    if featurizer is None or featurizer == p.config.featurizer_type:
        return init_checkpoint(preset, out, seed=seed, overwrite=True, device=device)
    if featurizer != "conv":
        raise ValueError(f"unknown featurizer {featurizer!r}; choose 'conv' or leave it unset")
    old = p.config.featurizer_kwargs
    size = image_size or p.config.image_sizes[0]
    # keypoints: soft-argmax over a 16x16 feature map; patches: the preset's grid unless patch_grid says otherwise
    grid = 16 if conv_keypoints else patch_grid or p.config.image_sizes[0] // old[0].get("patch_size", 16)
    if size % grid or (size // grid) & (size // grid - 1):
        raise ValueError(f"patch_grid {grid} must divide image_size {size} into power-of-2 patches")
    extra: dict[str, Any] = {"coords": True} if conv_coords else {}
    if conv_keypoints:
        extra["keypoints"] = int(conv_keypoints)
    if conv_batchnorm:
        extra["batchnorm"] = True
    kw = tuple({"patch_size": size // grid, "embed_dim": k.get("embed_dim", 96), "widths": [32, 64, 96, 96],
                **extra} for k in old)  # fmt: skip
    tag = (f"{size if image_size else ''}{f'g{grid}' if patch_grid else ''}{'xy' if conv_coords else ''}"
           f"{f'kp{conv_keypoints}' if conv_keypoints else ''}{'bn' if conv_batchnorm else ''}")  # fmt: skip
    n = 1 if single_featurizer else len(old)
    single = (
        {
            "use_fused_vision_backbone": False,
            "arch_specifier": "no-align+gelu-mlp",
            "timm_model_ids": p.config.timm_model_ids[:1],
            "timm_override_act_layers": p.config.timm_override_act_layers[:1],
        }
        if single_featurizer
        else {}
    )
    config = replace(p.config, featurizer_type="conv", featurizer_kwargs=kw[:n], image_sizes=(size,) * n,
                     preset=f"{preset}+conv{tag}{'x1' if single_featurizer else ''}", **single)  # fmt: skip
    tokenizer = build_tokenizer(config.tokenizer_vocab_size, config.n_action_bins)
    vla = OpenVLA(build_model(config, seed=seed), config, tokenizer, ImageProcessor.from_config(config))
    return save_checkpoint(vla, out, dtype=p.dtype)


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((Path(out) / "checkpoints").glob("step_*"))
    ckpts = [c for c in ckpts if (c / "trainer_state.pt").is_file()]
    return ckpts[-1] if ckpts else None


def save_training_checkpoint(
    vla, model, optimizer, step: int, samples: int, out: Path, stats: dict, extra: dict
):
    """HF folder (merged) + statistics + adapter + trainer state; written to a temp folder, then renamed."""
    import torch

    from vla_gen_bench.models.checkpoint import save_checkpoint
    from vla_gen_bench.training.demos import STATS_NAME

    final = Path(out) / "checkpoints" / f"step_{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(vla, tmp)
    (tmp / STATS_NAME).write_text(json.dumps(stats, indent=2) + "\n")
    if hasattr(model, "peft_config"):
        from vla_gen_bench.models.lora import save_lora

        save_lora(model, tmp / "adapter")
        (tmp / "adapter" / STATS_NAME).write_text(json.dumps(stats, indent=2) + "\n")
    trainable = {k: v.detach().cpu() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach().cpu() for k, v in model.named_buffers()}  # batch-norm running statistics
    torch.save({"step": step, "samples": samples, "trainable": trainable, "buffers": buffers,
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(), **extra}, tmp / "trainer_state.pt")  # fmt: skip
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _prune(out: Path, keep: int) -> None:
    ckpts = sorted(c for c in (Path(out) / "checkpoints").glob("step_*") if not c.name.endswith(".tmp"))
    for c in ckpts[: max(0, len(ckpts) - keep)]:
        shutil.rmtree(c, ignore_errors=True)


def _publish_final(ckpt: Path, out: Path) -> Path:
    final = Path(out) / "final"
    tmp = Path(out) / "final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ckpt, tmp, ignore=shutil.ignore_patterns("trainer_state.pt"))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def evaluate_checkpoint(ckpt: Path, out: Path, cfg: SFTConfig, episodes: int) -> list[dict[str, Any]]:
    """Score a checkpoint with the evaluation API (in-process, one env); one row per variant of the suite, with
    the numbers of the evaluation's report (:func:`vla_gen_bench.eval.stats.summarize`)."""
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate

    run = evaluate(Evaluate(policy=f"openvla:{ckpt}", out=out, suite=cfg.eval_suite, episodes=episodes,
                            seeds=cfg.eval_seeds, camera=cfg.eval_camera, videos=1, report=True,
                            policy_options=cfg.eval_policy.with_defaults(device=cfg.device, fingerprint=False)))  # fmt: skip
    from vla_gen_bench.eval.report import load_run

    return [{"variant": v.variant, "n": v.n, "successes": v.successes, "rate": round(v.rate, 4),
             "ci_low": round(v.ci_low, 4), "ci_high": round(v.ci_high, 4), "run": str(run)}
            for v in load_run(run).summary().variants]  # fmt: skip


# ---------------------------------------------------------------------------------------------- training
def train(cfg: SFTConfig, progress: bool = True) -> Path:
    """Run (or resume) SFT; returns the folder of the final checkpoint."""
    import torch
    from rich.console import Console

    from vla_gen_bench.models.checkpoint import load_openvla, resolve_device
    from vla_gen_bench.models.presets import PRESETS
    from vla_gen_bench.training.dataset import DemoDataset

    console = Console(stderr=True, soft_wrap=True)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_dict = json.loads(json.dumps(asdict(cfg), default=str))
    old_cfg = out / "config.json"
    if old_cfg.is_file():
        prev = json.loads(old_cfg.read_text())
        changed = [k for k in ("demos", "init", "num_demos", "lora_rank", "batch_size", "grad_accum", "seed",
                               "label_sigma", "idle_min_translation", "extra_demos", "extra_until_close")
                   if prev.get(k, [] if k == "extra_demos" else None) != cfg_dict.get(k)]  # fmt: skip
        if prev.get("action_chunk", 1) != cfg.action_chunk:
            changed.append("action_chunk")
        if changed and latest_checkpoint(out) is not None:
            raise ValueError(f"{out} holds a run with different {', '.join(changed)}; use another --out to start "
                             "afresh or the same options to resume")  # fmt: skip
    (out / "config.json").write_text(json.dumps(cfg_dict, indent=2) + "\n")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    autocast_dtype = None
    if device.type == "cuda" and cfg.dtype in ("auto", "bfloat16", "bf16"):
        autocast_dtype = torch.bfloat16

    # --- data: demonstrations (training pools only: collect-demos refused anything else) ---------------------------
    refilter = None
    if cfg.idle_min_translation is not None:
        from vla_gen_bench.training.demos import IdleFilter

        hold = _read_card(cfg.demos).get("config", {}).get("filter", {}).get("success_hold", 6)
        refilter = IdleFilter(min_translation=cfg.idle_min_translation, min_rotation=cfg.idle_min_rotation,
                              success_hold=int(hold))  # fmt: skip
    data = DemoDataset(cfg.demos, max_episodes=cfg.num_demos, filter=refilter, chunk=cfg.action_chunk,
                       extra=cfg.extra_demos, extra_until_close=cfg.extra_until_close)  # fmt: skip
    card = data.card()
    for c in [card] + [_read_card(r) for r in cfg.extra_demos]:
        if c:
            _check_training_card(c)
    key = cfg.unnorm_key or card.get("config", {}).get("key") or "vgb_demos"
    stats = data.statistics(key)
    console.print(f"data: {data.num_episodes} episodes, {len(data)} steps from "
                  f"{', '.join(map(str, [cfg.demos, *cfg.extra_demos]))}")  # fmt: skip

    # --- model: a preset (random init) or a checkpoint, with the dataset's statistics as its only norm_stats -------
    if cfg.init in PRESETS:
        base = out / "init"
        if not (base / "config.json").is_file():
            init_from_preset(
                cfg.init,
                base,
                seed=cfg.init_seed,
                featurizer=cfg.featurizer,
                image_size=cfg.image_size,
                patch_grid=cfg.patch_grid,
                conv_coords=cfg.conv_coords,
                conv_keypoints=cfg.conv_keypoints,
                conv_batchnorm=cfg.conv_batchnorm,
                single_featurizer=cfg.single_featurizer,
                device=str(device),
            )
    else:
        base = Path(cfg.init)
    vla = load_openvla(base, device=device, dtype="float32" if device.type == "cpu" else "auto")
    vla.config = replace(
        vla.config.with_norm_stats(stats), action_chunk=cfg.action_chunk, execute=cfg.execute
    )
    model = vla.model
    if cfg.lora_rank > 0:
        from vla_gen_bench.models.lora import attach_lora

        model = attach_lora(model, r=cfg.lora_rank, scope=cfg.lora_scope)
        vla.model = model
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    network = vla.network
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    aux = AuxStateHead.build(network, data, device) if cfg.aux_state > 0 else None
    optimizer = torch.optim.AdamW(params + (list(aux.head.parameters()) if aux else []), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)  # fmt: skip
    dim_weights = (
        None if cfg.gripper_weight == 1.0 else ([1.0] * 6 + [cfg.gripper_weight]) * cfg.action_chunk
    )  # 7 dims per action, gripper last
    batcher = Batcher(vla, key, shift_aug=cfg.shift_aug)

    def lr_at(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        if cfg.cosine:
            frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
            return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        return cfg.lr

    # --- resume -------------------------------------------------------------------------------------------------------
    step, samples, wall_before = 0, 0, 0.0
    last = latest_checkpoint(out)
    if last is not None:
        state = torch.load(last / "trainer_state.pt", map_location="cpu", weights_only=False)
        named = dict(model.named_parameters())
        missing = set(named[k] for k in state["trainable"]) ^ set(params)
        if missing:
            raise ValueError(f"{last} does not match this model's trainable parameters")
        with torch.no_grad():
            for k, v in state["trainable"].items():
                named[k].copy_(v.to(named[k].device))
            named_buffers = dict(model.named_buffers())
            for k, v in state.get("buffers", {}).items():
                named_buffers[k].copy_(v.to(named_buffers[k].device))
        if aux is not None:
            if "aux_head" not in state:
                raise ValueError(f"{last} was trained without aux_state; resume with the same options")
            aux.head.load_state_dict(state["aux_head"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, samples, wall_before = state["step"], state["samples"], state.get("wall_s", 0.0)
        console.print(f"resumed from {last} at step {step}")

    metrics_path = out / "metrics.csv"
    fields = ["step", "samples", "loss", "acc", "bin_err", "aux_loss", "lr", "samples_per_s", "wall_s"]
    if not metrics_path.is_file():
        with open(metrics_path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
    elif last is not None:  # rows logged after the checkpoint we resume from are recomputed: drop them
        rows = list(csv.reader(open(metrics_path)))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with open(metrics_path, "w", newline="") as f:
            csv.writer(f).writerows(kept)
    writer = None
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except ImportError:
            writer = None
    console.print(f"model {cfg.init} ({f'LoRA r={cfg.lora_rank}' if cfg.lora_rank else 'full'}): "
                  f"{n_train / 1e6:.2f} M trainable parameters on {device}; writing to {out}")  # fmt: skip

    # --- the loop --------------------------------------------------------------------------------------------------
    model.train()
    t_start = time.perf_counter()
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    window = {"loss": 0.0, "acc": 0.0, "bin_err": 0.0, "aux_loss": 0.0, "n": 0, "samples": 0,
              "t": time.perf_counter()}  # fmt: skip
    ckpt = None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (TextColumn("sft"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*cols, console=console, disable=not progress) as bar:
        task = bar.add_task("sft", total=cfg.max_steps, completed=step, loss="-")
        while step < cfg.max_steps:
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            for m in range(cfg.grad_accum):
                micro = step * cfg.grad_accum + m
                idx = batch_indices(len(data), cfg.batch_size, micro, cfg.seed)
                rng = np.random.default_rng([cfg.seed, micro, 7])
                batch = batcher([data[int(i)] for i in idx], rng)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    fed = corrupt_prefix(batch["action_tokens"], cfg.prefix_noise, network.action_begin,
                                         network.action_end - network.action_begin, rng)  # fmt: skip
                    loss, st = action_token_loss(network, batch["pixel_values"], batch["input_ids"],
                                                 batch["attention_mask"], batch["action_tokens"], cfg.label_sigma,
                                                 input_action_tokens=fed, dim_weights=dim_weights)  # fmt: skip
                    aux_loss = aux.loss(idx) if aux is not None else None
                total = loss if aux_loss is None else loss + cfg.aux_state * aux_loss
                (total / cfg.grad_accum).backward()
                window["aux_loss"] += aux_loss.item() if aux_loss is not None else 0.0
                window["loss"] += loss.item()
                window["acc"] += st["acc"]
                window["bin_err"] += st["bin_err"]
                window["n"] += 1
                window["samples"] += len(idx)
                samples += len(idx)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            step += 1
            elapsed = time.perf_counter() - t_start
            out_of_time = budget_s is not None and elapsed >= budget_s
            if step % cfg.log_every == 0 or step == cfg.max_steps or out_of_time:
                now = time.perf_counter()
                row = {"step": step, "samples": samples, "loss": window["loss"] / window["n"],
                       "acc": window["acc"] / window["n"], "bin_err": window["bin_err"] / window["n"],
                       "aux_loss": window["aux_loss"] / window["n"],
                       "lr": lr_at(step - 1), "samples_per_s": window["samples"] / max(now - window["t"], 1e-9),
                       "wall_s": wall_before + elapsed}  # fmt: skip
                with open(metrics_path, "a", newline="") as f:
                    csv.writer(f).writerow(
                        [f"{row[k]:.6g}" if isinstance(row[k], float) else row[k] for k in fields]
                    )
                if writer is not None:
                    for k in ("loss", "acc", "bin_err", "lr", "samples_per_s"):
                        writer.add_scalar(f"train/{k}", row[k], step)
                bar.update(task, completed=step, loss=f"{row['loss']:.3f}")
                if not progress:
                    console.print(f"step {step} loss {row['loss']:.4f} acc {row['acc']:.3f} "
                                  f"bin_err {row['bin_err']:.2f} {row['samples_per_s']:.1f} samples/s")  # fmt: skip
                window = {
                    "loss": 0.0,
                    "acc": 0.0,
                    "bin_err": 0.0,
                    "aux_loss": 0.0,
                    "n": 0,
                    "samples": 0,
                    "t": now,
                }
            done = step == cfg.max_steps or out_of_time
            if step % cfg.save_every == 0 or done:
                model.eval()
                ckpt = save_training_checkpoint(vla, model, optimizer, step, samples, out, stats,
                                                _extra_state(wall_before + elapsed, aux))  # fmt: skip
                _prune(out, cfg.keep_checkpoints)
                model.train()
            evaluate_now = cfg.eval_episodes > 0 and ((cfg.eval_every and step % cfg.eval_every == 0) or done)
            if evaluate_now:
                if ckpt is None or not ckpt.name.endswith(f"{step:06d}"):
                    model.eval()
                    ckpt = save_training_checkpoint(vla, model, optimizer, step, samples, out, stats,
                                                    _extra_state(wall_before + elapsed, aux))  # fmt: skip
                    model.train()
                _log_eval(out, step, evaluate_checkpoint(ckpt, out / "eval" / f"step_{step:06d}", cfg,
                                                          cfg.eval_episodes), console, writer)  # fmt: skip
            if out_of_time:
                console.print(f"time budget of {cfg.time_budget_min} min reached at step {step}")
                break
    if ckpt is None:  # resumed a finished run
        ckpt = latest_checkpoint(out)
    final = _publish_final(ckpt, out)
    if writer is not None:
        writer.close()
    console.print(f"final checkpoint: {final}")
    return final


def _extra_state(wall_s: float, aux) -> dict[str, Any]:
    return {"wall_s": wall_s, **({"aux_head": aux.head.state_dict()} if aux is not None else {})}


class AuxStateHead:
    """The ``aux_state`` loss: a linear head on the flattened vision-backbone output (captured with a forward hook
    during the policy's own forward pass, so it costs no extra vision compute) regressing each step's standardised
    ``[state (16), scene (4)]``; dimensions constant over the dataset are dropped."""

    def __init__(self, head, targets: np.ndarray, captured: dict) -> None:
        self.head, self.targets, self.captured = head, targets, captured  # targets: (N, d) standardised

    @classmethod
    def build(cls, network, data, device) -> AuxStateHead:
        import torch

        targets = np.concatenate([data.states, data.scenes], 1).astype(np.float64)
        mean, std = targets.mean(0), targets.std(0)
        use = std > 1e-4
        backbone = network.vision_backbone
        sizes = network.config.image_sizes
        with torch.no_grad():  # the feature size, from one blank image (the model is in eval mode here)
            probe = torch.zeros(1, 3 * len(sizes), sizes[0], sizes[0], device=device, dtype=network.dtype)
            n_features = backbone(probe).flatten(1).shape[1]
        captured: dict[str, Any] = {}
        backbone.register_forward_hook(lambda mod, inp, out: captured.__setitem__("features", out))
        head = torch.nn.Linear(n_features, int(use.sum())).to(device)
        return cls(head, ((targets - mean) / np.where(use, std, 1.0))[:, use].astype(np.float32), captured)

    def loss(self, idx: np.ndarray):
        """MSE of the head on the features the last forward pass saw, for the dataset steps ``idx`` of its batch."""
        import torch
        import torch.nn.functional as F

        feats = self.captured.pop("features").flatten(1).float()
        target = torch.as_tensor(self.targets[idx], device=feats.device)
        return F.mse_loss(self.head(feats), target)


EVAL_COLUMNS = ("step", "variant", "n", "successes", "rate", "ci_low", "ci_high", "run")


def _log_eval(out: Path, step: int, rows: list[dict[str, Any]], console, writer) -> None:
    """Append one evaluation's rows (one per variant) to ``eval.csv``, TensorBoard and the console."""
    path = out / "eval.csv"
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(EVAL_COLUMNS)
        for row in rows:
            w.writerow([step, *(row[k] for k in EVAL_COLUMNS[1:])])
    for row in rows:
        if writer is not None:
            writer.add_scalar(f"eval/success_rate/{row['variant']}", row["rate"], step)
        console.print(f"eval at step {step}: {row['variant']} {row['successes']}/{row['n']} "
                      f"(Wilson 95 % [{row['ci_low']}, {row['ci_high']}])")  # fmt: skip


def _read_card(root: Path) -> dict[str, Any]:
    from vla_gen_bench.training.demos import CARD_NAME

    p = Path(root) / CARD_NAME
    return json.loads(p.read_text()) if p.is_file() else {}


def _check_training_card(card: dict[str, Any]) -> None:
    """A dataset whose card names a variant must be a training configuration (collect-demos checked each episode;
    this refuses a folder written by something else with a test variant in its card)."""
    from vla_gen_bench.training.demos import training_specs

    c = card.get("config", {})
    if "variant" in c and "seed" in c:
        training_specs(c["variant"], c["seed"], 1)
