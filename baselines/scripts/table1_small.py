"""The small-scale Table 1 of README: per-axis success and drop vs `ind` of two `vgb evaluate` runs on `default`
(read from their axes.csv, which `vgb evaluate` derives from episodes.jsonl) next to the paper's `reported` rows of
leaderboard/leaderboard.csv (per-axis means of the published per-setting rates).

    python baselines/scripts/table1_small.py baselines/results/sft-tiny-v12-table1-default-s0-ex4 \
        baselines/results/ppo-tiny-v12-table1-default-s0 > baselines/results/table1-small.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

AXES = ["in-distribution", "vision", "semantics", "execution"]


def ours(folder: str) -> pd.DataFrame:
    df = pd.read_csv(Path(folder) / "axes.csv").set_index("axis")
    return df.loc[AXES, ["score", "ci_low", "ci_high", "diff_vs_control"]]


def paper(policy: str) -> pd.Series:
    lb = pd.read_csv("leaderboard/leaderboard.csv")
    rows = lb[(lb.source == "reported") & (lb.policy == policy)]
    return rows.groupby("axis").rate.mean().reindex(AXES)


def main(sft_dir: str, ppo_dir: str) -> None:
    a, b = ours(sft_dir), ours(ppo_dir)
    ps, pp = paper("OpenVLA SFT-16k (paper)"), paper("OpenVLA PPO (paper)")
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    print("| axis | tiny SFT % [95 % CI] | drop vs ind (pp) | tiny PPO % [95 % CI] | drop vs ind (pp) "
          "| paper SFT-16k % | drop (pp) | paper PPO % | drop (pp) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for ax in AXES:
        cells = [ax]
        for df in (a, b):
            r = df.loc[ax]
            cells += [f"{pct(r.score)} [{pct(r.ci_low)}, {pct(r.ci_high)}]",
                      "" if ax == AXES[0] else f"{-100 * r.diff_vs_control:+.1f}"]  # fmt: skip
        for s in (ps, pp):
            cells += [pct(s[ax]), "" if ax == AXES[0] else f"{100 * (s[AXES[0]] - s[ax]):+.1f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
