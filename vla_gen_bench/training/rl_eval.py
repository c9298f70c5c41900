"""Evaluation during and after RL training (:func:`evaluate_during_training`): ``vgb evaluate`` of the exported
policy on the evaluation suite (:func:`evaluate_policy`), its per-variant success rates with Wilson intervals from
the evaluator's own summary (:func:`summarize_episodes`, eval/stats.py) appended to the run's ``eval.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_gen_bench.training.rl_config import EvalConfig


def evaluate_during_training(ac, cfg, iteration: int | None, console) -> dict[str, dict[str, Any]]:
    """Evaluate the training policy ``ac`` of the run ``cfg`` (an algorithm's config) and record the result.

    ``iteration`` N exports the policy to ``<out>/checkpoints/iter_000N`` and evaluates it into
    ``<out>/eval/iter_000N``; None evaluates the final ``<out>/policy`` into ``<out>/eval/final``. Appends
    ``{"tag", "results"}`` to ``<out>/eval.jsonl``, redraws ``curve.png`` and prints one line per evaluation.

    Returns:
        Per variant: n, successes, rate, ci_low, ci_high, grasp_rate.
    """
    import json

    from vla_gen_bench.training.actor_critic import export_policy
    from vla_gen_bench.training.run_dir import MetricsLog

    tag = f"iter_{iteration:04d}" if iteration is not None else "final"
    ckpt = export_policy(ac, cfg.out / "checkpoints" / tag) if iteration is not None else cfg.out / "policy"
    res = evaluate_policy(ckpt, cfg.out / "eval" / tag, cfg.eval, cfg.rollout.camera, ac.unnorm_key,
                          cfg.rollout.sim_freq)  # fmt: skip
    with (cfg.out / "eval.jsonl").open("a") as f:
        f.write(json.dumps({"tag": tag, "results": res}) + "\n")
    MetricsLog(cfg.out / "metrics.csv").replot()
    console.print(f"eval {tag}: " + ", ".join(f"{v} {r['successes']}/{r['n']} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                                              for v, r in res.items()))  # fmt: skip
    return res


def evaluate_policy(ckpt: Path, out: Path, cfg: EvalConfig, camera: str, unnorm_key: str | None,
                    sim_freq: int = 100) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``vgb evaluate`` of an exported checkpoint on ``cfg.suite``; per variant: n, successes, rate, Wilson CI."""
    from rich.console import Console

    from vla_gen_bench.eval.evaluate import EPISODES, Evaluate, evaluate

    ev = Evaluate(policy=f"openvla:{Path(ckpt).resolve()}", out=Path(out), suite=cfg.suite, episodes=cfg.episodes,
                  seeds=tuple(cfg.seeds), workers=cfg.workers, camera=camera, sim_freq=sim_freq, videos=0,
                  report=False, policy_options=cfg.policy.with_defaults(unnorm_key=unnorm_key))  # fmt: skip
    evaluate(ev, console=Console(stderr=True, quiet=True))
    return summarize_episodes(Path(out) / EPISODES)


def summarize_episodes(jsonl: Path) -> dict[str, dict[str, Any]]:
    """Per variant of an ``episodes.jsonl`` (in order of first appearance): n, successes, rate, the Wilson 95 %
    interval (ci_low, ci_high) and grasp_rate, as :func:`vla_gen_bench.eval.stats.summarize` computes them for
    the evaluation report (each episode once, a torn last line skipped)."""
    from vla_gen_bench.eval.records import read
    from vla_gen_bench.eval.stats import summarize
    from vla_gen_bench.variants import CONTROL

    return {v.variant: v.rates() for v in summarize(read(jsonl).dicts(), CONTROL).variants}
