"""Reference checkpoints kept in the repository (``baselines/checkpoints/<name>/``), each with its model card.

``vgb model bundle`` copies a trained OpenVLA checkpoint folder (the loadable files only: never
``trainer_state.pt``, ``state.pt`` or optimiser state) into ``<out>/``, refuses a folder over :data:`MAX_BYTES`, and
writes next to the weights:

* ``card.json``: the checkpoint's fingerprint (:func:`vla_gen_bench.models.checkpoint.checkpoint_fingerprint`, the
  ``checkpoint_sha256`` that ``vgb evaluate`` records) and every file's sha256; parameter count and size; the git
  commit the bundle was made from; from the training run folder (``--run``): the recipe file and the sha256 of its
  TOML text, the run's config, the demonstration dataset's fingerprint (:func:`dataset_fingerprint`) and the
  training cost read from ``metrics.csv`` / ``DONE``; from each evaluation folder (``--eval``, written by
  ``vgb evaluate``): successes, rate and Wilson interval per variant, counted from ``episodes.jsonl``. An
  evaluation whose ``checkpoint_sha256`` is not the bundle's is refused: the table is about these weights only.
* ``MODEL_CARD.md``: the same for people.

``vgb model verify <folder>`` (:func:`verify_bundle`) recomputes the fingerprints and names what differs.
Nothing heavy is imported here: torch loads inside the functions that read checkpoints.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

MAX_BYTES = 20_000_000
"""Largest bundle (all files copied from the checkpoint): 20 MB, so that a clone stays small."""
CARD_JSON = "card.json"
CARD_MD = "MODEL_CARD.md"
CARD_FORMAT = 1
BUNDLES = Path("baselines") / "checkpoints"
"""Where the repository keeps its bundles (relative to the repository root)."""

# The files of an HF OpenVLA folder that loading needs or that describe it; anything else is left behind.
_FILES = {
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "dataset_statistics.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "value_head.safetensors",  # RL exports: the critic next to the policy (small; lets RL continue from it)
}
_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_ADAPTER = "adapter"
_ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors", "dataset_statistics.json"}


class BundleError(ValueError):
    """A bundle that cannot be made or does not verify; the message says what is wrong and what to do."""


def _sha256(path: Path, h: Any = None) -> Any:
    """Stream ``path`` into ``h`` (a new sha256 when None) and return it."""
    h = h if h is not None else hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h


# ---------------------------------------------------------------------------- dataset fingerprint
def dataset_fingerprint(root: str | Path, max_episodes: int | None = None) -> dict[str, Any]:
    """sha256 of a demonstration folder written by ``vgb collect-demos``.

    Hashed, in order: the card's ``config`` (``dataset.json``, canonical JSON), then for every episode in sorted name
    order (the order :class:`~vla_gen_bench.training.dataset.DemoDataset` reads) the name and bytes of its ``.npz``
    and of its ``.images.npy``. Names containing ``.tmp`` (writes in progress) are skipped.

    Args:
        max_episodes: hash only the first N episodes (a run trained on a prefix, ``num_demos``); None = all.

    Returns:
        ``{"sha256", "episodes", "failed"}`` (episodes hashed; episodes in ``failed/``).

    Raises:
        BundleError: no ``dataset.json``, an episode without its images, fewer episodes than ``max_episodes``.
    """
    root = Path(root)
    card_path = root / "dataset.json"
    if not card_path.is_file():
        raise BundleError(f"{root} has no dataset.json; is it a folder written by 'vgb collect-demos'?")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{card_path} is not valid JSON: {e}") from None
    h = hashlib.sha256()
    config = json.dumps(card.get("config", {}), sort_keys=True, separators=(",", ":"), default=str)
    h.update(b"config\0" + config.encode() + b"\0")
    episodes = sorted(p for p in (root / "episodes").glob("*.npz") if ".tmp" not in p.name)
    if max_episodes is not None:
        if max_episodes > len(episodes):
            raise BundleError(f"{root} has {len(episodes)} episodes, the run trained on {max_episodes}")
        episodes = episodes[:max_episodes]
    for npz in episodes:
        images = npz.with_name(npz.name.removesuffix(".npz") + ".images.npy")
        if not images.is_file():
            raise BundleError(
                f"{npz} has no {images.name}; the dataset is incomplete (re-run 'vgb collect-demos')"
            )
        for f in (npz, images):
            h.update(f.name.encode() + b"\0")
            _sha256(f, h)
    failed = [p for p in (root / "failed").glob("*.json") if ".tmp" not in p.name]
    return {"sha256": h.hexdigest(), "episodes": len(episodes), "failed": len(failed)}


# ---------------------------------------------------------------------------- pieces of the card
def _plan(checkpoint: Path) -> tuple[list[str], list[str]]:
    """(files to copy, files left behind), relative to ``checkpoint``, sorted."""
    keep, skip = [], []
    for p in sorted(checkpoint.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(checkpoint)
        if len(rel.parts) == 1 and (rel.name in _FILES or _SHARD.fullmatch(rel.name)):
            keep.append(rel.as_posix())
        elif len(rel.parts) == 2 and rel.parts[0] == _ADAPTER and rel.name in _ADAPTER_FILES:
            keep.append(rel.as_posix())
        else:
            skip.append(rel.as_posix())
    return keep, skip


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout holding the package (``git rev-parse HEAD``; dirty = tracked files
    modified); both None outside a git checkout."""
    from vla_gen_bench.paths import repo_root

    root = Path(root) if root is not None else repo_root()
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30)  # fmt: skip
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": head.stdout.strip(), "dirty": dirty}


def recipe_info(name: str | None) -> dict[str, Any] | None:
    """The recipe a run names (``extra.recipe``): a file shipped in ``vla_gen_bench/recipes/`` or a path to a TOML
    file, with the sha256 of its text (None when it cannot be found)."""
    if not name:
        return None
    from importlib import resources

    from vla_gen_bench import recipes

    res = resources.files(recipes) / Path(name).name
    if Path(name).name == name and res.is_file():
        text, source = res.read_bytes(), f"vla_gen_bench/recipes/{name}"
    elif Path(name).is_file():
        text, source = Path(name).read_bytes(), name
    else:
        return {"file": name, "source": None, "sha256": None}
    return {"file": Path(name).name, "source": source, "sha256": hashlib.sha256(text).hexdigest()}


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from None
    return data if isinstance(data, dict) else None


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _add_dagger_parent_cost(run: Path, cost: dict[str, Any]) -> None:
    """A DAgger round's folder (``<out>/daggerN``) records only its own collection; the parent run's ``DONE`` holds
    the demonstrator's collection and every round's. Sum them up to this round into ``collect_wall_s`` (the parts
    in ``collect_parts``), and earlier rounds' training into ``earlier_train_wall_s``."""
    parent = _read_json(run.parent / "DONE")
    rounds = (parent or {}).get("dagger", {}).get("rounds") if isinstance(parent, dict) else None
    if not rounds or not run.name.startswith("dagger"):
        return
    mine = [r for r in rounds if Path(str(r.get("final", ""))).parent.name == run.name]
    if not mine:
        return
    upto = [r for r in rounds if int(r.get("round", 0)) <= int(mine[0].get("round", 0))]
    parts = {"demonstrations": _num(parent.get("collect_wall_s")) or 0.0,
             **{f"dagger round {r.get('round')}": _num(r.get("collect_wall_s")) or 0.0 for r in upto}}  # fmt: skip
    cost["collect_wall_s"] = round(sum(parts.values()), 1)
    cost["collect_parts"] = parts
    earlier = [(_num(r.get("train_wall_s")) or 0.0) for r in upto if r is not mine[0]]
    if earlier:
        cost["earlier_train_wall_s"] = round(sum(earlier), 1)


def training_info(run_dir: str | Path, recipe: str | None = None) -> dict[str, Any]:
    """What the card says about training, read from a run folder of ``vgb train-baseline``.

    SFT runs: ``config.json`` (the SFTConfig: ``demos``, ``num_demos``, ``extra.recipe``, ``device``), ``metrics.csv``
    (cumulative ``step``, ``samples``, ``wall_s``), ``DONE`` (``train_wall_s``, ``collect_wall_s``) and
    ``command.json`` when present. RL runs (``algo`` in config.json): ``metrics.csv`` (``iteration``,
    ``env_steps``, ``rollout_s``, ``update_s``); their config names no recipe, so pass ``recipe``.

    Raises:
        BundleError: no such folder, or no config.json in it.
    """
    run = Path(run_dir)
    config = _read_json(run / "config.json")
    if config is None:
        raise BundleError(f"{run} has no config.json; --run takes the folder 'vgb train-baseline' wrote "
                          f"(e.g. runs/baselines/sft-tiny, the parent of final/)")  # fmt: skip
    algo = config.get("algo", "sft")
    extra = config.get("extra") or {}
    rows: list[dict[str, str]] = []
    if (run / "metrics.csv").is_file():
        with (run / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    done = _read_json(run / "DONE")
    last = rows[-1] if rows else {}
    if algo == "sft":
        wall = _num((done or {}).get("train_wall_s"))
        cost = {
            "steps": int(_num(last.get("step")) or 0) if last else None,
            "samples": int(_num(last.get("samples")) or 0) if last else None,
            "train_wall_s": wall if wall is not None else _num(last.get("wall_s")),
            "train_wall_s_from": "DONE" if wall is not None else ("metrics.csv" if last else None),
            "collect_wall_s": _num((done or {}).get("collect_wall_s")),
            "device": config.get("device"),
            "threads": config.get("threads"),
        }
        _add_dagger_parent_cost(run, cost)
        demos = config.get("demos")
        num_demos = config.get("num_demos")
        dataset: dict[str, Any] | None = {"path": demos, "num_demos": num_demos, "sha256": None}
        if demos and (Path(demos) / "dataset.json").is_file():
            dataset.update(dataset_fingerprint(demos, max_episodes=num_demos))
        extra_demos = config.get("extra_demos") or []
        if extra_demos:  # e.g. DAgger rounds: every episode of each folder
            dataset["extra"] = [
                {"path": str(r), "sha256": None, **(dataset_fingerprint(r) if (Path(r) / "dataset.json").is_file()
                                                     else {})}
                for r in extra_demos
            ]  # fmt: skip
    else:
        spent = [(_num(r.get("rollout_s")) or 0.0) + (_num(r.get("update_s")) or 0.0) for r in rows]
        cost = {
            "iterations": int(_num(last.get("iteration")) or 0) if last else None,
            "env_steps": int(_num(last.get("env_steps")) or 0) if last else None,
            "train_wall_s": round(sum(spent), 3) if rows else None,
            "train_wall_s_from": "metrics.csv (rollout_s + update_s)" if rows else None,
            "device": (config.get("model") or {}).get("device"),
        }
        dataset = None
    return {
        "run": str(run_dir),
        "algo": algo,
        "recipe": recipe_info(recipe or extra.get("recipe") or config.get("recipe")),
        "recipe_name": extra.get("recipe_name"),
        "init": config.get("init") if algo == "sft" else (config.get("model") or {}).get("init"),
        "dataset": dataset,
        "cost": cost,
        "done": done,
        "config": config,
        "command": _read_json(run / "command.json"),
    }


def eval_rows(folder: str | Path, checkpoint_sha256: str | None = None) -> list[dict[str, Any]]:
    """One row per variant of an evaluation folder written by ``vgb evaluate``, counted from ``episodes.jsonl``.

    Raises:
        BundleError: no run.json / episodes; the run evaluated other weights than ``checkpoint_sha256`` or
            recorded no fingerprint.
    """
    from vla_gen_bench.eval import records
    from vla_gen_bench.eval.stats import summarize

    d = Path(folder)
    try:
        run = records.read_run(d)
        episodes = records.read(d / records.EPISODES)
    except records.RecordError as e:
        raise BundleError(str(e)) from None
    meta = run.policy_metadata or {}
    sha = meta.get("checkpoint_sha256")
    if checkpoint_sha256 is not None:
        if sha is None:
            raise BundleError(f"{d}/run.json records no checkpoint_sha256 (policy {run.policy}), so it cannot "
                              f"be shown to be about these weights; evaluate with the default fingerprint=true")  # fmt: skip
        if sha != checkpoint_sha256:
            raise BundleError(
                f"{d} evaluated other weights: its checkpoint_sha256 is {sha[:16]}..., the bundled checkpoint's is "
                f"{checkpoint_sha256[:16]}... (the card's table must be about these weights). Bundle the checkpoint "
                f"that run evaluated ({meta.get('checkpoint')}) or evaluate this one"
            )
    if not episodes.records:
        raise BundleError(f"{d / records.EPISODES} holds no episodes")
    seeds: dict[str, set[int]] = {}
    for r in episodes.records:
        seeds.setdefault(r.variant, set()).add(r.seed)
    temperature = meta.get("temperature", (run.policy_args or {}).get("temperature"))
    # actions run per forward pass (chunking policies): a receding horizon runs fewer than the chunk
    execute = meta.get("execute") or meta.get("action_chunk")
    expected = len(run.seeds) * run.episodes_per_seed
    return [{
        "folder": str(folder), "suite": run.suite, "variant": v.variant, "seeds": sorted(seeds[v.variant]),
        "episodes": v.n, "successes": v.successes, "success_rate": round(v.rate, 6),
        "wilson_low": round(v.ci_low, 6), "wilson_high": round(v.ci_high, 6), "temperature": temperature,
        "camera": run.camera, "checkpoint_sha256": sha,
        "executes": f"{execute} of {meta['action_chunk']}" if meta.get("action_chunk") else None,
        "complete": v.n == expected if expected else None,
    } for v in summarize(episodes.records, run.control, run.variants).variants]  # fmt: skip


# ---------------------------------------------------------------------------- bundle / verify
def _file_table(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    return {
        n: {"bytes": (folder / n).stat().st_size, "sha256": _sha256(folder / n).hexdigest()} for n in names
    }


def bundle_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    run_dir: str | Path | None = None,
    evals: Sequence[str | Path] = (),
    name: str | None = None,
    note: str | None = None,
    recipe: str | None = None,
) -> Path:
    """Copy ``checkpoint`` into ``out`` (replacing an earlier bundle there) with ``card.json`` and ``MODEL_CARD.md``.

    Args:
        checkpoint: an HF OpenVLA folder (``<run>/final`` of ``vgb train-baseline sft``, ``<run>/policy`` of RL).
        out: the bundle folder, e.g. ``baselines/checkpoints/sft-tiny``.
        run_dir: the training run folder (config.json, metrics.csv, DONE): recipe, dataset, cost.
        evals: evaluation folders of these weights (``vgb evaluate --out``).
        name: the bundle's name (default: ``out``'s folder name).
        note: free text for the card.
        recipe: the recipe file, when the run's config does not name it (RL runs).

    Raises:
        BundleError: the bundle would exceed :data:`MAX_BYTES`; an evaluation of other weights; ``out`` holds
            something that is not a bundle; unreadable run or evaluation folders.
        CheckpointError: ``checkpoint`` is not a loadable checkpoint folder.
    """
    import vla_gen_bench
    from vla_gen_bench.models.checkpoint import checkpoint_fingerprint, describe, read_config, weight_files

    src, out = Path(checkpoint), Path(out)
    weight_files(src)  # CheckpointError when it holds no weights
    read_config(src)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise BundleError(f"--out {out} must be outside the checkpoint folder {src}")
    if out.exists() and any(out.iterdir()) and not (out / CARD_JSON).is_file():
        raise BundleError(f"{out} exists and is not a bundle (no {CARD_JSON}); choose an empty or new folder")
    keep, skipped = _plan(src)
    size = sum((src / n).stat().st_size for n in keep)
    if size > MAX_BYTES:
        biggest = max(keep, key=lambda n: (src / n).stat().st_size)
        raise BundleError(
            f"{src}: the bundle would take {_mb(size)} ({size} bytes), over the {_mb(MAX_BYTES)} limit for "
            f"checkpoints kept in the repository (largest file: {biggest}, {_mb((src / biggest).stat().st_size)}); "
            f"bundle a smaller model, or keep this one outside the repository"
        )
    training = training_info(run_dir, recipe) if run_dir is not None else None
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for n in keep:
            (tmp / n).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / n, tmp / n)
        sha = checkpoint_fingerprint(tmp)
        rows = [row for folder in evals for row in eval_rows(folder, sha)]
        info = describe(tmp)
        config = read_config(tmp)
        card = {
            "format": CARD_FORMAT,
            "name": name or out.name,
            "note": note,
            "checkpoint_sha256": sha,
            "parameters": info["parameters"],
            "size_bytes": size,
            "preset": info["preset"],
            "action_chunk": int(getattr(config, "action_chunk", 1)),
            # the official OpenVLA HF code loads it, or the options only vgb has (docs/openvla.md)
            "compatibility": config.vgb_only_reasons() or "loads in the official OpenVLA code",
            "unnorm_keys": info["unnorm_keys"],
            "files": _file_table(tmp, keep),
            "source": str(checkpoint),
            "left_behind": skipped,
            "git": git_state(),
            "vgb_version": vla_gen_bench.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "training": training,
            "evals": rows,
        }
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=1, default=str) + "\n")
        (tmp / CARD_MD).write_text(render_card(card, out))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _compatibility(card: dict[str, Any]) -> list[str]:
    """The card's line on which OpenVLA code loads the weights (none for cards written before it was recorded)."""
    c = card.get("compatibility")
    if c is None:
        return []
    if isinstance(c, list):
        return [f"* loads in vgb only: {'; '.join(c)}"]
    return [f"* {c}"]


def read_card(folder: str | Path) -> dict[str, Any]:
    """``card.json`` of a bundle; BundleError when absent or unreadable."""
    path = Path(folder) / CARD_JSON
    if not path.is_file():
        raise BundleError(f"{folder} has no {CARD_JSON}; is it a bundle written by 'vgb model bundle'?")
    card = _read_json(path)
    if card is None or "checkpoint_sha256" not in card:
        raise BundleError(f"{path} is not a model card (no checkpoint_sha256)")
    return card


def verify_bundle(folder: str | Path) -> dict[str, Any]:
    """Recompute a bundle's fingerprints and compare them with its ``card.json``.

    Returns:
        ``{"name", "checkpoint_sha256", "size_bytes", "files"}`` as verified.

    Raises:
        BundleError: a file changed, missing or unexpected, a fingerprint that differs, a bundle over the size limit;
            the message names each and how to fix it.
    """
    from vla_gen_bench.models.checkpoint import CheckpointError, checkpoint_fingerprint

    folder = Path(folder)
    card = read_card(folder)
    listed: dict[str, dict[str, Any]] = card.get("files") or {}
    present = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name not in (CARD_JSON, CARD_MD)
    )
    problems = []
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    changed = [n for n in sorted(set(listed) & set(present))
               if _sha256(folder / n).hexdigest() != listed[n].get("sha256")]  # fmt: skip
    if missing:
        problems.append(f"missing files: {', '.join(missing)}")
    if extra:
        problems.append(f"files the card does not list: {', '.join(extra)}")
    if changed:
        problems.append(f"files whose sha256 differs from the card: {', '.join(changed)}")
    try:
        sha = checkpoint_fingerprint(folder)
    except CheckpointError as e:
        sha = None
        problems.append(f"not a loadable checkpoint: {e}")
    if sha is not None and sha != card["checkpoint_sha256"]:
        problems.append(f"checkpoint_sha256 is {sha}, the card says {card['checkpoint_sha256']}")
    size = sum((folder / n).stat().st_size for n in present)
    if size > MAX_BYTES:
        problems.append(f"the bundle takes {_mb(size)}, over the {_mb(MAX_BYTES)} limit")
    if problems:
        source = card.get("source") or "<checkpoint>"
        fix = (f"The weights or the card were changed after bundling: restore the files from git (git checkout -- "
               f"{folder}), or re-run the bundle command from the training output (vgb model bundle --checkpoint "
               f"{source} --out {folder} ...) so that the card describes the files")  # fmt: skip
        raise BundleError(f"{folder} does not match its {CARD_JSON}: {'; '.join(problems)}. {fix}")
    return {"name": card.get("name"), "checkpoint_sha256": sha, "size_bytes": size, "files": len(present)}


# ---------------------------------------------------------------------------- MODEL_CARD.md
def _fmt_s(s: float | None) -> str:
    if s is None:
        return "not recorded"
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _control_arm(card: dict[str, Any]) -> str:
    """The control arm of the task family the card's first evaluation is about (``ind``: put_on, or no evaluation)."""
    from vla_gen_bench.families import get_family
    from vla_gen_bench.variants import get_variant

    for e in card.get("evals") or []:
        try:
            return get_family(get_variant(e["variant"]).family).control
        except (KeyError, ValueError):
            continue
    return "ind"


def render_card(card: dict[str, Any], out: str | Path) -> str:
    """MODEL_CARD.md: the card as prose and a markdown table."""
    out = Path(out).as_posix()
    git = card.get("git") or {}
    commit = git.get("commit")
    where = (f"commit `{commit[:12]}`" + (" with uncommitted changes" if git.get("dirty") else "")
             if commit else "outside a git checkout")  # fmt: skip
    lines = [f"# Reference checkpoint `{card['name']}`", ""]
    if card.get("note"):
        lines += [card["note"], ""]
    t = card.get("training")
    sources = ["the bundled files themselves"]
    if t:
        sources.append(f"the training run `{t['run']}` (config.json, metrics.csv, DONE)")
    if card.get("evals"):
        sources.append("the evaluation folders named in the table (run.json, episodes.jsonl)")
    lines += [
        f"Written by `vgb model bundle`. Every number here is read from {', '.join(sources)}; "
        f"`{CARD_JSON}` holds the same in machine-readable form. `vgb model verify {out}` checks the files against it.",
        "",
        "## Weights",
        "",
        f"* checkpoint_sha256 `{card['checkpoint_sha256']}` (the fingerprint `vgb evaluate` records in run.json)",
        f"* preset `{card.get('preset')}`, {card['parameters'] / 1e6:.2f} M parameters, {_mb(card['size_bytes'])} "
        f"in {len(card.get('files') or {})} files, action chunk {card.get('action_chunk', 1)}, unnorm keys "
        f"{', '.join(card.get('unnorm_keys') or []) or 'none'}",
        *_compatibility(card),
        f"* copied from `{card.get('source')}` at {where} (vgb {card.get('vgb_version')}, {card.get('created')})",
        f"* evaluate: `vgb evaluate --policy openvla:{out} --suite {_control_arm(card)} --camera fast "
        "--policy.temperature 0.6 "
        f"--out runs/eval-{card['name']}`",
        "",
    ]
    if t:
        lines += ["## Training", ""]
        r = t.get("recipe")
        if r:
            sha = f"sha256 `{r['sha256']}`" if r.get("sha256") else "its text was not found when bundling"
            lines.append(f"* recipe `{r['file']}` ({sha})")
        else:
            lines.append("* recipe: not recorded by the run")
        if t.get("init"):
            lines.append(f"* initialised from `{t['init']}`")
        ds = t.get("dataset")
        if ds:
            first = f"the first {ds['num_demos']} episodes of " if ds.get("num_demos") is not None else ""
            if ds.get("sha256"):
                lines.append(f"* data: {first}`{ds['path']}`, sha256 `{ds['sha256']}` ({ds['episodes']} episodes "
                             f"hashed; {ds['failed']} failed episodes left out by the collector)")  # fmt: skip
            else:
                lines.append(f"* data: {first}`{ds['path']}` (not present when bundling: no fingerprint)")
            for x in ds.get("extra") or []:
                what = (f"sha256 `{x['sha256']}` ({x['episodes']} episodes hashed)" if x.get("sha256")
                        else "not present when bundling: no fingerprint")  # fmt: skip
                lines.append(f"* more data: `{x['path']}`, {what}")
        c = t.get("cost") or {}
        if t.get("algo") == "sft":
            lines.append(f"* cost: {c.get('steps')} steps, {c.get('samples')} samples, "
                         f"{_fmt_s(c.get('train_wall_s'))} of training (from {c.get('train_wall_s_from')}) on device "
                         f"`{c.get('device')}`" + (f", plus {_fmt_s(c['collect_wall_s'])} collecting demonstrations"
                                                   if c.get("collect_wall_s") else "")
                         + (" (" + ", ".join(f"{k} {_fmt_s(v)}" for k, v in c["collect_parts"].items()) + ")"
                            if c.get("collect_parts") else "")
                         + (f", plus {_fmt_s(c['earlier_train_wall_s'])} training earlier DAgger rounds"
                            if c.get("earlier_train_wall_s") else ""))  # fmt: skip
        else:
            lines.append(f"* cost ({t.get('algo')}): {c.get('iterations')} iterations, {c.get('env_steps')} env steps, "
                         f"{_fmt_s(c.get('train_wall_s'))} (from {c.get('train_wall_s_from')}) on device "
                         f"`{c.get('device')}`")  # fmt: skip
        lines.append("")
    rows = card.get("evals") or []
    lines += ["## Evaluation", ""]
    if not rows:
        lines += ["No evaluation was bundled with these weights.", ""]
    else:
        lines += [
            "Success is counted from each folder's episodes.jsonl; 95 % Wilson intervals. Every run evaluated "
            "exactly these weights (its checkpoint_sha256 equals the bundle's).",
            "",
            "| folder | suite | variant | seeds | camera | temperature | actions run per chunk | successes / episodes "
            "| success | Wilson 95 % |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in rows:
            partial = "" if e.get("complete") in (True, None) else " (incomplete run)"
            lines.append(
                f"| `{e['folder']}` | {e['suite']} | {e['variant']} | {', '.join(map(str, e['seeds']))} | "
                f"{e['camera']} | {e['temperature']} | {e.get('executes') or 'one action'} | "
                f"{e['successes']} / {e['episodes']}{partial} | "
                f"{_pct(e['success_rate'])} | [{_pct(e['wilson_low'])}, {_pct(e['wilson_high'])}] |"
            )
        lines.append("")
    return "\n".join(lines)
