"""Table appearances synthesised with Stable Diffusion + ControlNet, aligned to the simulated table.

The generator is conditioned on images of the empty table seen from the policy camera (DESIGN.md §3): Canny edges
of the render (through controlnet_aux) and the simulator's own depth. It takes those images as arrays: this module
never imports the simulator (the ``vgb assets generate-tables`` handler renders and passes them in).

Pieces, in the order :func:`generate_pack` uses them:

* :func:`load_prompts`: the curated table descriptions (``asset_pipeline/prompts.toml``), train and unseen disjoint.
* :func:`control_images`: ControlNet conditions from the render (Canny edge map, depth map).
* :class:`TableGenerator`: diffusers ``StableDiffusionControlNetPipeline`` (model ids or local folders, revisions
  recorded, CUDA when present).
* Quality gates: :func:`edge_score` (do the generated image's edges still follow the control's?) and
  :func:`image_distance` (is it a near-duplicate of a table already in the pack?).
* :func:`generate_pack`: one image per slot, retried with a new seed when a gate rejects it, resumable per image,
  then the pack manifest (:mod:`vla_gen_bench.assets.packs`).

diffusers, transformers, torch and controlnet_aux load inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla_gen_bench.assets.store import AssetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONTROL_TYPES = ("canny", "depth")
THUMB = 32  # side of the thumbnails compared by the near-duplicate gate
CPU_WARNING = (
    "generating on the CPU: with real SD 1.5 + ControlNet weights expect the order of an hour per 512 px image "
    "(one guided step of the SD 1.5-sized UNet + ControlNet at 256 px took ~28 s on a 2-core CPU); use a CUDA "
    "machine for real packs (docs/asset_pipeline.md)"
)


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class SDConfig:
    """Models and sampling settings of the Stable Diffusion + ControlNet generator."""

    base_model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    """SD 1.x pipeline: a Hub id (needs network or the HF cache) or a local folder in the diffusers layout."""
    base_revision: str | None = None
    """Hub revision (branch, tag or commit) of the base model; ignored for a local folder."""
    variant: str | None = None
    """Weight-file variant of all three models, e.g. fp16 (half the download); None: the default weights."""
    control: Literal["canny", "depth", "canny+depth"] = "canny+depth"
    """Which conditions steer the generation (two ControlNets for canny+depth)."""
    canny_model: str = "lllyasviel/control_v11p_sd15_canny"
    """Canny-edge ControlNet for SD 1.5: Hub id or local folder."""
    canny_revision: str | None = None
    """Hub revision of the canny ControlNet."""
    depth_model: str = "lllyasviel/control_v11f1p_sd15_depth"
    """Depth ControlNet for SD 1.5: Hub id or local folder."""
    depth_revision: str | None = None
    """Hub revision of the depth ControlNet."""
    canny_scale: float = 0.6
    """Conditioning scale of the edge map (below 1: room for texture where the render has no edges)."""
    depth_scale: float = 1.0
    """Conditioning scale of the depth map (the table plane and its perspective)."""
    steps: int = 30
    """Denoising steps (UniPC multistep scheduler)."""
    guidance: float = 7.5
    """Classifier-free guidance scale."""
    resolution: int = 512
    """Shorter side of the generated image (SD 1.5: 512); the camera's aspect; pack images get the camera's size."""
    canny_low: int = 100
    """Canny low threshold (control and edge gate)."""
    canny_high: int = 200
    """Canny high threshold (control and edge gate)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """auto: CUDA when available, else the CPU (with a warning about time)."""


@dataclass(frozen=True)
class GateConfig:
    """Quality gates: a generated table is rejected (and retried with another seed) when one of them fails."""

    edge_min: float = 0.3
    """Minimum edge score in [-1, 1] (chance-corrected recall of the render's edges; a moved table scores ~0; -1: off)."""
    edge_tolerance: float = 0.01
    """Edge match distance as a fraction of the image's shorter side (5 px at 512 px)."""
    dup_max: float = 0.04
    """Reject an image whose RMS distance (32x32 thumbnails, 0..1) to an earlier table is at most this."""
    max_attempts: int = 4
    """Seeds tried per image before the slot is reported as failed."""


# ---------------------------------------------------------------------------- prompts
_PROMPT_KEYS = {"id", "family", "name", "prompt", "negative"}
_TOP_KEYS = {"version", "template", "negative", "train", "unseen"}
_ID = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class TablePrompt:
    id: str
    split: str
    family: str
    name: str
    prompt: str
    negative: str


@dataclass(frozen=True)
class PromptSet:
    """Curated table descriptions; ``text(p)`` is the prompt the pipeline receives."""

    template: str
    negative: str
    train: tuple[TablePrompt, ...]
    unseen: tuple[TablePrompt, ...]
    source: str = ""

    def text(self, p: TablePrompt) -> str:
        return self.template.format(prompt=p.prompt)

    def split(self, split: str) -> tuple[TablePrompt, ...]:
        return self.train if split == "train" else self.unseen


def load_prompts(path: Path) -> PromptSet:
    """Read and validate a prompts TOML file.

    Raises:
        AssetError: unreadable file, unknown or missing keys, duplicate ids/prompts, or a material family used in
            both splits (unseen tables must be new materials, as in the procedural pack).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise AssetError(
            f"cannot read prompts file {path}: {e}; pass --prompts asset_pipeline/prompts.toml"
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise AssetError(f"{path}: not valid TOML: {e}") from e
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise AssetError(f"{path}: unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    template = raw.get("template", "{prompt}")
    if "{prompt}" not in template:
        raise AssetError(f"{path}: 'template' must contain '{{prompt}}', got {template!r}")
    negative = str(raw.get("negative", ""))
    seen_ids: set[str] = set()
    seen_prompts: set[str] = set()
    splits: dict[str, list[TablePrompt]] = {}
    for split in ("train", "unseen"):
        items = raw.get(split)
        if not isinstance(items, list) or not items:
            raise AssetError(f"{path}: needs at least one [[{split}]] table")
        out = []
        for n, item in enumerate(items, 1):
            where = f"{path}: [[{split}]] #{n}"
            bad = set(item) - _PROMPT_KEYS
            if bad:
                raise AssetError(f"{where}: unknown keys {sorted(bad)}; allowed: {sorted(_PROMPT_KEYS)}")
            missing = {"id", "family", "prompt"} - set(item)
            if missing:
                raise AssetError(f"{where}: missing keys {sorted(missing)}")
            pid = str(item["id"])
            if not _ID.match(pid):
                raise AssetError(f"{where}: id {pid!r} must be lower-case letters, digits and '_'")
            if pid in seen_ids:
                raise AssetError(f"{where}: duplicate id {pid!r}")
            text = " ".join(str(item["prompt"]).split())
            if text.lower() in seen_prompts:
                raise AssetError(f"{where}: duplicate prompt {text!r}")
            seen_ids.add(pid)
            seen_prompts.add(text.lower())
            name = str(item.get("name", pid.replace("_", " ") + " table"))
            out.append(
                TablePrompt(pid, split, str(item["family"]), name, text, str(item.get("negative", negative)))
            )
        splits[split] = out
    both = {p.family for p in splits["train"]} & {p.family for p in splits["unseen"]}
    if both:
        raise AssetError(f"{path}: material families {sorted(both)} appear in both train and unseen; unseen tables "
                         "must use families absent from training")  # fmt: skip
    return PromptSet(template, negative, tuple(splits["train"]), tuple(splits["unseen"]), str(path))


# ---------------------------------------------------------------------------- conditions and gates
def _controlnet_aux():
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    with warnings.catch_warnings():  # timm deprecation and "mediapipe not installed" notices on import
        warnings.simplefilter("ignore")
        import controlnet_aux
    return controlnet_aux


def canny_edges(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """(H, W) bool Canny edge map of an (H, W, 3) uint8 image, at the image's own size (controlnet_aux)."""
    detector = _controlnet_aux().CannyDetector()
    h, w = image.shape[:2]
    # controlnet_aux resizes to multiples of 64; padded to such a size (replicating the border adds no edges), the
    # image is processed as is, so the edges stay at the image's own pixels
    ph, pw = -h % 64, -w % 64
    padded = (
        np.pad(np.ascontiguousarray(image), ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else image
    )
    res = min(h + ph, w + pw)
    edges = detector(padded, low, high, detect_resolution=res, image_resolution=res, output_type="np")
    return edges[:h, :w, 0] > 127


def depth_condition(depth: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 depth map in the ControlNet convention (near bright, far dark; no surface black).

    Inverse depth of the hit pixels is scaled to [25, 255], so that even the farthest table edge stays distinct
    from the black of "no surface".
    """
    depth = np.asarray(depth, np.float32)
    hit = depth > 0
    out = np.zeros(depth.shape, np.float32)
    if hit.any():
        inv = 1.0 / depth[hit]
        lo, hi = float(inv.min()), float(inv.max())
        out[hit] = 25.0 + 230.0 * ((inv - lo) / (hi - lo) if hi > lo else 1.0)
    img = np.round(out).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


def control_images(
    rgb: np.ndarray, depth: np.ndarray, low: int = 100, high: int = 200
) -> dict[str, np.ndarray]:
    """ControlNet condition images of a table render: ``{"canny": (H, W, 3) uint8, "depth": (H, W, 3) uint8}``."""
    if rgb.shape[:2] != depth.shape[:2]:
        raise ValueError(f"render colour {rgb.shape[:2]} and depth {depth.shape[:2]} differ in size")
    edges = canny_edges(rgb, low, high)
    return {
        "canny": np.repeat((edges * 255).astype(np.uint8)[..., None], 3, axis=2),
        "depth": depth_condition(depth),
    }


def edge_score(image: np.ndarray, control_edges: np.ndarray, tolerance: float = 0.01, low: int = 100,
               high: int = 200) -> float:  # fmt: skip
    """Chance-corrected recall of the control's edges in ``image`` (1 = all kept, about 0 = unrelated).

    Args:
        image: (H, W, 3) uint8 generated image, at the control's size.
        control_edges: (H, W) bool edges of the render.
        tolerance: match distance as a fraction of the shorter side.
    Returns:
        A score in [-1, 1]: ``(recall - p) / (1 - p)`` when recall >= p, else ``(recall - p) / p``, where recall is
        the fraction of control edge pixels within the tolerance of an edge of ``image`` and ``p`` the fraction of
        all pixels that are (what edges scattered at random would reach). 1.0 when the control has no edges
        (nothing to check).
    """
    import cv2

    if image.shape[:2] != control_edges.shape:
        raise ValueError(f"image {image.shape[:2]} and control {control_edges.shape} differ in size")
    if not control_edges.any():
        return 1.0
    r = max(1, round(tolerance * min(control_edges.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    near = cv2.dilate(canny_edges(image, low, high).astype(np.uint8), kernel) > 0
    recall = float(near[control_edges].mean())
    p = float(near.mean())
    if recall >= p:
        return 0.0 if p >= 1.0 else (recall - p) / (1.0 - p)
    return (recall - p) / p


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(32, 32, 3) float32 in [0, 1]: the box-filtered image the near-duplicate gate compares."""
    from PIL import Image

    small = Image.fromarray(np.asarray(image, np.uint8)).resize((THUMB, THUMB), Image.BOX)
    return np.asarray(small, np.float32) / 255.0


def image_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two images' thumbnails (0 = same; any size, the thumbnails are 32x32)."""
    return float(np.sqrt(np.mean((thumbnail(a) - thumbnail(b)) ** 2)))


def nearest(image: np.ndarray, thumbs: dict[str, np.ndarray]) -> tuple[float, str | None]:
    """(distance, id) of the closest of ``thumbs`` (:func:`thumbnail` s by id); ``(inf, None)`` when empty."""
    best, who = math.inf, None
    t = thumbnail(image)
    for k, o in thumbs.items():
        d = float(np.sqrt(np.mean((t - o) ** 2)))
        if d < best:
            best, who = d, k
    return best, who


# ---------------------------------------------------------------------------- sizes, seeds, models
def generation_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(W, H) to generate at: the camera's exact aspect ratio, sides multiples of 8, shorter side >= resolution.

    Multiples of 64 are preferred (controlnet_aux and SD work on them natively) unless that would overshoot the
    requested resolution by more than half.
    """
    g = math.gcd(width, height)
    a, b = width // g, height // g
    for unit in (64, 8):
        k0 = math.lcm(unit // math.gcd(unit, a), unit // math.gcd(unit, b))  # k*a and k*b multiples of unit
        k = k0 * max(1, math.ceil(resolution / (k0 * min(a, b))))
        if unit == 8 or k * min(a, b) <= 1.5 * resolution:
            break
    return k * a, k * b


def slot_seed(seed: int, split: str, slot: int, attempt: int) -> int:
    """Generation seed of one image attempt, derived from the pack seed (independent of every other slot)."""
    ss = np.random.SeedSequence([int(seed), ("train", "unseen").index(split), int(slot), int(attempt)])
    return int(ss.generate_state(1, np.uint32)[0])


def _fingerprint_folder(path: Path) -> str:
    """Content fingerprint of a local model folder: configs in full, weight files by size + first/last 4 MiB."""
    h = hashlib.sha256()
    chunk = 4 << 20
    for f in sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(x.startswith(".") for x in p.parts[len(path.parts) :])
    ):
        rel = f.relative_to(path).as_posix()
        if f.suffix in (".json", ".txt"):
            h.update(f"{rel}\0".encode() + f.read_bytes())
        elif f.suffix in (".safetensors", ".bin", ".pt", ".ckpt"):
            size = f.stat().st_size
            with f.open("rb") as fh:
                head = fh.read(chunk)
                fh.seek(max(0, size - chunk))
                tail = fh.read(chunk)
            h.update(f"{rel}\0{size}\0".encode() + head + tail)
    return h.hexdigest()[:16]


def resolve_model(ref: str, revision: str | None, marker: str) -> dict[str, Any]:
    """``{"id", "revision", "local"}`` of a model reference (local folder or Hub id); the revision is recorded.

    A local folder's revision is a content fingerprint (``local:<16 hex>``); a Hub model's is the commit of the
    snapshot in the HF cache once loaded (see :meth:`TableGenerator.models`), else the requested revision.
    """
    p = Path(ref).expanduser()
    if p.is_dir():
        if not (p / marker).exists():
            raise AssetError(f"{p} is not a diffusers model folder (no {marker}); pass a folder saved with "
                             "save_pretrained or a Hub id")  # fmt: skip
        return {"id": ref, "revision": "local:" + _fingerprint_folder(p), "local": True, "path": str(p)}
    if p.exists() or ref.startswith((".", "/", "~")):
        raise AssetError(f"model folder {ref!r} not found")
    return {"id": ref, "revision": revision or "main", "local": False, "path": ref}


def _hub_commit(repo_id: str, revision: str | None, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        got = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:  # noqa: BLE001 - the commit is informative only; never fail generation over it
        return None
    if isinstance(got, str) and "/snapshots/" in got:
        return got.split("/snapshots/")[1].split("/")[0]
    return None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise AssetError("--sd.device cuda: no CUDA device is available here; use --sd.device auto or cpu")
    if device not in ("cuda", "cpu"):
        raise AssetError(f"unknown device {device!r}; allowed: auto, cuda, cpu")
    return device


class TableGenerator:
    """A loaded ``StableDiffusionControlNetPipeline``; call it with a prompt, condition images and a seed."""

    def __init__(self, cfg: SDConfig, console=None):
        from vla_gen_bench._compat import ensure_torchvision

        ensure_torchvision()
        import torch
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, UniPCMultistepScheduler
        from diffusers.utils import logging as dlogging

        self.cfg = cfg
        self.types = tuple(cfg.control.split("+"))
        self.device = resolve_device(cfg.device)
        self.dtype = torch.float16 if self.device == "cuda" else torch.float32
        dlogging.disable_progress_bar()
        from transformers.utils import logging as tlogging

        tlogging.disable_progress_bar()  # "Loading weights" of the text encoder
        self.base = resolve_model(cfg.base_model, cfg.base_revision, "model_index.json")
        refs = {
            "canny": (cfg.canny_model, cfg.canny_revision),
            "depth": (cfg.depth_model, cfg.depth_revision),
        }
        self.controlnets = {t: resolve_model(*refs[t], "config.json") for t in self.types}

        def load(cls, info, **kw):
            try:
                # diffusers 0.42 renames torch_dtype to dtype (a FutureWarning); older versions only know torch_dtype
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                    return cls.from_pretrained(info["path"], revision=None if info["local"] else info["revision"],
                                               local_files_only=info["local"], torch_dtype=self.dtype,
                                               variant=cfg.variant, **kw)  # fmt: skip
            except (OSError, ValueError) as e:
                raise AssetError(
                    f"cannot load {info['id']!r}: {e}. Pass a local folder in the diffusers layout, "
                    "or a Hub id on a machine with network access (see docs/asset_pipeline.md)"
                ) from e

        nets = [load(ControlNetModel, self.controlnets[t]) for t in self.types]
        pipe = load(StableDiffusionControlNetPipeline, self.base, controlnet=nets if len(nets) > 1 else nets[0],
                    safety_checker=None, requires_safety_checker=False)  # fmt: skip
        pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        if self.device == "cpu":
            if console is not None:
                console.print(f"[yellow]warning: {CPU_WARNING}")
            else:
                warnings.warn(CPU_WARNING, RuntimeWarning, stacklevel=2)
        for info, fname in [(self.base, "model_index.json")] + [
            (c, "config.json") for c in self.controlnets.values()
        ]:
            if not info["local"]:
                info["revision"] = _hub_commit(info["id"], info["revision"], fname) or info["revision"]

    def models(self) -> dict[str, Any]:
        """Model ids, revisions and sampling settings, as recorded in the pack manifest."""
        c = self.cfg
        scales = {"canny": c.canny_scale, "depth": c.depth_scale}
        import diffusers
        import torch

        return {
            "pipeline": "StableDiffusionControlNetPipeline",
            "base_model": {"id": self.base["id"], "revision": self.base["revision"]},
            "controlnets": [
                {
                    "type": t,
                    "id": self.controlnets[t]["id"],
                    "revision": self.controlnets[t]["revision"],
                    "scale": scales[t],
                }
                for t in self.types
            ],
            "variant": c.variant,
            "scheduler": "UniPCMultistepScheduler",
            "steps": c.steps,
            "guidance": c.guidance,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.device,
            "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__},
        }

    def __call__(self, prompt: str, negative: str, controls: dict[str, np.ndarray], seed: int) -> np.ndarray:
        """(H, W, 3) uint8 image at the controls' size; the same seed gives the same image on the same machine."""
        import torch
        from PIL import Image

        h, w = next(iter(controls.values())).shape[:2]
        images = [Image.fromarray(controls[t]) for t in self.types]
        scales = [self.cfg.canny_scale if t == "canny" else self.cfg.depth_scale for t in self.types]
        gen = torch.Generator("cpu").manual_seed(int(seed))  # CPU generator: the same noise on every device
        with torch.inference_mode():
            out = self.pipe(prompt, image=images if len(images) > 1 else images[0], negative_prompt=negative or None,
                            num_inference_steps=self.cfg.steps, guidance_scale=self.cfg.guidance,
                            controlnet_conditioning_scale=scales if len(scales) > 1 else scales[0],
                            generator=gen, height=h, width=w, output_type="np").images[0]  # fmt: skip
        return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------- the pack loop
class GateFailure(AssetError):
    """Some slots found no image that passes the gates within ``max_attempts`` seeds."""

    def __init__(self, failed: list[dict], root: Path):
        super().__init__(failed, root)
        self.failed, self.root = failed, root

    def __str__(self) -> str:
        lines = [f"{len(self.failed)} table(s) failed the quality gates after every attempt (pack not written; "
                 "accepted images are kept and a re-run resumes):"]  # fmt: skip
        for f in self.failed:
            lines.append(f"  {f['split']} #{f['slot']} {f['prompt_id']}: " + "; ".join(f["reasons"]))
        lines.append(f"rejected images are in {self.root}/generation/rejected/. Raise --gates.max-attempts, "
                     "loosen --gates.edge-min / --gates.dup-max, or edit the prompt.")  # fmt: skip
        return "\n".join(lines)


def _save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(img).save(tmp, format="PNG")
    tmp.replace(path)


def _load_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS))


def plan_slots(prompts: PromptSet, n_train: int, n_unseen: int) -> list[dict[str, Any]]:
    """One slot per image: split, index, prompt (cycled through the split's prompts), table id and name."""
    slots = []
    for split, n in (("train", n_train), ("unseen", n_unseen)):
        pool = prompts.split(split)
        for i in range(n):
            p = pool[i % len(pool)]
            rep = i // len(pool)
            slots.append({"split": split, "slot": i, "prompt": p,
                          "id": f"sd_{p.id}" + (f"_{rep + 1}" if rep else ""),
                          "name": p.name + (f" #{rep + 1}" if rep else "")})  # fmt: skip
    return slots


def generate_pack(
    root: Path,
    name: str,
    prompts: PromptSet,
    render_rgb: np.ndarray,
    render_depth: np.ndarray,
    view: dict[str, Any],
    n_train: int = 16,
    n_unseen: int = 5,
    seed: int = 0,
    sd: SDConfig = SDConfig(),
    gates: GateConfig = GateConfig(),
    generator: Callable[..., np.ndarray] | None = None,
    license: str = "CreativeML Open RAIL-M (generated with Stable Diffusion 1.5)",
    console=None,
) -> dict[str, Any]:
    """Generate (or resume) a table pack in ``root`` and write its manifest.

    Args:
        root: pack folder (created). Re-running with the same settings resumes: images already accepted are kept.
        name: pack name (recorded in the manifest).
        prompts: table descriptions (:func:`load_prompts`).
        render_rgb, render_depth: the empty-table render at the generation size ((H, W, 3) uint8, (H, W) metres).
        view: the policy camera at its own size (``envs.table_render.view_spec``); pack images get its size.
        n_train, n_unseen: number of tables per split.
        seed: pack seed; every image's seed derives from it (:func:`slot_seed`).
        sd, gates: generator and quality-gate settings.
        generator: a loaded :class:`TableGenerator` (built from ``sd`` when None and there is work to do).
        license: license recorded for every image.
        console: rich console for progress (None: quiet).
    Returns:
        The manifest (also written to ``root/manifest.json``).
    Raises:
        GateFailure: some slots found no acceptable image (accepted images are kept; nothing else is written).
        AssetError: a pack with different settings is already in ``root``.
    """
    from vla_gen_bench.assets import packs

    if n_train < 1 or n_unseen < 0:
        raise AssetError(f"need n_train >= 1 and n_unseen >= 0, got {n_train}, {n_unseen}")
    if gates.max_attempts < 1:
        raise AssetError("--gates.max-attempts must be >= 1")
    root = Path(root)
    h, w = render_rgb.shape[:2]
    if (w, h) != generation_size(view["width"], view["height"], sd.resolution):
        raise AssetError(f"render is {w}x{h}, expected {generation_size(view['width'], view['height'], sd.resolution)}"
                         f" for a {view['width']}x{view['height']} camera at resolution {sd.resolution}")  # fmt: skip
    controls = control_images(render_rgb, render_depth, sd.canny_low, sd.canny_high)
    control_edges = controls["canny"][..., 0] > 127
    gen_dir = root / "generation"
    control_meta = {}
    for t, img in controls.items():
        _save_png(img, root / "control" / f"{t}.png")
        control_meta[t] = {"file": f"control/{t}.png", "sha256": _sha(img)}
    _save_png(render_rgb, root / "control" / "render.png")
    control_meta["render"] = {"file": "control/render.png", "sha256": _sha(render_rgb), "size": [w, h]}

    # What fixes every image. The counts are not part of it (slots are independent: a larger n extends a pack),
    # nor max_attempts or the device (a resume may try more seeds, or continue on another machine).
    sd_fixed = {k: v for k, v in asdict(sd).items() if k != "device"}
    gates_fixed = {k: v for k, v in asdict(gates).items() if k != "max_attempts"}
    settings = {"seed": seed, "sd": sd_fixed, "gates": gates_fixed, "view": view, "controls": control_meta,
                "template": prompts.template,
                "prompts": {s: [[p.id, p.prompt, p.negative] for p in prompts.split(s)] for s in ("train", "unseen")}}  # fmt: skip
    settings_file = gen_dir / "settings.json"
    if settings_file.exists():
        old = json.loads(settings_file.read_text())
        if old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise AssetError(f"{root} holds a pack generated with other settings (differ: {', '.join(diff)}); "
                             "choose another --pack name or pass --overwrite")  # fmt: skip
    else:
        gen_dir.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps(settings, indent=1))
    log_file = gen_dir / "attempts.jsonl"
    # (split, slot) -> its attempt records, by attempt (a later line for the same attempt replaces the earlier)
    attempts: dict[tuple[str, int], list[dict]] = {}
    if log_file.exists():
        for line in log_file.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                tries = attempts.setdefault((rec["split"], rec["slot"]), [])
                del tries[rec["attempt"] :]
                tries.append(rec)

    slots = plan_slots(prompts, n_train, n_unseen)
    # table id -> thumbnail of the pack image. The duplicate gate compares an image with the slots before it (train
    # first, so an unseen table is also checked against every train table): a resume decides as a fresh run would.
    accepted: dict[str, np.ndarray] = {}
    order = {s["id"]: i for i, s in enumerate(slots)}
    records: dict[str, dict] = {}
    todo = []
    for s in slots:
        tries = attempts.get((s["split"], s["slot"]), [])
        good = next((k for k, r in enumerate(tries) if r["accepted"]), None)
        if good is not None:
            path = root / tries[good]["file"]
            img = _load_png(path) if path.exists() else None
            if img is not None and _sha(img) == tries[good]["sha256"]:
                accepted[s["id"]], records[s["id"]] = thumbnail(img), tries[good]
                continue
            del tries[good:]  # accepted once, but the file is gone or altered: redo that attempt (same seed)
        todo.append(s)
    failed = []
    models_file = gen_dir / "models.json"
    if todo:
        if generator is None:
            generator = TableGenerator(sd, console=console)
        if hasattr(generator, "models"):
            models_file.write_text(json.dumps(generator.models(), indent=1))
        progress = _progress(console)
        with progress:
            task = progress.add_task("tables", total=len(slots), completed=len(slots) - len(todo))
            for s in todo:
                p: TablePrompt = s["prompt"]
                tries = attempts.setdefault((s["split"], s["slot"]), [])
                reasons = [r["reason"] for r in tries]
                progress.update(task, description=f"{s['split']} {s['id']}")
                while len(tries) < gates.max_attempts:
                    a = len(tries)
                    img_seed = slot_seed(seed, s["split"], s["slot"], a)
                    t0 = time.perf_counter()
                    big = generator(prompts.text(p), p.negative, {t: controls[t] for t in controls}, img_seed)
                    secs = time.perf_counter() - t0
                    score = edge_score(big, control_edges, gates.edge_tolerance, sd.canny_low, sd.canny_high)
                    img = _resize(big, view["width"], view["height"])
                    dist, dup_of = nearest(
                        img, {k: v for k, v in accepted.items() if order[k] < order[s["id"]]}
                    )
                    reason = ""
                    if score < gates.edge_min:
                        reason = f"edge score {score:.3f} < {gates.edge_min}"
                    elif dist <= gates.dup_max:
                        reason = f"near-duplicate of {dup_of} (distance {dist:.4f} <= {gates.dup_max})"
                    ok = not reason
                    rel = (
                        f"tables/{s['id']}.png"
                        if ok
                        else f"generation/rejected/{s['split']}_{s['slot']:02d}_{a}.png"
                    )
                    _save_png(img, root / rel)
                    rec = {"split": s["split"], "slot": s["slot"], "attempt": a, "id": s["id"], "prompt_id": p.id,
                           "seed": img_seed, "file": rel, "sha256": _sha(img), "accepted": ok, "reason": reason,
                           "scores": {"edge": round(score, 4),
                                      "dup_distance": None if dup_of is None else round(dist, 4), "dup_of": dup_of},
                           "device": getattr(generator, "device", None), "seconds": round(secs, 3)}  # fmt: skip
                    # one line per finished image: an interruption loses at most the image in progress
                    with log_file.open("a") as f:
                        f.write(json.dumps(rec) + "\n")
                    tries.append(rec)
                    if ok:
                        accepted[s["id"]], records[s["id"]] = thumbnail(img), rec
                        break
                    reasons.append(reason)
                else:
                    failed.append(
                        {"split": s["split"], "slot": s["slot"], "prompt_id": p.id, "reasons": reasons}
                    )
                progress.advance(task)
    if failed:
        raise GateFailure(failed, root)
    # the models of the run that generated the images (a resume that generates nothing keeps them)
    models = json.loads(models_file.read_text()) if models_file.exists() else _models_from_settings(sd)
    entries = []
    for s in slots:
        rec, p = records[s["id"]], s["prompt"]
        params = {"view": {**view, "aligned": True}, "prompt": prompts.text(p), "prompt_id": p.id,
                  "family": p.family, "negative_prompt": p.negative, "attempt": rec["attempt"],
                  "scores": rec["scores"]}  # fmt: skip
        entries.append(packs.table_entry(s["id"], s["split"], "sd-controlnet", s["name"], params, rec["seed"],
                                         rec["sha256"], license, rec["file"]))  # fmt: skip
    keys = ("split", "slot", "attempt", "prompt_id", "seed", "file", "sha256", "reason", "scores")
    rejected = [{k: r[k] for k in keys} for s in slots for r in attempts.get((s["split"], s["slot"]), [])
                if not r["accepted"]]  # fmt: skip
    extra = {
        "generator": models,
        "control": {
            "types": list(sd.control.split("+")),
            **control_meta,
            "canny_thresholds": [sd.canny_low, sd.canny_high],
        },
        "generation_size": [w, h],
        "seed": seed,
        "gates": asdict(gates),
        "prompts_template": prompts.template,
        "rejected": rejected,
    }
    return packs.write_manifest(root, name, "sd-controlnet", view={**view, "aligned": True}, entries=entries,
                                extra=extra)  # fmt: skip


def _models_from_settings(sd: SDConfig) -> dict[str, Any]:
    return {"base_model": {"id": sd.base_model, "revision": sd.base_revision},
            "controlnets": [{"type": t, "id": getattr(sd, f"{t}_model"), "revision": getattr(sd, f"{t}_revision"),
                             "scale": getattr(sd, f"{t}_scale")} for t in sd.control.split("+")],
            "steps": sd.steps, "guidance": sd.guidance}  # fmt: skip


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def advance(self, *a, **k):
        pass


def _progress(console):
    if console is None:
        return _Quiet()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)  # fmt: skip
