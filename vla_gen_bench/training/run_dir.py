"""An RL run's directory: ``config.json`` (written before any work, checked on resume), the resumable training state
``state.pt`` (:func:`save_state` / :func:`restore_state`), the per-iteration ``metrics.csv`` with its learning curve
(:class:`MetricsLog`) and the wall-clock split of an iteration (:class:`Timer`).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from vla_gen_bench.training.actor_critic import ActorCritic


def to_jsonable(obj) -> Any:
    if is_dataclass(obj):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


class MetricsLog:
    """Append-only ``metrics.csv``: one row per iteration, columns fixed by the first row (kept on resume); each row
    also redraws the learning curve ``curve.png`` beside it (training/curves.py)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fieldnames: list[str] | None = None
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open() as f:
                self.fieldnames = next(csv.reader(f))

    def log(self, row: dict[str, Any]) -> None:
        new = self.fieldnames is None
        if new:
            self.fieldnames = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fieldnames, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
        self.replot()

    def replot(self) -> None:
        """Redraw ``curve.png`` from the rows so far and the run's ``eval.jsonl``."""
        from vla_gen_bench.training.curves import plot_curve

        plot_curve(self.rows(), self.path.with_name("curve.png"), self.path.with_name("eval.jsonl"))

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))


STATE = "state.pt"
RESUME_CHECK = ("model", "rollout")


def prepare_run_dir(out: Path, config, algo: str) -> dict[str, Any] | None:
    """Create ``out``, write ``config.json`` (before any work) and return the saved training state to resume from
    (None for a fresh run).

    Raises:
        ValueError: ``out`` holds a run of another algorithm or with different model / rollout settings.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = to_jsonable(config)
    state = None
    if (out / STATE).is_file():
        state = torch.load(out / STATE, map_location="cpu", weights_only=False)
        old = state["config"]
        if state["algo"] != algo:
            raise ValueError(f"{out} holds a {state['algo']} run; use another --out")
        clash = [k for k in RESUME_CHECK if _resume_view(old, k) != _resume_view(cfg, k)]
        if clash:
            raise ValueError(f"{out} was started with different {', '.join(clash)} settings; use another --out "
                             f"(was {[old.get(k) for k in clash]}, now {[cfg.get(k) for k in clash]})")  # fmt: skip
    (out / "config.json").write_text(
        json.dumps({"algo": algo, **cfg, "versions": _versions()}, indent=1) + "\n"
    )
    return state


def _resume_view(cfg: dict[str, Any], key: str) -> Any:
    """The part of a config a resumed run must share (the number of rollout workers may change)."""
    v = cfg.get(key)
    return {k: x for k, x in v.items() if k != "workers"} if isinstance(v, dict) else v


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for p in ("torch", "transformers", "peft", "mani_skill", "vla-gen-bench"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "absent"
    return out


def save_state(out: Path, algo: str, config, ac: ActorCritic, optimizer, iteration: int, env_steps: int,
               extra: dict | None = None) -> Path:  # fmt: skip
    """Atomically write ``state.pt``: trainable tensors, optimizer, counters, config (resume point)."""
    import torch

    out = Path(out)
    state = {"algo": algo, "config": to_jsonable(config), "iteration": int(iteration), "env_steps": int(env_steps),
             "trainable": ac.trainable_state(), "optimizer": optimizer.state_dict() if optimizer else None,
             "torch_rng": torch.get_rng_state(), "extra": extra or {}}  # fmt: skip
    tmp = out / (STATE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / STATE)
    return out / STATE


def restore_state(state: dict[str, Any], ac: ActorCritic, optimizer) -> tuple[int, int]:
    """Load a ``state.pt`` dict into ``ac`` and ``optimizer``; returns (iterations done, env steps done)."""
    import torch

    ac.load_trainable_state(state["trainable"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"]), int(state["env_steps"])


@dataclass
class Timer:
    """Wall-clock split of one iteration."""

    marks: dict[str, float] = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.marks[name] = timer.marks.get(name, 0.0) + time.perf_counter() - self.t

        return _T()
