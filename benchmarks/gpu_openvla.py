"""OpenVLA-7B on one GPU: build time, weight memory, ``predict_action`` latency and a LoRA SFT step, in one run.

Builds a preset (default ``openvla-7b``: DINOv2-L + SigLIP-So400m at 224 px, Llama-2-7B) with random weights
directly on the device, in bf16 on CUDA (fp32 on CPU), with no checkpoint on disk and no download, then measures
(each a median over ``--repeats`` timed calls after ``--warmup`` untimed ones, ``torch.cuda.synchronize()`` before
and after every timed call):

1. environment: library versions, GPU name and total memory;
2. model: parameter count, weight memory (``torch.cuda.memory_allocated`` after the build), build time, and the
   prefill length (image patches + prompt tokens);
3. inference: ``OpenVLA.predict_action`` as the evaluator's policy calls it (greedy, 7 constrained action tokens,
   de-normalised) on random 224x224 uint8 images with "put the red cube on the plate", at each ``--batches`` size:
   latency, actions/s (one 7-D action per image), peak memory. Preprocessing (PIL + numpy on the CPU) is included,
   as the evaluator pays it;
4. LoRA SFT: ``attach_lora(r=32, scope="all-linear")`` as ``training/sft.py`` does, then per ``--train-batches``
   size the step its loop takes on one micro-batch from the real ``Batcher`` (random images, random actions in
   [-1, 1]): ``action_token_loss`` under bf16 autocast, backward, gradient-norm clip at 1, AdamW on the adapter
   weights. Reports trainable parameters, step time, samples/s and peak memory; a size that runs out of GPU
   memory is recorded as OOM.

Results are printed as tables and written to ``--out`` as JSON after every section, so a run that is cut short
keeps what it measured. A section that fails is recorded with its error and the run goes on (exit status 1).
On CPU the memory fields are null; ``--preset micro`` runs in seconds:

    PYTHONPATH=. python3 benchmarks/gpu_openvla.py --out gpu_openvla.json      # CUDA when present, openvla-7b
    PYTHONPATH=. python3 benchmarks/gpu_openvla.py --preset micro --device cpu --repeats 2 --out /tmp/micro.json

Needs torch, transformers, timm (+ torchvision, pillow), peft, tokenizers, numpy and rich; not tyro or the
simulator.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTRUCTION = "put the red cube on the plate"
IMAGE_SIZE = 224
STATS_KEY = "synthetic"
# statistics for random actions in [-1, 1]: dims 0-5 normalised over [-1, 1] (the identity), gripper passed through
SYNTHETIC_STATS = {STATS_KEY: {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}}}
GIB = 1024**3


# --- measuring -----------------------------------------------------------------------------------------------------
def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - t) * 1000)
    return out


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / GIB, 2) if device.type == "cuda" else None


def allocated_gib(device) -> float | None:
    import torch

    return round(torch.cuda.memory_allocated(device) / GIB, 2) if device.type == "cuda" else None


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- sections ------------------------------------------------------------------------------------------------------
def environment(device) -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{
            p: version(p)
            for p in ("torch", "transformers", "peft", "timm", "torchvision", "pillow", "tokenizers")
        },
        "cuda": torch.version.cuda,
        "device": str(device),
        "gpu": None,
        "gpu_total_gib": None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_total_gib"] = round(torch.cuda.get_device_properties(device).total_memory / GIB, 2)
    return env


def build(preset: str, device):
    """A random-init ``OpenVLA`` of ``preset`` built on ``device`` (bf16 on CUDA), with synthetic statistics."""
    import torch

    from vla_gen_bench._compat import ensure_torchvision
    from vla_gen_bench.models.checkpoint import _default_dtype, resolve_dtype
    from vla_gen_bench.models.modeling import OpenVLA, build_model, count_parameters
    from vla_gen_bench.models.presets import get_preset
    from vla_gen_bench.models.processor import ImageProcessor
    from vla_gen_bench.models.tokenizer import build_tokenizer

    t = time.perf_counter()
    ensure_torchvision()
    import timm  # noqa: F401  (imported before the build starts, so that build_s times the build alone)
    from transformers import LlamaForCausalLM  # noqa: F401

    import_s = time.perf_counter() - t

    config = get_preset(preset).config.with_norm_stats(SYNTHETIC_STATS)
    dtype = resolve_dtype("auto", device)
    sync(device)
    t = time.perf_counter()
    with torch.device(device), _default_dtype(dtype):  # every tensor is created on the device, in dtype
        model = build_model(config, seed=0)
    sync(device)
    build_s = time.perf_counter() - t
    tokenizer = build_tokenizer(config.tokenizer_vocab_size, config.n_action_bins)
    vla = OpenVLA(model, config, tokenizer, ImageProcessor.from_config(config))

    with torch.inference_mode():
        inputs = vla.prepare(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8), [INSTRUCTION])
        prefill = int(model.build_inputs(**inputs)[0].shape[1])
    counts = count_parameters(model)
    tensors = [*model.parameters(), *model.buffers()]
    info = {
        "preset": preset,
        "dtype": str(dtype).removeprefix("torch."),
        "params": counts["total"],
        "params_B": round(counts["total"] / 1e9, 3),
        "params_by_part": counts,
        "weights_gib": round(sum(p.numel() * p.element_size() for p in tensors) / GIB, 3),
        "allocated_gib": allocated_gib(device),
        "import_s": round(import_s, 2),
        "build_s": round(build_s, 2),
        "image_size": vla.processor.sizes[0],
        "prefill_tokens": prefill,
    }
    return vla, info


def bench_inference(vla, batches: list[int], device, warmup: int, repeats: int) -> list[dict]:
    """``predict_action`` exactly as ``OpenVLAPolicy.act_batch`` calls it (greedy)."""
    import torch

    rng = np.random.default_rng(0)
    key = vla.resolve_unnorm_key(None)
    generator = torch.Generator(device=vla.device).manual_seed(0)
    rows = []
    for b in batches:
        images = rng.integers(0, 256, (b, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        instructions = [INSTRUCTION] * b

        def call(images=images, instructions=instructions):
            vla.predict_action(images, instructions, unnorm_key=key, temperature=0.0, generator=generator)

        reset_peak(device)
        ms = timed(call, device, warmup, repeats)
        median = statistics.median(ms)
        rows.append({"batch": b, "latency_ms": round(median, 2), "per_sample_ms": round(median / b, 2),
                     "actions_per_s": round(1000 * b / median, 2), "peak_gib": peak_gib(device),
                     "samples_ms": [round(x, 2) for x in ms]})  # fmt: skip
    return rows


def bench_lora_sft(vla, batches: list[int], device, warmup: int, repeats: int, rank: int) -> dict:
    """One SFT micro-batch step (``training/sft.py``'s loop, grad_accum 1) per batch size, with LoRA attached."""
    import torch

    from vla_gen_bench.models.lora import attach_lora
    from vla_gen_bench.training.sft import Batcher, action_token_loss

    t = time.perf_counter()
    model = attach_lora(vla.model, r=rank, scope="all-linear")
    sync(device)
    attach_s = time.perf_counter() - t
    vla.model = model
    network = vla.network
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-4)
    batcher = Batcher(vla, STATS_KEY)
    autocast = device.type == "cuda"  # as sft.train: bf16 autocast on CUDA, plain fp32 on CPU
    model.train()

    rng = np.random.default_rng(1)
    rows = []
    for b in batches:
        items = [{"image": rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
                  "instruction": INSTRUCTION, "action": rng.uniform(-1, 1, 7)} for _ in range(b)]  # fmt: skip
        batch = batcher(items)
        losses = []

        def step(batch=batch, losses=losses):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss, _ = action_token_loss(network, batch["pixel_values"], batch["input_ids"],
                                            batch["attention_mask"], batch["action_tokens"])  # fmt: skip
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())

        reset_peak(device)
        try:
            ms = timed(step, device, warmup, repeats)
        except torch.cuda.OutOfMemoryError:
            ms = None
        if ms is None:  # outside the except block, so its traceback no longer holds the activations
            optimizer.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            rows.append({"batch": b, "oom": True, "peak_gib": peak_gib(device)})
            continue
        median = statistics.median(ms)
        rows.append({"batch": b, "oom": False, "step_ms": round(median, 2),
                     "samples_per_s": round(1000 * b / median, 2), "peak_gib": peak_gib(device),
                     "loss": round(losses[-1], 4), "samples_ms": [round(x, 2) for x in ms]})  # fmt: skip
    return {"rank": rank, "scope": "all-linear", "trainable_params": sum(p.numel() for p in params),
            "attach_s": round(attach_s, 2), "steps": rows}  # fmt: skip


# --- output --------------------------------------------------------------------------------------------------------
def print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("", "", title="environment and model", show_header=False)
    for k, v in {**result["environment"], **result.get("model", {})}.items():
        if k != "params_by_part":
            table.add_row(k, str(v))
    console.print(table)
    sections = {
        "inference": ("predict_action (greedy)", ["batch", "latency_ms", "per_sample_ms", "actions_per_s", "peak_gib"]),
        "lora_sft": ("LoRA SFT step", ["batch", "oom", "step_ms", "samples_per_s", "peak_gib", "loss"]),
    }  # fmt: skip
    for name, (title, cols) in sections.items():
        data = result.get(name)
        if data is None:
            continue
        if "error" in data:
            console.print(f"[red]{name} failed:[/red] {data['error'].strip().splitlines()[-1]}")
            continue
        if name == "lora_sft":
            title += (
                f" (LoRA r={data['rank']} {data['scope']}, {data['trainable_params'] / 1e6:.1f} M trainable)"
            )
        table = Table(*cols, title=title)
        for row in data["rows"] if name == "inference" else data["steps"]:
            table.add_row(*(str(row.get(c, "")) for c in cols))
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="openvla-7b", help="model preset (openvla-7b, tiny, micro, ...)")
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="predict_action batch sizes")
    ap.add_argument("--train-batches", type=int, nargs="*", default=[8, 16],
                    help="SFT micro-batch sizes (none: skip the LoRA section)")  # fmt: skip
    ap.add_argument("--lora-rank", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls before each measurement")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)

    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:] if argv is None else argv,
                    "environment": environment(device)}  # fmt: skip

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")

    t_start = time.perf_counter()
    save()
    # nothing else can run without the model: an error here propagates
    vla, result["model"] = build(args.preset, device)
    save()
    failed = False
    for name, run in (
        ("inference", lambda: {"rows": bench_inference(vla, args.batches, device, args.warmup, args.repeats)}),
        ("lora_sft", lambda: bench_lora_sft(vla, args.train_batches, device, args.warmup, args.repeats,
                                            args.lora_rank)),
    ):  # fmt: skip
        if name == "lora_sft" and not args.train_batches:
            continue
        try:
            result[name] = run()
        except Exception:
            traceback.print_exc()
            result[name] = {"error": traceback.format_exc()}
            failed = True
        save()
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    save()
    print_tables(result)
    print(f"total {result['total_s']} s" + (f"; wrote {args.out}" if args.out else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
