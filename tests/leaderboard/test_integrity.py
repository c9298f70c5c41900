"""A run is tamper-evident (issue 20): leaderboard add / validate --submissions refuse hand-edited episodes."""

from __future__ import annotations

import json

import pytest

from vla_gen_bench.eval.records import read_run
from vla_gen_bench.leaderboard import LeaderboardError, add, run_rows, validate
from vla_gen_bench.leaderboard.commands import LeaderboardAdd, leaderboard_add
from vla_gen_bench.leaderboard.derive import verify_run

from .conftest import make_run


def _lines(run):
    return (run / "episodes.jsonl").read_text().splitlines()


def _write(run, lines):
    (run / "episodes.jsonl").write_text("\n".join(lines) + "\n")


def test_a_run_written_like_the_evaluator_verifies(tmp_path):
    run = make_run(tmp_path / "run")
    assert verify_run(run, read_run(run)) == "verified"


def test_one_flipped_byte_is_refused_with_its_line(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    lines = _lines(run)
    assert '"steps": 80' in lines[20]
    lines[20] = lines[20].replace('"steps": 80', '"steps": 81')  # one byte
    _write(run, lines)
    csv = tmp_path / "lb.csv"
    assert leaderboard_add(LeaderboardAdd(run, submitter="me", csv=csv)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "episodes.jsonl:21: this line is not what 'vgb evaluate' wrote" in err
    assert not csv.exists(), "nothing is added from a tampered run"


def test_one_flipped_success_is_refused_even_with_a_consistent_label(tmp_path):
    run = make_run(tmp_path / "run")
    lines = _lines(run)
    rec = json.loads(lines[8])  # ind episode 8: a failure ('misplaced')
    assert rec["success"] is False
    rec.update(
        success=True, success_once=True, failure="success"
    )  # a careful forger keeps the record consistent
    lines[8] = json.dumps(rec, sort_keys=True)
    _write(run, lines)
    with pytest.raises(
        LeaderboardError, match=r"episodes.jsonl:9: this line is not what 'vgb evaluate' wrote"
    ):
        run_rows(run)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"success": True}, "success is true but the failure label is 'misplaced'"),
        ({"success": True, "grasped": False, "failure": "never_grasped"},
         "success is true but the failure label is 'never_grasped'"),
        ({"grasped": False}, "grasped is false but the failure label is 'misplaced'"),
        ({"failure": "exploded"}, "failure 'exploded' is not one of"),
        ({"success": True, "failure": "success"}, "success_once is false but the episode succeeded"),
    ],
)  # fmt: skip
def test_inconsistent_records_are_refused(tmp_path, edit, message):
    run = make_run(tmp_path / "run")
    lines = _lines(run)
    rec = json.loads(lines[8])
    rec.update(edit)
    lines[8] = json.dumps(rec)
    _write(run, lines)
    with pytest.raises(LeaderboardError, match=rf"episodes.jsonl:9: .*{message}"):
        run_rows(run)


def test_run_json_must_record_the_head_of_the_chain(tmp_path):
    run = make_run(tmp_path / "run")
    cfg = json.loads((run / "run.json").read_text())
    cfg["episodes_chain"]["lines"] = 49
    (run / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(
        LeaderboardError, match="episodes_chain records 49 line.*re-run the same 'vgb evaluate'"
    ):
        run_rows(run)


def test_a_run_without_a_chain_cannot_be_verified_and_says_so(tmp_path):
    run = make_run(tmp_path / "run")
    _write(run, [json.dumps({k: v for k, v in json.loads(x).items() if k != "chain"}) for x in _lines(run)])
    cfg = json.loads((run / "run.json").read_text())
    del cfg["episodes_chain"]
    (run / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(LeaderboardError, match=r"cannot be verified: 50 of its 50 episode lines carry no hash-chain "
                                               r"link.*Re-run it with this version into a new --out"):  # fmt: skip
        add(run, tmp_path / "lb.csv", submitter="me")


def test_csv_with_a_byte_order_mark_validates_and_non_utf8_is_one_line(tmp_path):
    csv = tmp_path / "lb.csv"
    add(make_run(tmp_path / "run"), csv, submitter="me")
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())  # as a spreadsheet's 'CSV UTF-8' saves it
    assert validate(csv) == []
    csv.write_bytes(csv.read_bytes().replace(b"me", b"m\xe9"))  # latin-1
    (problem,) = validate(csv)
    assert "not UTF-8 text" in problem and "save the CSV as UTF-8" in problem
    with pytest.raises(LeaderboardError, match="(?s)cannot be read as a leaderboard.*not UTF-8"):
        add(make_run(tmp_path / "run2", policy="other:P"), csv, submitter="me")


def test_non_utf8_run_json_is_one_line(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "run.json").write_bytes(b'{"policy": "\xff"}')
    with pytest.raises(LeaderboardError, match="run.json: not UTF-8 text"):
        run_rows(run)
