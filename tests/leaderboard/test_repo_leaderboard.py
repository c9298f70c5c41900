"""The CI check of the repository's leaderboard: ``leaderboard/leaderboard.csv`` validates, every run row is
re-derived from its submission folder in ``leaderboard/submissions/``, ``schema.json`` is current and the paper's
reported rows are exactly the published table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_gen_bench.leaderboard import json_schema, validate
from vla_gen_bench.leaderboard.board import groups
from vla_gen_bench.leaderboard.reported import N_PAPER, TABLE1, paper_rows, successes_for
from vla_gen_bench.leaderboard.schema import parse_cells
from vla_gen_bench.leaderboard.validate import read_rows
from vla_gen_bench.variants import SUITES

ROOT = Path(__file__).resolve().parents[2] / "leaderboard"
CSV = ROOT / "leaderboard.csv"
SUBMISSIONS = ROOT / "submissions"


def test_leaderboard_csv_and_submissions_validate():
    problems = validate(CSV, SUBMISSIONS)
    assert problems == [], "\n".join(problems)


def test_every_submission_folder_is_complete():
    folders = [p for p in SUBMISSIONS.iterdir() if p.is_dir()]
    for f in folders:
        assert sorted(p.name for p in f.iterdir() if p.name != "README.md") == [
            "episodes.jsonl",
            "run.json",
        ], f


def test_schema_json_is_generated_from_the_code():
    assert json.loads((ROOT / "schema.json").read_text()) == json_schema(), (
        'leaderboard/schema.json is stale; regenerate it: python -c "import json; from vla_gen_bench.leaderboard '
        'import json_schema; print(json.dumps(json_schema(), indent=2))" > leaderboard/schema.json'
    )


def test_rows_satisfy_schema_json():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    _, rows, _ = read_rows(CSV)
    assert rows
    for _, row in rows:
        assert list(check.iter_errors(parse_cells(row))) == []
    # and the schema does reject what the validator rejects
    run = next((parse_cells(r) for _, r in rows if r["source"] == "run"), None)
    reported = next(parse_cells(r) for _, r in rows if r["source"] == "reported")
    assert not check.is_valid(
        {**reported, "suite_hash": "0123456789abcdef"}
    )  # a reported row posing as a run
    assert not check.is_valid({**reported, "paired_n": 3})
    assert not check.is_valid({**reported, "rate": 1.5})
    assert not check.is_valid({**reported, "axis": "vison"})
    assert not check.is_valid({k: v for k, v in reported.items() if k != "notes"})
    if run is not None:
        assert not check.is_valid({**run, "suite_hash": "rl4vla-paper"})
        assert not check.is_valid({**run, "n": None})
        assert not check.is_valid({**run, "n": -1})


def test_reported_rows_are_the_papers_table():
    _, rows, _ = read_rows(CSV)
    reported = [r for _, r in rows if r["source"] == "reported"]
    # the family column exists once a row of another task family is in the CSV; the paper's rows are put_on's
    assert {r.pop("family", "") for r in reported} <= {"", "put_on"}
    assert reported == paper_rows()
    assert len(reported) == 2 * 16
    # the paper's 16 settings are our default suite, one row per setting and policy
    assert {r["variant"] for r in reported} == set(SUITES["default"])
    for r in reported:
        assert r["notes"].startswith("NOT produced by vla-gen-bench")
        assert (r["suite_hash"], r["asset_pack_hash"]) == ("rl4vla-paper", "rl4vla-assets")


def test_every_published_percentage_is_a_count_out_of_192():
    # the protocol (3 seeds x 64 envs) implies n = 192; each printed percentage must be k/192 for one k
    for sft, ppo in TABLE1.values():
        for pct in (sft, ppo):
            k = successes_for(pct)
            assert abs(100 * k / N_PAPER - pct) <= 0.05 + 1e-9
    with pytest.raises(ValueError, match="not k/192"):
        successes_for(50.1)  # 96/192 = 50.0, 97/192 = 50.52: nothing rounds to 50.1


def test_axis_scores_reproduce_the_papers_dimension_means():
    # RL4VLA reports dimension means Vision 64.2 / 76.6, Semantics 54.0 / 72.8, Execution 39.8 / 78.3 (SFT / PPO);
    # our axis score (unweighted mean of the axis' variants) over the mapped rows must give the same numbers
    (g,) = [g for g in groups(CSV) if g.title.startswith("Reported")]
    overview = {r[1]: r for r in g.tables[0].rows}
    head = g.tables[0].head
    want = {"OpenVLA SFT-16k (paper)": (64.2, 54.0, 39.8), "OpenVLA PPO (paper)": (76.6, 72.8, 78.3)}
    for policy, means in want.items():
        for axis, mean in zip(("vision", "semantics", "execution"), means, strict=True):
            cell = overview[policy][head.index(axis)]
            assert abs(float(cell.split()[0]) - mean) <= 0.11, (policy, axis, cell)
