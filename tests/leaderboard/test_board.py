"""``add`` -> ``validate`` -> ``show`` on synthetic run directories, and the submissions check."""

from __future__ import annotations

import json
import shutil

import pytest

from vla_gen_bench.eval.stats import wilson_interval
from vla_gen_bench.leaderboard import LeaderboardError, add, check_submissions, run_rows, show, validate
from vla_gen_bench.leaderboard.board import groups, write_rows
from vla_gen_bench.leaderboard.reported import paper_rows
from vla_gen_bench.leaderboard.validate import read_rows

from .conftest import OUTCOMES, make_run, seal


def test_rows_are_derived_from_episodes(tmp_path):
    run = make_run(tmp_path / "run", seeds=(0, 1))
    # a hand-edited summary in the run directory is never read
    (run / "summary.csv").write_text("variant,rate\nind,0.99\n")
    rows = {r["variant"]: r for r in run_rows(run, policy="mine", submitter="me", notes="n")}
    assert list(rows) == [
        "ind",
        "unseen_table",
        "dyn_noise_strong",
        "unseen_objects",
        "reposition",
    ]  # catalog order
    ind, table = rows["ind"], rows["unseen_table"]
    assert (ind["n"], ind["successes"], ind["rate"]) == ("10", "7", "0.700000")
    assert (float(ind["ci_low"]), float(ind["ci_high"])) == pytest.approx((0.396778, 0.892209), abs=1e-6)
    assert ind["paired_n"] == ind["paired_drop"] == ""  # the control has no drop against itself
    # control vs unseen_table: a=3 both, 4 control only, 1 variant only, 2 neither -> drop 0.7 - 0.4 = 0.3 with
    # Newcombe's interval (the mirror of tests/eval/test_stats.py's hand values)
    assert (table["paired_n"], table["paired_drop"]) == ("10", "0.300000")
    assert (float(table["paired_drop_low"]), float(table["paired_drop_high"])) == pytest.approx(
        (-0.117732, 0.601139), abs=1e-5
    )
    assert (table["axis"], table["split"], table["source"], table["date"]) == (
        "vision",
        "test",
        "run",
        "2026-11-20",
    )
    cfg = json.loads((run / "run.json").read_text())
    assert table["policy_hash"] == cfg["policy_id"] and table["suite_hash"] == cfg["suite_hash"]
    assert table["vgb_version"] == "0.1.0" and table["policy"] == "mine" and table["submitter"] == "me"


def test_repeated_episodes_break_the_chain_and_conflicts_name_both_lines_and_a_remedy(tmp_path):
    run = make_run(tmp_path / "run")
    ej = run / "episodes.jsonl"
    lines = ej.read_text().splitlines()
    ej.write_text("\n".join(lines + lines[:3]) + "\n")  # a merged shard repeated three episodes
    with pytest.raises(LeaderboardError, match=rf"episodes.jsonl:{len(lines) + 1}: this line is not what 'vgb "
                                               r"evaluate' wrote .*delete line 51 and every line after it"):  # fmt: skip
        run_rows(run)
    flipped = json.loads(lines[0])
    flipped.update(success=not flipped["success"], failure="misplaced", success_once=False)
    ej.write_text("\n".join([*lines, json.dumps(flipped)]) + "\n")
    with pytest.raises(LeaderboardError, match=rf"episodes.jsonl:{len(lines) + 1}: \(ind, seed 0, episode 0\) is "
                                               r"recorded again with a different outcome \(first on line 1\).*Delete "
                                               r"line 1 and every line after it, then re-run"):  # fmt: skip
        run_rows(run)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda rec: rec.update(variant="unseen_tabel"),
            "unknown variant 'unseen_tabel'; did you mean 'unseen_table'",
        ),
        (lambda rec: rec.update(axis="semantics"), "has axis 'semantics', the catalog says 'vision'"),
        (lambda rec: rec.update(policy="other"), "episode run by policy 'other' but run.json says"),
        (lambda rec: rec.update(success="yes"), "field 'success' must be true/false"),
        (lambda rec: rec.pop("seed"), "missing field 'seed'"),
    ],
)
def test_bad_episodes_are_refused(tmp_path, edit, message):
    run = make_run(tmp_path / "run")
    ej = run / "episodes.jsonl"
    lines = ej.read_text().splitlines()
    rec = json.loads(lines[12])  # an unseen_table episode
    edit(rec)
    lines[12] = json.dumps(rec)
    ej.write_text("\n".join(lines) + "\n")
    with pytest.raises(LeaderboardError, match=message):
        run_rows(run)


def test_incomplete_torn_and_foreign_runs_are_refused(tmp_path):
    run = make_run(tmp_path / "run")
    ej = run / "episodes.jsonl"
    lines = ej.read_text().splitlines()
    ej.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(
        LeaderboardError,
        match=r"the run is incomplete: 2 of 50 planned episodes missing \(e.g. \(reposition, seed 0, episode 8\)",
    ):
        run_rows(run)
    ej.write_text("\n".join(lines) + "\n" + lines[0][:20])
    with pytest.raises(LeaderboardError, match=r"episodes.jsonl:51: a torn last line .*resume it"):
        run_rows(run)
    ej.write_text("\n".join(lines) + "\n")
    cfg = json.loads((run / "run.json").read_text())
    for key, value, message in (("suite_hash", "XYZ", "suite_hash 'XYZ' is not a 16-digit"),
                                ("versions", {"python": "3.11"}, r"versions\['vla-gen-bench'\] is missing"),
                                ("control", None, "")):  # fmt: skip
        bad = dict(cfg)
        if value is None:
            del bad[key]
            message = "lacks 'control'"
        else:
            bad[key] = value
        (run / "run.json").write_text(json.dumps(bad))
        with pytest.raises(LeaderboardError, match=message):
            run_rows(run)
    (run / "run.json").unlink()
    with pytest.raises(LeaderboardError, match="run.json not found"):
        run_rows(run)


def test_add_validate_show_round_trip(tmp_path):
    csv = tmp_path / "leaderboard" / "leaderboard.csv"
    write_rows(csv, paper_rows())
    a = make_run(tmp_path / "a", policy="a:Policy")
    better = {k: [1] * 10 for k in OUTCOMES}
    b = make_run(tmp_path / "b", policy="b:Policy", outcomes=better)
    added = add(
        a, csv, submitter="alice", notes="LoRA SFT, 2k demos", policy="Policy A", submission="policy-a"
    )
    assert len(added) == 5
    add(b, csv, submitter="bob", submission="policy-b")
    assert validate(csv) == []
    assert validate(csv, csv.parent / "submissions") == []
    _, rows, _ = read_rows(csv)
    assert [r["policy"] for _, r in rows][-10:] == ["Policy A"] * 5 + ["b:Policy"] * 5
    assert sorted(p.name for p in (csv.parent / "submissions").iterdir()) == ["policy-a", "policy-b"]

    md = show(csv)
    runs, reported = md.split("## Reported")
    # the two runs share a suite/asset group and are ranked together: b (all successes) first
    assert runs.index("| 1 | b:Policy |") < runs.index("| 2 | Policy A |")
    assert "LoRA SFT, 2k demos" in runs and "OpenVLA" not in runs
    # the paper's rows are in their own group, with the warning
    assert "Not produced by vla-gen-bench" in reported and "Policy A" not in reported
    assert "| 1 | OpenVLA PPO (paper) |" in reported and "| 2 | OpenVLA SFT-16k (paper) |" in reported
    # vision score of A = mean of unseen_table 4/10 and dyn_noise_strong 5/10, MOVER interval
    lo1, hi1 = wilson_interval(4, 10)
    lo2, hi2 = wilson_interval(5, 10)
    lo = 0.45 - ((0.4 - lo1) ** 2 + (0.5 - lo2) ** 2) ** 0.5 / 2
    hi = 0.45 + ((hi1 - 0.4) ** 2 + (hi2 - 0.5) ** 2) ** 0.5 / 2
    assert f"| 2 | Policy A | 45.0 [{100 * lo:.1f}, {100 * hi:.1f}] | 40.0 [" in runs

    html = show(csv, "html")
    assert html.startswith("<!DOCTYPE html>") and html.count("<table>") == md.count("### ")
    assert "<td>Policy A</td>" in html


def test_groups_with_different_hashes_are_never_ranked_together(tmp_path):
    csv = tmp_path / "lb.csv"
    add(make_run(tmp_path / "a", policy="a:P"), csv, submitter="me")
    add(make_run(tmp_path / "b", policy="b:P", pack="generated"), csv, submitter="me")  # another asset pack
    add(make_run(tmp_path / "c", policy="c:P", suite="other", outcomes={"ind": [1] * 10, "unseen_table": [0] * 10}),
        csv, submitter="me")  # fmt: skip
    gs = groups(csv)
    assert len(gs) == 3
    for g in gs:
        overview = g.tables[0]
        assert len(overview.rows) == 1 and overview.rows[0][0] == "1"  # each policy alone in its group
    assert sorted(g.tables[0].rows[0][1] for g in gs) == ["a:P", "b:P", "c:P"]


def test_incomplete_policies_are_listed_but_not_ranked(tmp_path):
    csv = tmp_path / "lb.csv"
    add(make_run(tmp_path / "a", policy="a:P"), csv, submitter="me")
    part = {k: v for k, v in OUTCOMES.items() if k != "dyn_noise_strong"}
    b = make_run(tmp_path / "b", policy="b:P", outcomes=part)
    # same suite hash as a (a subset run of one suite is still that suite; here we force the group)
    cfg = json.loads((b / "run.json").read_text())
    cfg["suite_hash"] = json.loads((tmp_path / "a" / "run.json").read_text())["suite_hash"]
    (b / "run.json").write_text(json.dumps(cfg))
    seal(b)  # run.json's identity starts the hash chain: a run with another suite hash is another run
    add(b, csv, submitter="me")
    (g,) = groups(csv)
    overview = {r[1]: r for r in g.tables[0].rows}
    assert overview["a:P"][0] == "1" and overview["b:P"][0] == "–"
    assert "incomplete" in overview["b:P"]
    vision = {r[1]: r for r in next(t for t in g.tables if t.caption == "vision").rows}
    assert vision["b:P"][0] == "–" and vision["b:P"][-1] == "–"  # dyn_noise_strong missing
    semantics = {r[1]: r for r in next(t for t in g.tables if t.caption == "semantics").rows}
    assert semantics["a:P"][0] == semantics["b:P"][0] == "1"  # tie: same rates, same rank


def test_add_refuses_clashes_unless_replace(tmp_path):
    csv = tmp_path / "lb.csv"
    run = make_run(tmp_path / "a", policy="a:P")
    add(run, csv, submitter="me")
    before = csv.read_text()
    with pytest.raises(
        LeaderboardError, match=r"lb.csv:2: 'a:P' on ind .* is already on the leaderboard \(5 clashing"
    ):
        add(run, csv, submitter="me")
    with pytest.raises(LeaderboardError, match="already on the leaderboard"):
        add(run, csv, submitter="me", policy="another name")  # the same run (policy hash) under a new name
    assert csv.read_text() == before
    add(run, csv, submitter="someone else", replace=True)
    _, rows, _ = read_rows(csv)
    assert len(rows) == 5 and {r["submitter"] for _, r in rows} == {"someone else"}
    with pytest.raises(LeaderboardError, match="submitter is required"):
        add(run, tmp_path / "new.csv", submitter=" ")
    assert not (tmp_path / "new.csv").exists()


def test_add_refuses_to_extend_an_invalid_csv(tmp_path):
    csv = tmp_path / "lb.csv"
    run = make_run(tmp_path / "a", policy="a:P")
    add(run, csv, submitter="me")
    text = csv.read_text().replace(",0.700000,", ",0.750000,", 1)
    csv.write_text(text)
    with pytest.raises(
        LeaderboardError, match=r"would not validate:\n.*lb.csv:2: rate 0.750000 does not equal"
    ):
        add(make_run(tmp_path / "b", policy="b:P"), csv, submitter="me")
    assert csv.read_text() == text
    with pytest.raises(LeaderboardError, match="does not validate"):
        show(csv)


def test_submissions_check_catches_numbers_that_do_not_match_their_episodes(tmp_path):
    csv = tmp_path / "leaderboard.csv"
    subs = tmp_path / "submissions"
    run = make_run(tmp_path / "a", policy="a:P")
    add(run, csv, submitter="me", submission="a")
    assert check_submissions(read_rows(csv)[1], "lb.csv", subs) == []
    # a self-consistent edit (successes, rate and CI all changed together) passes the row checks...
    lo, hi = wilson_interval(8, 10)
    text = csv.read_text()
    forged = text.replace(",10,7,0.700000,0.396778,0.892209,", f",10,8,0.800000,{lo:.6f},{hi:.6f},", 1)
    assert forged != text
    csv.write_text(forged)
    assert validate(csv) == []
    # ...but not the re-derivation from the submitted episodes
    problems = validate(csv, subs)
    assert f"{csv}:2: successes is '8' but a/episodes.jsonl gives '7'" in problems
    assert len(problems) == 4  # successes, rate, ci_low, ci_high
    # a run row without its submission folder, and a submission without rows
    csv.write_text(text)
    shutil.rmtree(subs / "a")
    shutil.copytree(run, subs / "orphan")
    shutil.copytree(make_run(tmp_path / "b", policy="b:P"), subs / "b")
    problems = validate(csv, subs)
    assert not any("orphan" in p for p in problems)  # orphan is a copy of a: it re-derives the CSV's rows
    assert sum("has no run row in" in p for p in problems) == 5  # b's five variants
    shutil.rmtree(subs / "orphan")
    problems = validate(csv, subs)
    assert sum("has no submission folder" in p for p in problems) == 5
    (subs / "empty").mkdir()
    assert any(p.endswith("a submission folder needs run.json and episodes.jsonl (missing run.json, episodes.jsonl)")
               for p in validate(csv, subs))  # fmt: skip


def test_show_escapes_names_and_handles_reported_rows_without_n(tmp_path):
    csv = tmp_path / "lb.csv"
    rows = paper_rows()[:3]
    for r in rows:
        r.update(n="", successes="", ci_low="", ci_high="", policy="<b>bold</b> | pipe")
    write_rows(csv, rows)
    assert validate(csv) == []
    (g,) = groups(csv)
    overview = g.tables[0]
    assert overview.head == ["rank", "policy", "in-distribution", "vision", "OOD mean"]
    assert overview.rows == [["1", "<b>bold</b> | pipe", "78.1", "71.9", "71.9"]]  # no intervals without n
    html = show(csv, "html")
    assert "<b>bold</b>" not in html and "<td>&lt;b&gt;bold&lt;/b&gt; | pipe</td>" in html
    md = show(csv)
    assert "<b>" not in md and "| 1 | &lt;b&gt;bold&lt;/b&gt; \\| pipe | 78.1 | 71.9 | 71.9 |" in md
