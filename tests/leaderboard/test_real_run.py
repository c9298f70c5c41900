"""``add`` -> ``validate`` -> ``show`` on a real ``vgb evaluate`` run of the smoke suite (scripted oracle)."""

from __future__ import annotations

import json

import pytest

from vla_gen_bench.leaderboard import add, show, validate
from vla_gen_bench.leaderboard.board import write_rows
from vla_gen_bench.leaderboard.reported import paper_rows
from vla_gen_bench.variants import SUITES


@pytest.mark.slow
@pytest.mark.sim
def test_smoke_run_round_trip(tmp_path):
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate

    run = evaluate(
        Evaluate(policy="scripted", out=tmp_path / "run", suite="smoke", episodes=1, videos=0, report=False)
    )
    cfg = json.loads((run / "run.json").read_text())
    csv = tmp_path / "leaderboard" / "leaderboard.csv"
    write_rows(csv, paper_rows())
    rows = add(
        run,
        csv,
        submitter="ci",
        policy="scripted oracle",
        notes="privileged upper bound",
        submission="oracle",
    )
    assert [r["variant"] for r in rows] == list(SUITES["smoke"])
    assert all(r["n"] == "1" and r["policy_hash"] == cfg["policy_id"] for r in rows)
    assert {r["suite_hash"] for r in rows} == {cfg["suite_hash"]}
    assert {r["asset_pack_hash"] for r in rows} == {cfg["asset_pack_hash"]}
    assert validate(csv, csv.parent / "submissions") == []
    md = show(csv)
    assert f"suite hash {cfg['suite_hash']}" in md and "| 1 | scripted oracle |" in md
    # the oracle is ranked in its own group, never against the paper's rows
    ours = md.split("## Reported")[0]
    assert "(paper)" not in ours
