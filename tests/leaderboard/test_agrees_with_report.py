"""Leaderboard rows and a run's summary.csv come from the same reader and the same ``stats.summarize`` call."""

from __future__ import annotations

import csv

from vla_gen_bench.eval.report import write_outputs
from vla_gen_bench.leaderboard.derive import run_rows
from vla_gen_bench.leaderboard.schema import fmt_float

from .conftest import make_run


def test_paired_drop_is_minus_summary_csvs_difference(tmp_path):
    d = make_run(tmp_path / "run")  # unseen_table vs ind: a=3, b=1, c=4, d=2 -> variant - control = -0.3
    write_outputs(d)
    summary = {r["variant"]: r for r in csv.DictReader((d / "summary.csv").open())}
    rows = {r["variant"]: r for r in run_rows(d)}
    assert set(rows) == set(summary)
    signs = set()
    for name, row in rows.items():
        s = summary[name]
        assert (row["n"], row["successes"]) == (s["n"], s["successes"])
        assert (row["rate"], row["ci_low"], row["ci_high"]) == tuple(
            fmt_float(float(s[k])) for k in ("rate", "ci_low", "ci_high")
        )
        if s["is_control"] == "True":
            assert row["paired_n"] == row["paired_drop"] == s["paired_n"] == s["diff_vs_control"] == ""
            continue
        assert row["paired_n"] == s["paired_n"]
        # the drop is control - variant: minus summary.csv's variant - control, its interval mirrored
        assert row["paired_drop"] == fmt_float(-float(s["diff_vs_control"]))
        assert row["paired_drop_low"] == fmt_float(-float(s["diff_high"]))
        assert row["paired_drop_high"] == fmt_float(-float(s["diff_low"]))
        signs.add(float(row["paired_drop"]) > 0)
    assert rows["unseen_table"]["paired_drop"] == "0.300000"  # harder than control: a positive drop
    # both signs occur in this run (reposition is harder than control, unseen_objects easier)
    assert signs == {True, False}
