"""Two-way check against the official OpenVLA HF code: vgb's checkpoints load there, and theirs load here.

The official code (``configuration_prismatic.py``, ``modeling_prismatic.py``, ``processing_prismatic.py`` from
``prismatic/extern/hf/`` of github.com/openvla/openvla, or the Hub repo ``openvla/openvla-7b``) is never part of this
repository: pass the folder that holds it (``--official-code``) and a Python of an environment with the versions it
was written for (``--official-python``: transformers 4.40.1, tokenizers 0.19.1, timm 0.9.10, a torch). This script
runs under vgb's environment and starts itself under the official one for the official half (``worker`` mode).

A. vgb -> official: vgb builds a random-init checkpoint of ``--preset`` (default ``official-small``: DINOv2
   ViT-S/14-reg4 + SigLIP So400m/14 at 112 px, a 256x2 Llama, the 32000-token tokenizer; the smallest the official
   code builds, see ``vla_gen_bench/models/presets.py``) and writes it with ``save_checkpoint``. The three official
   files are copied next to it (as a user deploying it does) and the official stack loads it with
   ``AutoModelForVision2Seq.from_pretrained(dir, trust_remote_code=True)`` and ``AutoProcessor.from_pretrained``.
B. official -> vgb: the official classes build a random-init model of the same configuration (their own init), an
   image processor from timm's data configs (as their conversion script does) and a processor around the tokenizer
   of A (loaded and re-saved by tokenizers 0.19.1), and write them with ``save_pretrained``; vgb loads that folder
   with ``load_openvla``.

In both, the same image x instruction pairs go through the official ``processor(prompt, image)`` +
``predict_action(..., do_sample=False)`` one pair at a time, and through vgb's ``OpenVLA.predict_action`` batched
(left-padded), decoded two ways: vgb's default (only action tokens) and ``decode="unconstrained"`` (any token, as
the official code). Compared: the prompt ids the official code generates from (after it appends 29871), the pixel
values, the 7 greedy tokens, the de-normalised actions and the full-vocabulary logits of every decoding step.

Random-init weights rarely put an action token on top of 32064 logits, so the official decoding would clip
everything to the last bin. The checkpoints are therefore written with the 256 action-token rows of ``lm_head``
multiplied by ``--sharpen`` (60), so both decodings emit action tokens that depend on the inputs; the same pairs
are then run once more with those rows divided back (the model as initialised, in memory on both sides), where the
official code's and vgb's default decodings differ and ``decode=unconstrained`` reproduces the official one.

Set-up of the official environment (outside the repository; about 3 minutes, 1.7 GB)::

    python3 -m venv /tmp/official-venv
    /tmp/official-venv/bin/pip install torch==2.13.0 torchvision==0.28.0 transformers==4.40.1 tokenizers==0.19.1 \\
        timm==0.9.10 "numpy<2" pillow safetensors
    # the three files of prismatic/extern/hf/ at openvla/openvla c8f03f4 (or of openvla/openvla-7b on the Hub)
    mkdir -p /tmp/openvla-hf && cd /path/to/openvla && cp prismatic/extern/hf/*_prismatic.py /tmp/openvla-hf/

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/openvla_official_check.py \\
        --official-python /tmp/official-venv/bin/python --official-code /tmp/openvla-hf --out /tmp/official-check

Where the only torchvision is a CUDA build and torch is the CPU wheel (this project's CPU machines), torchvision does
not import; both halves apply ``vla_gen_bench._compat.ensure_torchvision`` first (it defines two missing operator
schemas and changes nothing else, in particular no OpenVLA code). Writes ``<out>/report.json`` (every number below,
library versions of both environments, timings) and prints a summary; the checkpoints stay in ``<out>/`` (about
1.9 GB each at the default preset). Exit status 1 when a comparison fails.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CODE_FILES = ("configuration_prismatic.py", "modeling_prismatic.py", "processing_prismatic.py")
INSTRUCTIONS = ["put the red cube on the plate", "pick up the blue bottle and place it in the basket"]
PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
OFFICIAL_PINS = {"transformers": "4.40.1", "tokenizers": "0.19.1"}
LIBRARIES = ("torch", "torchvision", "transformers", "tokenizers", "timm", "numpy", "safetensors")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def make_images(n: int = 2, size: int = 224) -> np.ndarray:
    """``n`` deterministic RGB images ``(n, size, size, 3)`` uint8 with different content (resized by both sides)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        images[i, : size // 2, :, i % 3] = 255  # a bright half in a different channel per image
        images[i, size // 4 : size // 2, size // 4 : size // 2] = (30 * i, 200, 30)
    return images


def pairs(images: np.ndarray) -> list[tuple[int, str]]:
    """Every (image index, instruction)."""
    return [(i, text) for i in range(len(images)) for text in INSTRUCTIONS]


# ============================================================================ official half (official environment)
def import_official(code_dir: Path, work: Path):
    """The official classes, imported as a package copied into ``work`` (their files import each other
    relatively). The torchvision shim runs first; nothing of the official code is changed."""
    sys.path.insert(0, str(ROOT))
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    pkg = work / "official_pkg" / "openvla_hf"
    pkg.mkdir(parents=True, exist_ok=True)
    for name in CODE_FILES:
        shutil.copy2(code_dir / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(pkg.parent))
    import importlib

    return {name: importlib.import_module(f"openvla_hf.{name[:-3]}") for name in CODE_FILES}


def official_predict(vla, processor, images: np.ndarray) -> dict[str, np.ndarray]:
    """The official ``processor(prompt, image)`` + ``predict_action(do_sample=False)``, one pair at a time, with
    the prompt ids ``generate`` received, the pixel values and the full logits of each of the 7 steps recorded."""
    import torch
    from PIL import Image

    steps: list[torch.Tensor] = []
    hook = vla.language_model.lm_head.register_forward_hook(
        lambda _m, _i, out: steps.append(out[:, -1].detach().float().clone())
    )
    generated: list[torch.Tensor] = []
    generate = vla.generate

    def recording_generate(
        *args, **kwargs
    ):  # predict_action's call: the prompt ids (29871 appended) + 7 new ids
        out = generate(*args, **kwargs)
        generated.append(out)
        return out

    vla.generate = recording_generate
    rows: dict[str, list] = {"actions": [], "tokens": [], "input_ids": [], "pixel_values": [], "logits": []}
    try:
        for i, text in pairs(images):
            inputs = processor(PROMPT.format(instruction=text), Image.fromarray(images[i]))
            steps.clear()
            with torch.no_grad():
                actions = vla.predict_action(**inputs, do_sample=False)
            ids = generated[-1][0].numpy()
            rows["actions"].append(np.asarray(actions, dtype=np.float64))
            rows["tokens"].append(ids[-7:])
            rows["input_ids"].append(ids[:-7])
            rows["pixel_values"].append(inputs["pixel_values"][0].float().numpy())
            rows["logits"].append(torch.cat(steps[:7]).numpy())  # (7, vocab)
    finally:
        hook.remove()
        del vla.generate
    n = len(rows["input_ids"])
    out = {k: np.stack(v) for k, v in rows.items() if k != "input_ids"}
    width = max(len(r) for r in rows["input_ids"])
    out["input_ids"] = np.array(
        [np.pad(r, (width - len(r), 0), constant_values=-1) for r in rows["input_ids"]]
    )
    assert out["tokens"].shape == (n, 7)
    return out


def scale_action_rows(lm_head_weight, n_bins: int, begin: int, factor: float) -> None:
    """Multiply the action-token rows of ``lm_head`` in place (``--sharpen``; 1 / factor undoes it)."""
    import torch

    with torch.no_grad():
        lm_head_weight[begin : begin + n_bins] *= factor


def official_runs(vla, processor, images, begin: int, n_bins: int, sharpen: float) -> dict[str, np.ndarray]:
    """Predictions on the sharpened weights, then on the weights as initialised (rows divided back)."""
    out = {f"sharpened/{k}": v for k, v in official_predict(vla, processor, images).items()}
    scale_action_rows(vla.language_model.lm_head.weight, n_bins, begin, 1.0 / sharpen)
    out.update({f"unscaled/{k}": v for k, v in official_predict(vla, processor, images).items()})
    return out


def worker(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    mods = import_official(Path(args.official_code), work)
    from transformers import AutoModelForVision2Seq, AutoProcessor, AutoTokenizer

    images = np.load(work / "images.npy")
    info: dict = {"versions": versions()}
    t = time.perf_counter()
    if args.worker == "load":  # A: a folder vgb wrote
        vla = AutoModelForVision2Seq.from_pretrained(
            args.ckpt, trust_remote_code=True, torch_dtype=torch.float32
        )
        processor = AutoProcessor.from_pretrained(args.ckpt, trust_remote_code=True)
        info["classes"] = [type(vla).__module__ + "." + type(vla).__name__, type(processor).__name__,
                           type(processor.tokenizer).__name__]  # fmt: skip
    else:  # B: build with the official classes and write a folder
        cfg_mod, model_mod, proc_mod = (mods[n] for n in CODE_FILES)
        fields = json.loads(Path(args.fields).read_text())
        config = cfg_mod.OpenVLAConfig(**fields)
        torch.manual_seed(args.seed)
        vla = model_mod.OpenVLAForActionPrediction(config).eval()
        begin = config.text_config.vocab_size - config.pad_to_multiple_of - config.n_action_bins
        scale_action_rows(vla.language_model.lm_head.weight, config.n_action_bins, begin, args.sharpen)
        import timm.data

        featurizers = [vla.vision_backbone.featurizer]
        if config.use_fused_vision_backbone:
            featurizers.append(vla.vision_backbone.fused_featurizer)
        data = [
            timm.data.resolve_model_data_config(f) for f in featurizers
        ]  # as convert_openvla_weights_to_hf.py
        image_processor = proc_mod.PrismaticImageProcessor(
            use_fused_vision_backbone=config.use_fused_vision_backbone,
            image_resize_strategy=config.image_resize_strategy,
            input_sizes=[(3, s, s) for s in config.image_sizes],
            interpolations=[d["interpolation"] for d in data],
            means=[d["mean"] for d in data],
            stds=[d["std"] for d in data],
        )
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, padding_side="right")
        processor = proc_mod.PrismaticProcessor(image_processor=image_processor, tokenizer=tokenizer)
        cfg_mod.OpenVLAConfig.register_for_auto_class()
        model_mod.OpenVLAForActionPrediction.register_for_auto_class("AutoModelForVision2Seq")
        proc_mod.PrismaticImageProcessor.register_for_auto_class("AutoImageProcessor")
        proc_mod.PrismaticProcessor.register_for_auto_class("AutoProcessor")
        vla.save_pretrained(args.ckpt)
        processor.save_pretrained(args.ckpt)
        info["classes"] = [type(vla).__name__, type(processor).__name__, type(tokenizer).__name__]
    info["load_or_build_s"] = time.perf_counter() - t
    info["attn_implementation"] = vla.language_model.config._attn_implementation
    info["parameters"] = int(sum(p.numel() for p in vla.parameters()))
    c = vla.config
    begin = c.text_config.vocab_size - c.pad_to_multiple_of - c.n_action_bins
    t = time.perf_counter()
    results = official_runs(vla, processor, images, begin, c.n_action_bins, args.sharpen)
    info["predict_s"] = time.perf_counter() - t
    np.savez(work / f"official-{args.worker}.npz", **results)
    (work / f"official-{args.worker}.json").write_text(json.dumps(info, indent=1) + "\n")
    return 0


# ============================================================================ vgb half (this environment)
def vgb_predict(vla, images: np.ndarray) -> dict[str, np.ndarray]:
    """vgb's batched predictions on every pair: default decoding, unconstrained decoding (with its logits)."""
    import torch

    idx = [i for i, _ in pairs(images)]
    texts = [t for _, t in pairs(images)]
    batch = images[idx]
    out = {"constrained/" + k: v for k, v in _prediction(vla.predict_action(batch, texts)).items()}
    steps: list[torch.Tensor] = []
    hook = vla.network.language_model.lm_head.register_forward_hook(
        lambda _m, _i, o: steps.append(o.detach().float().clone())
    )
    try:
        free = vla.predict_action(batch, texts, decode="unconstrained")
    finally:
        hook.remove()
    out.update({"unconstrained/" + k: v for k, v in _prediction(free).items()})
    out["unconstrained/logits"] = torch.stack(steps[:7], 1).numpy()  # (n, 7, vocab)
    prepared = vla.prepare(batch, texts)
    out["input_ids"] = np.where(prepared["attention_mask"].numpy() == 1, prepared["input_ids"].numpy(), -1)
    out["pixel_values"] = prepared["pixel_values"].numpy()
    return out


def _prediction(pred) -> dict[str, np.ndarray]:
    return {"tokens": pred.tokens, "actions": pred.actions}


def vgb_runs(vla, images: np.ndarray, sharpen: float) -> dict[str, np.ndarray]:
    net = vla.network
    out = {f"sharpened/{k}": v for k, v in vgb_predict(vla, images).items()}
    scale_action_rows(
        net.language_model.lm_head.weight, net.config.n_action_bins, net.action_begin, 1.0 / sharpen
    )
    out.update({f"unscaled/{k}": v for k, v in vgb_predict(vla, images).items()})
    return out


def _strip(ids: np.ndarray) -> list[list[int]]:
    return [[int(x) for x in row if x >= 0] for row in ids]


def compare(off: dict[str, np.ndarray], ours: dict[str, np.ndarray], action_range: tuple[int, int]) -> dict:
    """Numbers for one direction: per weight state (sharpened / unscaled), official vs vgb."""
    lo, hi = action_range
    result: dict = {}
    for state in ("sharpened", "unscaled"):
        o_tok = off[f"{state}/tokens"]
        n = len(o_tok)
        r: dict = {
            "prompt_ids_equal": sum(a == b for a, b in zip(_strip(off[f"{state}/input_ids"]),
                                                             _strip(ours[f"{state}/input_ids"]), strict=True)),
            "pixel_values_max_abs_diff": float(np.abs(off[f"{state}/pixel_values"]
                                                      - ours[f"{state}/pixel_values"]).max()),
            "official_non_action_tokens": int(((o_tok < lo) | (o_tok >= hi)).sum()),
            "tokens": int(o_tok.size),
        }  # fmt: skip
        for mode in ("unconstrained", "constrained"):
            v_tok = ours[f"{state}/{mode}/tokens"]
            r[f"{mode}_pairs_equal"] = int((v_tok == o_tok).all(1).sum())
            r[f"{mode}_tokens_equal"] = int((v_tok == o_tok).sum())
            r[f"{mode}_actions_max_abs_diff"] = float(np.abs(ours[f"{state}/{mode}/actions"]
                                                             - off[f"{state}/actions"]).max())  # fmt: skip
        # logits: every step of every pair whose tokens agree up to that step (later steps see other inputs)
        o_log, v_log = off[f"{state}/logits"], ours[f"{state}/unconstrained/logits"]
        same_prefix = np.cumprod(ours[f"{state}/unconstrained/tokens"] == o_tok, 1)  # (n, 7)
        keep = np.concatenate([np.ones((n, 1), bool), same_prefix[:, :-1].astype(bool)], 1)
        r["logit_steps_compared"] = int(keep.sum())
        r["logits_max_abs_diff"] = float(np.abs(o_log - v_log)[keep].max())
        r["logits_max_abs"] = float(np.abs(o_log[keep]).max())
        top2 = np.sort(o_log[keep], -1)[:, -2:]
        r["smallest_greedy_margin"] = float((top2[:, 1] - top2[:, 0]).min())
        r["pairs"] = n
        result[state] = r
    return result


def passed(c: dict) -> bool:
    """What must hold: identical prompts, pixels and (sharpened) greedy tokens in both decodings; unconstrained
    tokens identical on the weights as initialised too."""
    s, u = c["sharpened"], c["unscaled"]
    n = s["pairs"]
    return (
        s["prompt_ids_equal"] == n
        and s["pixel_values_max_abs_diff"] < 1e-5
        and s["unconstrained_pairs_equal"] == n
        and s["constrained_pairs_equal"] == n
        and u["unconstrained_pairs_equal"] == n
    )


def run_official(args, mode: str, ckpt: Path, extra: list[str]) -> dict:
    cmd = [args.official_python, str(Path(__file__).resolve()), "worker", mode, "--ckpt", str(ckpt),
           "--work", str(args.out), "--official-code", str(args.official_code), "--seed", str(args.seed + 1),
           "--sharpen", str(args.sharpen), "--threads", str(args.threads), *extra]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(Path(args.out) / "hf_modules"),
               TOKENIZERS_PARALLELISM="false")  # fmt: skip
    print(f"[official] {mode}: {' '.join(cmd[2:])}", file=sys.stderr)
    r = subprocess.run(cmd, env=env, text=True, capture_output=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-8000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the official {mode} step failed (exit {r.returncode}); its output is above")
    info = json.loads((Path(args.out) / f"official-{mode}.json").read_text())
    info["results"] = dict(np.load(Path(args.out) / f"official-{mode}.npz"))
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "worker":
        return worker(args)
    import torch

    torch.set_num_threads(args.threads)
    from vla_gen_bench.models.checkpoint import (
        OFFICIAL_CODE_FILES,
        load_openvla,
        official_format_problems,
        save_checkpoint,
    )
    from vla_gen_bench.models.modeling import OpenVLA, build_model, count_parameters
    from vla_gen_bench.models.presets import get_preset
    from vla_gen_bench.models.processor import ImageProcessor
    from vla_gen_bench.models.tokenizer import build_tokenizer

    code = Path(args.official_code)
    absent = [f for f in OFFICIAL_CODE_FILES if not (code / f).is_file()]
    if absent:
        raise SystemExit(f"--official-code {code} lacks {', '.join(absent)}; point it at prismatic/extern/hf/ of "
                         "github.com/openvla/openvla (or a download of openvla/openvla-7b)")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = make_images()
    np.save(out / "images.npy", images)
    preset = get_preset(args.preset)
    config = preset.config
    if config.vgb_only_reasons():
        raise SystemExit(f"preset {args.preset!r} loads in vgb only: {'; '.join(config.vgb_only_reasons())}")
    report: dict = {"preset": args.preset, "seed": args.seed, "sharpen": args.sharpen, "pairs": len(pairs(images)),
                    "instructions": INSTRUCTIONS, "image_shape": list(images.shape), "threads": args.threads,
                    "vgb_versions": versions()}  # fmt: skip

    # --- A: vgb writes, the official code loads
    t = time.perf_counter()
    tokenizer = build_tokenizer(config.tokenizer_vocab_size, config.n_action_bins)
    net = build_model(config, seed=args.seed)
    report["parameters"] = count_parameters(net)
    begin = config.action_token_range[0]
    scale_action_rows(net.language_model.lm_head.weight, config.n_action_bins, begin, args.sharpen)
    ckpt_a = out / "a-written-by-vgb"
    shutil.rmtree(ckpt_a, ignore_errors=True)
    save_checkpoint(OpenVLA(net, config, tokenizer, ImageProcessor.from_config(config)), ckpt_a)
    del net
    gc.collect()
    a: dict = {"checkpoint": str(ckpt_a), "vgb_build_and_save_s": time.perf_counter() - t,
               "format_problems": official_format_problems(ckpt_a)}  # fmt: skip
    t = time.perf_counter()
    vla = load_openvla(ckpt_a, device="cpu", dtype="float32")
    ours_a = vgb_runs(vla, images, args.sharpen)
    a["vgb_load_and_predict_s"] = time.perf_counter() - t
    del vla
    gc.collect()
    for f in CODE_FILES:  # what a user deploying the folder with the official stack does
        shutil.copy2(code / f, ckpt_a / f)
    off_a = run_official(args, "load", ckpt_a, [])
    a.update({k: v for k, v in off_a.items() if k != "results"})
    a["comparison"] = compare(off_a["results"], ours_a, config.action_token_range)
    report["a_vgb_to_official"] = a
    report["official_versions"] = a.pop("versions")

    # --- B: the official code writes, vgb loads
    ckpt_b = out / "b-written-by-official"
    shutil.rmtree(ckpt_b, ignore_errors=True)
    d = config.to_dict()
    keys = ("vision_backbone_id", "llm_backbone_id", "arch_specifier", "use_fused_vision_backbone",
            "image_resize_strategy", "timm_model_ids", "timm_override_act_layers", "image_sizes", "text_config",
            "llm_max_length", "pad_token_id", "pad_to_multiple_of", "n_action_bins", "norm_stats")  # fmt: skip
    (out / "official-fields.json").write_text(json.dumps({k: d[k] for k in keys}, indent=1) + "\n")
    off_b = run_official(args, "build", ckpt_b, ["--fields", str(out / "official-fields.json"),
                                                 "--tokenizer", str(ckpt_a)])  # fmt: skip
    b: dict = {
        "checkpoint": str(ckpt_b),
        **{k: v for k, v in off_b.items() if k not in ("results", "versions")},
    }
    b["files"] = sorted(p.name for p in ckpt_b.iterdir())
    t = time.perf_counter()
    vla = load_openvla(ckpt_b, device="cpu", dtype="float32")
    ours_b = vgb_runs(vla, images, args.sharpen)
    b["vgb_load_and_predict_s"] = time.perf_counter() - t
    b["comparison"] = compare(off_b["results"], ours_b, config.action_token_range)
    report["b_official_to_vgb"] = b

    ok = not a["format_problems"] and passed(a["comparison"]) and passed(b["comparison"])
    report["passed"] = ok
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(summary(report))
    print(f"report: {out / 'report.json'}")
    return 0 if ok else 1


def summary(report: dict) -> str:
    lines = [f"preset {report['preset']} ({report['parameters']['total'] / 1e6:.1f} M parameters), "
             f"{report['pairs']} image x instruction pairs, lm_head action rows x{report['sharpen']:g}",
             "| direction | weights | prompt ids equal | max abs dpixel | official non-action tokens | "
             "pairs equal: unconstrained / constrained | max abs daction (unconstr.) | max abs dlogit (of max abs) "
             "| smallest margin |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key, name in (("a_vgb_to_official", "vgb -> official"), ("b_official_to_vgb", "official -> vgb")):
        for state, c in report[key]["comparison"].items():
            lines.append(
                f"| {name} | {state} | {c['prompt_ids_equal']}/{c['pairs']} | {c['pixel_values_max_abs_diff']:.1e} | "
                f"{c['official_non_action_tokens']}/{c['tokens']} | {c['unconstrained_pairs_equal']}/{c['pairs']} / "
                f"{c['constrained_pairs_equal']}/{c['pairs']} | {c['unconstrained_actions_max_abs_diff']:.1e} | "
                f"{c['logits_max_abs_diff']:.1e} ({c['logits_max_abs']:.2g}) | {c['smallest_greedy_margin']:.2g} |"
            )
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="internal: the official half, run by the official environment's Python")
    w.add_argument("worker", choices=("load", "build"))
    w.add_argument("--ckpt", required=True)
    w.add_argument("--work", required=True)
    w.add_argument("--fields")
    w.add_argument("--tokenizer")
    for q in (p, w):
        q.add_argument(
            "--official-code", type=Path, required=q is w, help="folder with the three official files"
        )
        q.add_argument(
            "--seed", type=int, default=0, help="vgb's init seed (the official build uses seed + 1)"
        )
        q.add_argument("--sharpen", type=float, default=60.0, help="factor on the action rows of lm_head")
        q.add_argument("--threads", type=int, default=1, help="torch threads on each side")
    p.add_argument("--official-python", help="Python of the environment with the official versions")
    p.add_argument("--preset", default="official-small", help="a preset that loads in the official code")
    p.add_argument(
        "--out", type=Path, default=Path("/tmp/official-check"), help="work folder (checkpoints, report)"
    )
    args = p.parse_args(argv)
    if args.command is None and (args.official_python is None or args.official_code is None):
        p.error("--official-python and --official-code are required")
    return args


if __name__ == "__main__":
    sys.exit(main())
