"""HF OpenVLA checkpoint folders: load them (never with ``trust_remote_code``), write them, create random ones.

Folder layout (as ``openvla/openvla-7b`` on the Hub)::

    config.json                        model_type "openvla", backbone ids, text_config, norm_stats
    model.safetensors                  or model-0000i-of-0000n.safetensors + model.safetensors.index.json
    tokenizer.json (+ tokenizer_config.json, special_tokens_map.json)
    preprocessor_config.json           optional: means / stds / input sizes (defaults from the backbone ids)
    dataset_statistics.json            optional: norm_stats of fine-tunes; its keys override config.json's
    generation_config.json             written for completeness; decoding here never reads it
    processor_config.json              written when the official code can load the folder (its AutoProcessor)

Official loading: a folder whose config :meth:`~vla_gen_bench.models.config.OpenVLAConfig.vgb_only_reasons` is empty
is written as the official stack writes it (``auto_map`` in config.json, preprocessor_config.json and
processor_config.json; tokenizer.json readable by tokenizers 0.19; ``"▁"`` at id 29871). With the three remote-code
files of ``openvla/openvla-7b`` copied next to config.json it loads with
``AutoModelForVision2Seq.from_pretrained(folder, trust_remote_code=True)``; :func:`official_format_problems` checks a
folder without that code (``benchmarks/openvla_official_check.py`` runs it). Other folders are labelled "loads in vgb
only" in config.json.

Key map: the official tensor names *are* this package's module names (LayerScale stored as ``scale_factor``), so
the map is the identity on the HF layout, restricted to :data:`CHECKPOINT_PREFIXES`. :data:`KEY_RULES` additionally
renames the older spellings that appear in converted or third-party files (timm's ``gamma``, Prismatic's
``projector.0/2/4``, ``llm_backbone.llm``, ``dino_featurizer`` / ``siglip_featurizer``). Every checkpoint tensor must
map to exactly one model tensor of the same shape and vice versa; otherwise loading fails before any weight is read,
naming the missing, unexpected and mismatched tensors.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from vla_gen_bench.models.config import ConfigError, OpenVLAConfig
from vla_gen_bench.models.modeling import OpenVLA, OpenVLAForActionPrediction, build_model
from vla_gen_bench.models.presets import get_preset
from vla_gen_bench.models.processor import ImageProcessor
from vla_gen_bench.models.tokenizer import TextTokenizer, TokenizerError, build_tokenizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
PREPROCESSOR_NAME = "preprocessor_config.json"
PROCESSOR_NAME = "processor_config.json"
STATS_NAME = "dataset_statistics.json"
# The remote-code files of openvla/openvla-7b (prismatic/extern/hf/ in github.com/openvla/openvla), never shipped here.
OFFICIAL_CODE_FILES = ("configuration_prismatic.py", "modeling_prismatic.py", "processing_prismatic.py")
OFFICIAL_PROCESSOR_AUTO_MAP = {
    "AutoImageProcessor": "processing_prismatic.PrismaticImageProcessor",
    "AutoProcessor": "processing_prismatic.PrismaticProcessor",
}

CHECKPOINT_PREFIXES = (
    "vision_backbone.featurizer.",
    "vision_backbone.fused_featurizer.",
    "projector.",
    "language_model.model.",
    "language_model.lm_head.",
)
# (pattern, replacement): checkpoint name -> model name, applied in order.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^(vision_backbone\.(?:fused_)?featurizer\.blocks\.\d+\.ls[12])\.gamma$", r"\1.scale_factor"),
    (r"^llm_backbone\.llm\.", "language_model."),
    (r"^vision_backbone\.dino_featurizer\.", "vision_backbone.featurizer."),
    (r"^vision_backbone\.siglip_featurizer\.", "vision_backbone.fused_featurizer."),
    (r"^projector\.0\.", "projector.fc1."),
    (r"^projector\.2\.", "projector.fc2."),
    (r"^projector\.4\.", "projector.fc3."),
)
_RULES = tuple((re.compile(p), r) for p, r in KEY_RULES)


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message says what is wrong and what was expected."""


def map_key(name: str) -> str:
    """Checkpoint tensor name -> model parameter name."""
    for pattern, repl in _RULES:
        name = pattern.sub(repl, name)
    return name


def _listing(items: list[str], n: int = 8) -> str:
    more = f", ... ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def plan_load(
    checkpoint_shapes: dict[str, tuple[int, ...]], model_shapes: dict[str, tuple[int, ...]], where: str = ""
) -> dict[str, str]:
    """Match checkpoint tensors to model tensors through the key map.

    Returns:
        ``{checkpoint name: model name}`` covering every model tensor.

    Raises:
        CheckpointError: missing, unexpected (including two checkpoint names for one model tensor) or
            shape-mismatched tensors, all listed.
    """
    plan: dict[str, str] = {}
    taken: set[str] = set()
    unexpected, mismatched = [], []
    for ck, shape in checkpoint_shapes.items():
        mk = map_key(ck)
        if not mk.startswith(CHECKPOINT_PREFIXES) or mk not in model_shapes or mk in taken:
            unexpected.append(ck)
            continue
        taken.add(mk)
        if tuple(shape) != tuple(model_shapes[mk]):
            mismatched.append(f"{ck} {tuple(shape)} (model expects {tuple(model_shapes[mk])})")
            continue
        plan[ck] = mk
    mapped = set(plan.values()) | {map_key(m.split(" ")[0]) for m in mismatched}
    missing = sorted(set(model_shapes) - mapped)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing from the checkpoint: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors: {_listing(sorted(unexpected))}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches: {_listing(sorted(mismatched))}")
        raise CheckpointError(
            f"checkpoint {where} does not match the architecture in its config.json: " + "; ".join(parts)
        )
    return plan


# --- reading -------------------------------------------------------------------------------------------------------
def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a folder (from the index when sharded), each checked to exist."""
    index = path / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{index} is not a valid safetensors index (needs a 'weight_map'): {e}"
            ) from e
        files = sorted(set(weight_map.values()))
        absent = [f for f in files if not (path / f).is_file()]
        if absent:
            raise CheckpointError(f"{index} lists shard files that are not in the folder: {_listing(absent)}")
        return [path / f for f in files]
    if (path / WEIGHTS_NAME).is_file():
        return [path / WEIGHTS_NAME]
    others = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
    hint = f" (found {', '.join(others)}: convert them to safetensors)" if others else ""
    raise CheckpointError(f"{path} has no weights: expected {WEIGHTS_NAME} or {INDEX_NAME} with shards{hint}")


def checkpoint_shapes(files: list[Path]) -> tuple[dict[str, tuple[int, ...]], dict[str, Path]]:
    """Names and shapes of every tensor (headers only, no data read), and the file holding each."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    where: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():  # noqa: SIM118 - safe_open is not a dict
                    if k in shapes:
                        raise CheckpointError(f"tensor {k} appears in both {where[k].name} and {f.name}")
                    shapes[k] = tuple(st.get_slice(k).get_shape())
                    where[k] = f
        except CheckpointError:
            raise
        except Exception as e:  # safetensors raises its own SafetensorError for truncated/corrupt headers
            raise CheckpointError(f"{f} is not a readable safetensors file: {e}") from e
    return shapes, where


def _merge_statistics(config: OpenVLAConfig, folder: Path) -> OpenVLAConfig:
    stats_file = folder / STATS_NAME
    if not stats_file.is_file():
        return config
    try:
        stats = json.loads(stats_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{stats_file} is not valid JSON: {e}") from e
    if not isinstance(stats, dict):
        raise CheckpointError(f"{stats_file} must map dataset keys to statistics")
    return config.with_norm_stats({**config.norm_stats, **stats})


def read_config(path: Path) -> OpenVLAConfig:
    """config.json, with dataset_statistics.json (if present) merged into norm_stats."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    cfg_file = path / CONFIG_NAME
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME}; is this an HF OpenVLA checkpoint folder?")
    try:
        config = OpenVLAConfig.from_json_file(cfg_file)
    except ConfigError as e:
        raise CheckpointError(f"{cfg_file}: {e}") from e
    return _merge_statistics(config, path)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``"auto"``/None: bf16 on CUDA, fp32 elsewhere; otherwise a torch dtype or its name."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}  # fmt: skip
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; choose from auto, {', '.join(names)}")
    return names[dtype]


def _materialize(model: OpenVLAForActionPrediction, device: torch.device) -> None:
    """After ``to_empty``: recompute the buffers no checkpoint stores (rotary inverse frequencies)."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    lm = model.language_model.model
    lm.rotary_emb = LlamaRotaryEmbedding(config=model.language_model.config).to(device)
    for name, buf in model.named_buffers():
        if buf.is_meta:  # pragma: no cover - a new non-persistent buffer in some library version
            raise RuntimeError(f"buffer {name} was not initialised by the loader")


def load_openvla(
    path: str | Path,
    *,
    unnorm_key: str | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = "auto",
    lora: str | Path | None = None,
    merge_lora: bool = True,
    attn_implementation: str = "sdpa",
) -> OpenVLA:
    """Load an HF OpenVLA folder into this package's implementation.

    Args:
        path: the checkpoint folder.
        unnorm_key: checked now if given (errors list the available keys); actions are de-normalised with it later.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:0"``, ...
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on CPU), ``"float32"``, ``"bfloat16"``, ...
        lora: an adapter folder saved by peft (``adapter_config.json`` + ``adapter_model.safetensors``); a
            ``dataset_statistics.json`` next to it adds its keys to the checkpoint's statistics.
        merge_lora: fold the adapter into the weights (inference); False keeps a trainable PeftModel.
        attn_implementation: transformers attention backend for the Llama (``"sdpa"``, ``"eager"``, ...).

    Raises:
        CheckpointError: missing folder/files, unreadable files, tensors that do not match the config.
        UnnormKeyError: an ``unnorm_key`` that is not in the checkpoint's statistics.
    """
    from safetensors import safe_open

    path = Path(path).expanduser()
    config = read_config(path)
    if lora is not None:  # fine-tunes save their statistics next to the adapter (OpenVLA / RL4VLA)
        config = _merge_statistics(config, Path(lora).expanduser())
    try:
        tokenizer = TextTokenizer.from_dir(path)
    except TokenizerError as e:
        raise CheckpointError(str(e)) from e
    files = weight_files(path)
    shapes, where = checkpoint_shapes(files)
    pre = path / PREPROCESSOR_NAME
    try:
        processor = (
            ImageProcessor.from_file(config, pre) if pre.is_file() else ImageProcessor.from_config(config)
        )
    except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{pre}: {e}") from e

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    if device.type == "cuda":
        # cuDNN's fused SDPA kernel intermittently fails ("mha_graph.execute(...).is_good()", pytorch#190321); seen
        # here in the evaluator on an H100 (torch 2.11). Flash / memory-efficient SDPA serve the same shapes.
        torch.backends.cuda.enable_cudnn_sdp(False)
    with torch.device("meta"):
        model = OpenVLAForActionPrediction(config, attn_implementation=attn_implementation)
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    plan = plan_load(shapes, model_shapes, where=str(path))
    try:
        vla = OpenVLA(model, config, tokenizer, processor, source=str(path))
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    if unnorm_key is not None:
        vla.resolve_unnorm_key(unnorm_key)

    model.to(torch_dtype).to_empty(device=device)
    _materialize(model, device)
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for f in files:
            with safe_open(str(f), framework="pt", device=str(device)) as st:
                for k in st.keys():  # noqa: SIM118
                    params[plan[k]].copy_(st.get_tensor(k))
    model.eval()
    if lora is not None:
        from vla_gen_bench.models.lora import load_lora

        vla.model = load_lora(model, lora, merge=merge_lora)
    return vla


# --- writing -------------------------------------------------------------------------------------------------------
def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*", size.upper())
    if not m:
        raise ValueError(f"cannot parse size {size!r}; use e.g. '5GB', '200MB' or a number of bytes")
    return int(float(m.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}[m.group(2)])


def save_checkpoint(
    vla: OpenVLA,
    out_dir: str | Path,
    dtype: str | torch.dtype | None = None,
    max_shard_size: int | str = "5GB",
) -> Path:
    """Write ``vla`` as an HF OpenVLA folder (config, safetensors shards + index, tokenizer, preprocessor).

    A peft-wrapped model is saved merged (``merge_and_unload`` on a copy is not needed: LoRA deltas are folded
    into the written tensors only).
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = vla.model
    if hasattr(model, "merge_and_unload"):
        from vla_gen_bench.models.lora import merged_state_dict

        state = merged_state_dict(model)
    else:
        state = model.state_dict()
    cast = resolve_dtype(dtype, torch.device("cpu")) if dtype is not None else None
    tensors = {}
    for k, v in state.items():
        v = v.detach().to("cpu", cast if (cast is not None and v.is_floating_point()) else v.dtype)
        tensors[k] = v.contiguous()  # no copy when already on CPU in the right dtype (a 7B model fits once)
    limit = _parse_size(max_shard_size)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(tensors):
        n = tensors[k].numel() * tensors[k].element_size()
        if shards[-1] and size + n > limit:
            shards.append({})
            size = 0
        shards[-1][k] = tensors[k]
        size += n
    for stale in list(out.glob("model*.safetensors")) + [out / INDEX_NAME]:
        stale.unlink(missing_ok=True)
    if len(shards) == 1:
        save_file(shards[0], str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(out / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")

    first = next(iter(tensors.values()))
    config = vla.config.to_dict()
    config["torch_dtype"] = str(first.dtype).removeprefix("torch.")
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    tok = vla.tokenizer
    gen = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    pre = vla.processor.to_dict()
    official = vla.config.loads_in_official_code
    if official:  # what the official AutoProcessor / AutoImageProcessor look for
        pre.update(auto_map=dict(OFFICIAL_PROCESSOR_AUTO_MAP), processor_class="PrismaticProcessor")
        processor = {"auto_map": {"AutoProcessor": OFFICIAL_PROCESSOR_AUTO_MAP["AutoProcessor"]},
                     "processor_class": "PrismaticProcessor"}  # fmt: skip
        (out / PROCESSOR_NAME).write_text(json.dumps(processor, indent=2) + "\n")
    else:
        (out / PROCESSOR_NAME).unlink(missing_ok=True)
    (out / PREPROCESSOR_NAME).write_text(json.dumps(pre, indent=2) + "\n")
    tok.save(out)
    return out


def official_format_problems(path: str | Path, need_code: bool = False) -> list[str]:
    """What stops the official OpenVLA HF code (transformers 4.40.1, tokenizers 0.19.1) from loading a folder, as
    far as the files show without that code; empty when nothing does.

    Checks config.json (no vgb-only option, the official ``auto_map``), tokenizer.json (BPE merges as ``"a b"``
    strings, ``"▁"`` at id 29871, ``<PAD>`` at 32000), preprocessor_config.json's ``auto_map`` and, with
    ``need_code``, the three remote-code files next to config.json.
    """
    from vla_gen_bench.models.config import OFFICIAL_AUTO_MAP, OFFICIAL_TOKENIZER_VOCAB_SIZE
    from vla_gen_bench.models.tokenizer import LLAMA2_SEPARATOR_ID, SEPARATOR

    path = Path(path)
    problems: list[str] = []
    try:
        raw = json.loads((path / CONFIG_NAME).read_text())
        config = OpenVLAConfig.from_dict(raw)
    except (OSError, ValueError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        return [f"{CONFIG_NAME}: {e}"]
    problems += [f"{CONFIG_NAME}: {r}" for r in config.vgb_only_reasons()]
    if raw.get("auto_map") != OFFICIAL_AUTO_MAP:
        problems.append(
            f"{CONFIG_NAME}: auto_map is {raw.get('auto_map')!r}, the official loader needs {OFFICIAL_AUTO_MAP}"
        )
    try:
        tok = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"tokenizer.json: {e}")
    else:
        model = tok.get("model") or {}
        pairs = [m for m in model.get("merges") or [] if not isinstance(m, str)]
        if pairs:
            problems.append(f"tokenizer.json: {len(pairs)} BPE merges are pairs (e.g. {pairs[0]!r}); tokenizers 0.19 "
                            "reads only 'a b' strings (vgb writes those unless a token holds a space)")  # fmt: skip
        vocab = model.get("vocab") or {}
        if vocab.get(SEPARATOR) != LLAMA2_SEPARATOR_ID:
            problems.append(f"tokenizer.json: {SEPARATOR!r} has id {vocab.get(SEPARATOR)}; the official predict_action "
                            f"appends id {LLAMA2_SEPARATOR_ID}")  # fmt: skip
        pad = [t.get("id") for t in tok.get("added_tokens") or [] if t.get("content") == "<PAD>"]
        if pad != [OFFICIAL_TOKENIZER_VOCAB_SIZE]:
            problems.append(
                f"tokenizer.json: <PAD> has id(s) {pad}, expected [{OFFICIAL_TOKENIZER_VOCAB_SIZE}]"
            )
    try:
        pre = json.loads((path / PREPROCESSOR_NAME).read_text())
    except (OSError, ValueError) as e:
        problems.append(f"{PREPROCESSOR_NAME}: {e}")
    else:
        if pre.get("auto_map") != OFFICIAL_PROCESSOR_AUTO_MAP:
            problems.append(f"{PREPROCESSOR_NAME}: auto_map is {pre.get('auto_map')!r}, the official AutoProcessor "
                            f"needs {OFFICIAL_PROCESSOR_AUTO_MAP}")  # fmt: skip
    if need_code:
        absent = [f for f in OFFICIAL_CODE_FILES if not (path / f).is_file()]
        if absent:
            problems.append(f"remote code missing: {', '.join(absent)} (copy them from openvla/openvla-7b on the Hub or "
                            "prismatic/extern/hf/ of github.com/openvla/openvla)")  # fmt: skip
    return problems


def init_checkpoint(
    preset: str,
    out_dir: str | Path,
    seed: int = 0,
    dtype: str | None = None,
    max_shard_size: int | str = "5GB",
    overwrite: bool = False,
    device: str | torch.device = "cpu",
) -> Path:
    """Write a randomly initialised checkpoint of ``preset`` in the HF layout (loadable by :func:`load_openvla`).

    ``device`` is where the weights are initialised (the same seed gives the same weights on the same device type;
    CPU and CUDA random streams differ). On an H100 the 7B initialises and saves in 36 s; on 16 CPU cores it took
    over 4 minutes.

    Raises:
        PresetError: unknown preset (with a did-you-mean).
        FileExistsError: ``out_dir`` already holds a checkpoint and ``overwrite`` is False.
    """
    p = get_preset(preset)
    out = Path(out_dir)
    if (out / CONFIG_NAME).exists():
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a checkpoint; pass overwrite=True (--overwrite) to replace it"
            )
        shutil.rmtree(out)
    tokenizer = build_tokenizer(p.config.tokenizer_vocab_size, p.config.n_action_bins)
    dev = resolve_device(device)
    with torch.device(dev), _default_dtype(resolve_dtype(dtype or p.dtype, dev)):
        model = build_model(p.config, seed=seed)
    vla = OpenVLA(model, p.config, tokenizer, ImageProcessor.from_config(p.config))
    return save_checkpoint(vla, out, dtype=dtype or p.dtype, max_shard_size=max_shard_size)


class _default_dtype:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __enter__(self) -> None:
        self.prev = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc: Any) -> None:
        torch.set_default_dtype(self.prev)


def checkpoint_fingerprint(path: str | Path) -> str:
    """sha256 over config.json, the tokenizer file and every weight file (streamed), for result provenance."""
    path = Path(path)
    h = hashlib.sha256()
    names = [CONFIG_NAME, "tokenizer.json", STATS_NAME] + [f.name for f in weight_files(path)]
    for name in names:
        f = path / name
        if not f.is_file():
            continue
        h.update(name.encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()


def describe(path: str | Path) -> dict[str, Any]:
    """A small JSON-able summary of a checkpoint folder (for logs and run.json)."""
    path = Path(path)
    config = read_config(path)
    shapes, _ = checkpoint_shapes(weight_files(path))
    return {
        "path": str(path),
        "preset": config.preset,
        "tensors": len(shapes),
        "parameters": int(sum(torch.Size(s).numel() for s in shapes.values())),
        "unnorm_keys": sorted(config.norm_stats),
    }
