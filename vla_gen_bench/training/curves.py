"""The learning curve of an RL run: ``curve.png`` beside its ``metrics.csv``, redrawn after every iteration.

Top panel: rollout success and grasp rate per iteration (thin) with a moving average (thick); bottom panel: mean
episode return. The x axis is env steps, so runs with different batch sizes line up. Any evaluation recorded in the
run's ``eval.jsonl`` is drawn on the top panel as points with their Wilson intervals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points (the first points average what exists so far)."""
    x = np.asarray(x, float)
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curve(
    rows: list[dict[str, str]], png: Path, eval_jsonl: Path | None = None, window: int = 5
) -> Path | None:
    """Draw ``rows`` (metrics.csv rows: env_steps, success, grasp, return_mean) into ``png``; None when matplotlib is
    missing or there are no rows (the curve is a convenience, never a reason for a run to fail)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    need = ("env_steps", "success", "grasp", "return_mean")
    if not rows or any(k not in rows[0] for k in need):
        return None  # no rows yet, or a log with other columns (e.g. a test's): nothing to draw
    x = np.array([float(r["env_steps"]) for r in rows])
    fig = Figure(figsize=(7, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for key, color in (("success", "tab:green"), ("grasp", "tab:blue")):
        y = np.array([float(r[key]) for r in rows])
        top.plot(x, y, color=color, alpha=0.3, lw=1)
        top.plot(x, moving_average(y, window), color=color, lw=2, label=f"rollout {key} ({window}-iter mean)")
    for tag, res in _evals(eval_jsonl):
        step = _eval_step(tag, rows)
        for i, (variant, r) in enumerate(sorted(res.items())):
            p = r["successes"] / max(r["n"], 1)
            top.errorbar([step], [p], yerr=[[p - r["ci_low"]], [r["ci_high"] - p]], fmt="o", ms=4, capsize=3,
                         color=f"C{3 + i}", label=f"eval {variant}" if tag == "final" or step == x[-1] else None)  # fmt: skip
    top.set_ylabel("rate")
    top.set_ylim(-0.02, 1.02)
    top.legend(fontsize=7, loc="upper left")
    top.grid(alpha=0.3)
    ret = np.array([float(r["return_mean"]) for r in rows])
    bottom.plot(x, ret, color="tab:orange", alpha=0.3, lw=1)
    bottom.plot(x, moving_average(ret, window), color="tab:orange", lw=2, label="mean return")
    bottom.set_xlabel("env steps")
    bottom.set_ylabel("return")
    bottom.legend(fontsize=7, loc="upper left")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    png = Path(png)
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(png)
    return png


def _evals(path: Path | None):
    if path is None or not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
            out.append((rec["tag"], rec["results"]))
        except (json.JSONDecodeError, KeyError):
            continue  # a torn line from an interrupted run: the curve skips it
    return out


def _eval_step(tag: str, rows: list[dict[str, str]]) -> float:
    """``iter_0012`` -> the env steps after iteration 12; ``final`` -> the last row's."""
    if tag.startswith("iter_"):
        it = int(tag.split("_")[1])
        for r in rows:
            if int(r["iteration"]) == it:
                return float(r["env_steps"])
    return float(rows[-1]["env_steps"])
