"""Evaluation during and after RL training: ``vgb evaluate`` of an exported checkpoint on the evaluation suite
(:func:`evaluate_policy`) and the per-variant success rates with Wilson intervals (:func:`summarize_episodes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_gen_bench.training.rl_config import EvalConfig


def evaluate_policy(ckpt: Path, out: Path, cfg: EvalConfig, camera: str, unnorm_key: str | None,
                    sim_freq: int = 100) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``vgb evaluate`` of an exported checkpoint on ``cfg.suite``; per variant: n, successes, rate, Wilson CI."""
    from rich.console import Console

    from vla_gen_bench.eval.evaluate import EPISODES, Evaluate, evaluate
    from vla_gen_bench.eval.stats import wilson_interval

    ev = Evaluate(policy=f"openvla:{Path(ckpt).resolve()}", out=Path(out), suite=cfg.suite, episodes=cfg.episodes,
                  seeds=tuple(cfg.seeds), workers=cfg.workers, camera=camera, sim_freq=sim_freq, unnorm_key=unnorm_key,
                  policy_arg=(f"temperature={cfg.temperature}",), videos=0, report=False)  # fmt: skip
    evaluate(ev, console=Console(stderr=True, quiet=True))
    return summarize_episodes(Path(out) / EPISODES, wilson_interval)


def summarize_episodes(jsonl: Path, wilson=None) -> dict[str, dict[str, Any]]:
    if wilson is None:
        from vla_gen_bench.eval.stats import wilson_interval as wilson
    from vla_gen_bench.eval.records import read

    per: dict[str, list[bool]] = {}
    grasp: dict[str, list[bool]] = {}
    for r in read(jsonl).records:  # the evaluator's reader: one record per episode, a torn last line skipped
        per.setdefault(r.variant, []).append(r.success)
        grasp.setdefault(r.variant, []).append(r.grasped)
    out = {}
    for v, xs in per.items():
        s, n = sum(xs), len(xs)
        lo, hi = wilson(s, n)
        out[v] = {"n": n, "successes": s, "rate": s / n, "ci_low": lo, "ci_high": hi,
                  "grasp_rate": sum(grasp[v]) / n}  # fmt: skip
    return out
