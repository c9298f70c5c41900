"""Run-directory reading (validation, de-duplication), report files, and the two-run comparison."""

import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla_gen_bench.eval.report import (
    FIELDS,
    Compare,
    Report,
    RunError,
    compare,
    compare_command,
    compare_rows,
    load_run,
    parse_record,
    report_command,
    write_outputs,
)

from .conftest import OUTCOMES, VARIANTS, record, standard_records, write_run

REQUIRED = [k for k, (_, req) in FIELDS.items() if req]


def _box(kind: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


# the top-level boxes of an mp4 as imageio-ffmpeg writes them (ftyp, free, mdat, moov): whole, so it is linked
TINY_MP4 = (
    _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2")
    + _box(b"free")
    + _box(b"mdat", bytes(16))
    + _box(b"moov", bytes(8))
)


def _rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- reading
def test_exact_duplicates_count_once_with_a_warning_and_conflicts_are_refused(tmp_path):
    recs = standard_records()
    dup_same = dict(recs[12])  # unseen_table episode 2, same outcome
    d = write_run(tmp_path / "r", recs + [dup_same])
    run = load_run(d)
    assert len(run.records) == 50
    (w,) = [w for w in run.warnings if "duplicated" in w]
    assert "1 duplicated (variant, seed, episode) line(s)" in w
    assert "line 51 repeats line 13 (unseen_table, seed 1002, episode 2)" in w
    # the same episode with another outcome is never scored (issue 20: the first one used to win silently)
    dup_flip = {**recs[13], "success": True, "success_once": True, "failure": "success"}
    d = write_run(tmp_path / "c", recs + [dup_flip])
    with pytest.raises(RunError, match=r"episodes.jsonl:51: \(unseen_table, seed 1003, episode 3\) is recorded again "
                                       r"with a different outcome \(first on line 14\).*Delete line 14 and every "
                                       r"line after it, then re-run the same 'vgb evaluate' command"):  # fmt: skip
        load_run(d)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"variant": "ind", ', r"episodes.jsonl:51: not valid JSON .*truncated last line"),
        ("[1, 2]", r"episodes.jsonl:51: expected a JSON object"),
        (json.dumps({k: v for k, v in record("ind", 99, True).items() if k != "success"}),
         r"episodes.jsonl:51: missing field 'success'"),
        (json.dumps({**record("ind", 99, True), "success": "yes"}), r"episodes.jsonl:51: field 'success' must be true/false, got \"yes\""),
        (json.dumps(record("ind", 99, True, episode=True)), r"episodes.jsonl:51: field 'episode' must be an integer, got true"),
        (json.dumps(record("ind", 99, True, episode=1.5)), r"field 'episode' must be an integer, got 1.5"),
        (json.dumps(record("ind", 99, True, axis="lighting")), r"episodes.jsonl:51: axis 'lighting' is not one of"),
        (json.dumps(record("ind", 99, True, failure="fell")), r"failure 'fell' is not one of success, never_grasped"),
        (json.dumps(record("ind", 99, True, failure="dropped")), r"success is true but the failure label is 'dropped'"),
        (json.dumps(record("ind", 99, True, episode=-1)), r"episode index must be >= 0"),
        (json.dumps(record("ind", 99, True, wall_s="2s")), r"field 'wall_s' must be an integer or a number"),
    ],
)  # fmt: skip
def test_malformed_lines_give_line_numbered_errors(tmp_path, line, message):
    d = write_run(
        tmp_path / "r", standard_records(), lines=["", line]
    )  # a blank line 51 is skipped; the bad one is 52
    with pytest.raises(RunError, match=message.replace(":51:", ":52:")):
        load_run(d)


def test_torn_last_line_is_skipped_with_a_warning_but_a_torn_middle_line_is_an_error(tmp_path):
    d = write_run(tmp_path / "r", standard_records())
    path = d / "episodes.jsonl"
    path.write_text(path.read_text() + '{"variant": "ind", "axis": "in-dis')  # kill -9 during a write
    run = load_run(d)
    assert len(run.records) == 50
    assert any(w.startswith("episodes.jsonl:51: torn last line") for w in run.warnings)
    path.write_text(path.read_text() + "\n" + json.dumps(record("ind", 10, True)) + "\n")
    with pytest.raises(RunError, match="episodes.jsonl:51: not valid JSON"):
        load_run(d)


def test_episodes_with_several_seeds_are_distinct_and_paired_per_seed(tmp_path):
    recs = [
        record(v, k, s, seed=seed)
        for v, s0 in (("ind", 1), ("unseen_table", 0))
        for seed in (0, 1)
        for k, s in enumerate([s0 if seed == 0 else 1 - s0] * 4)
    ]
    run = load_run(write_run(tmp_path / "r", recs))
    assert len(run.records) == 16 and not any("duplicated" in w for w in run.warnings)
    ut = run.summary().variant("unseen_table")
    # seed 0: control wins, variant loses (c = 4); seed 1: variant wins, control loses (b = 4)
    assert (ut.paired.both, ut.paired.first_only, ut.paired.second_only, ut.paired.neither) == (0, 4, 4, 0)


def test_run_json_problems(tmp_path):
    with pytest.raises(RunError, match="run.json not found; is .* a run directory"):
        load_run(tmp_path)
    d = write_run(tmp_path / "r", standard_records())
    cfg = json.loads((d / "run.json").read_text())
    del cfg["asset_pack_hash"]
    (d / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="lacks 'asset_pack_hash'"):
        load_run(d)
    d2 = write_run(tmp_path / "r2", standard_records(policy="random"))
    with pytest.raises(RunError, match="run by policy 'random', but run.json says 'scripted'"):
        load_run(d2)
    d3 = write_run(
        tmp_path / "r3",
        standard_records(),
        variants={**VARIANTS, "ind": {**VARIANTS["ind"], "axis": "vision"}},
    )
    with pytest.raises(
        RunError, match="variant 'ind' has axis 'in-distribution' in its episodes but 'vision' in run.json"
    ):
        load_run(d3)
    d4 = write_run(tmp_path / "r4", [])
    with pytest.raises(RunError, match="holds no episodes yet"):
        load_run(d4)


def test_runner_field_names_are_accepted(tmp_path):
    r = record("ind", 0, True)
    r["success_at_end"] = r.pop("success")
    r["ever_grasped"] = r.pop("grasped")
    assert parse_record(json.dumps(r), "x:1")["success"] is True


def test_instruction_integrity_warnings(tmp_path):
    recs = standard_records()
    recs[10]["instruction"] = "unseen_table: put the red cube on the plate"
    recs[0]["instruction"] = " "
    run = load_run(write_run(tmp_path / "r", recs))
    assert any("unseen_table: the variant's name appears in 1 instruction" in w for w in run.warnings)
    assert any("ind: 1 episode(s) sent an empty instruction" in w for w in run.warnings)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(REQUIRED),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans(), st.floats()),
)
def test_any_corrupted_field_is_refused_or_valid(field, value):
    r = record("unseen_table", 1, False)
    r[field] = value
    try:
        out = parse_record(json.dumps(r), "episodes.jsonl:7")
    except RunError as e:
        assert str(e).startswith("episodes.jsonl:7: ")
    else:  # accepted only when the value is well-typed and consistent
        types, _ = FIELDS[field]
        assert isinstance(out[field], types)
        assert out["success"] == (out["failure"] == "success")


@settings(max_examples=60)
@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes_the_parser(text):
    try:
        parse_record(text, "f:1")
    except RunError:
        pass


# ---------------------------------------------------------------------------- outputs
def test_write_outputs_produces_all_files_with_the_numbers(run_dir):
    (run_dir / "videos").mkdir()
    (run_dir / "videos" / "unseen_table_3.mp4").write_bytes(TINY_MP4)
    recs = standard_records()
    recs[13]["video"] = "videos/unseen_table_3.mp4"
    write_run(run_dir, recs)
    written = write_outputs(run_dir)
    for name in ("episodes.csv", "summary.csv", "axes.csv", "report.md", "report.html", "plots/variants.png",
                 "plots/axes.png", "plots/paired_drop.png", "plots/failures.png"):  # fmt: skip
        assert name in written and written[name].is_file() and written[name].stat().st_size > 0, name
    for p in (run_dir / "plots").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    eps = _rows(run_dir / "episodes.csv")
    assert len(eps) == 50 and eps[0]["variant"] == "ind" and eps[0]["severity"] == ""
    summary = {r["variant"]: r for r in _rows(run_dir / "summary.csv")}
    ut = summary["unseen_table"]
    assert (ut["n"], ut["successes"], float(ut["rate"])) == ("10", "4", 0.4)
    assert float(ut["ci_low"]) == pytest.approx(0.168180, abs=1e-6)
    assert float(ut["diff_vs_control"]) == pytest.approx(-0.3) and ut["paired_n"] == "10"
    assert float(ut["diff_low"]) == pytest.approx(-0.601139, abs=1e-5)
    assert float(ut["relative_drop"]) == pytest.approx(1 - 4 / 7)
    assert (ut["failure_dropped"], ut["failure_never_grasped"], ut["small_n"]) == ("3", "3", "True")
    assert summary["ind"]["is_control"] == "True" and summary["ind"]["diff_vs_control"] == ""
    axes = {r["axis"]: r for r in _rows(run_dir / "axes.csv")}
    assert (
        float(axes["vision"]["score"]) == pytest.approx(0.45)
        and axes["vision"]["variants"] == "unseen_table;overlay_noise"
    )
    assert float(axes["vision"]["ci_low"]) == pytest.approx(0.274555, abs=1e-5)
    assert float(axes["out-of-distribution (mean of axes)"]["score"]) == pytest.approx(1.45 / 3)

    md = (run_dir / "report.md").read_text()
    assert (
        "| unseen_table ⚠ | vision | unseen |  | 10 | 40.0 | [16.8, 68.7] | 70.0 | 10 | -30.0 [-60.1, 11.8] | 42.9 % |"
        in md
    )
    assert "| vision | 2 | 45.0 | [27.5, 64.5] | -25.0 | 35.7 % |" in md
    assert "too few episodes to separate two policies by 10 points" in md
    assert "“put the green ball on the tray”" in md and "“put the red cube on the plate”" in md
    assert "[s1003 ep 3 dropped](videos/unseen_table_3.mp4)" in md
    assert "| asset_pack_hash | aaaaaaaa |" in md and "| version: mani_skill | 3.0.1 |" in md
    assert "![variants](plots/variants.png)" in md

    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # plots embedded: the page stands alone
    assert "<td>[16.8, 68.7]</td>" in page and "<td>-30.0 [-60.1, 11.8]</td>" in page
    assert "src='videos/unseen_table_3.mp4'" in page and "suite_hash" in page and "16 unseen tables" in page


def test_missing_video_file_is_reported(run_dir):
    recs = standard_records()
    recs[0]["video"] = "videos/nope.mp4"
    write_run(run_dir, recs)
    assert any(
        "video videos/nope.mp4 of (ind, seed 1000, episode 0) is missing" in w
        for w in load_run(run_dir).warnings
    )


def test_report_command(run_dir, tmp_path, capsys):
    import tyro

    cfg = tyro.cli(Report, args=[str(run_dir)])
    assert report_command(cfg) == 0
    assert (run_dir / "report.html").is_file()
    assert "wrote" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    assert report_command(Report(tmp_path / "bad")) == 1
    assert "run.json not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------- compare
def test_compare_side_by_side_with_paired_differences(tmp_path):
    a = write_run(tmp_path / "a", standard_records())
    worse = {**OUTCOMES, "unseen_table": [1, 0, 0, 0, 0, 0, 0, 1, 0, 0]}  # B: 2/10
    b = write_run(tmp_path / "b", standard_records("random", worse), policy="random")
    _, _, rows, axis_rows = compare_rows(a, b)
    ut = next(r for r in rows if r.variant == "unseen_table")
    # A vs B pairs: both on 0 and 7, A only on 1 and 2, never B only -> a=2, b=2, c=0, d=6; D = +0.2
    assert (ut.rate_a, ut.rate_b, ut.pairs) == (0.4, 0.2, 10)
    assert ut.diff == pytest.approx(0.2) and ut.diff_low < 0.2 < ut.diff_high
    ind = next(r for r in rows if r.variant == "ind")
    assert ind.diff == 0
    table = compare(a, b)
    assert "A = `scripted`" in table and "B = `random`" in table
    assert (
        "| unseen_table | vision | 40.0 [16.8, 68.7] (n=10) | 20.0 [5.7, 51.0] (n=10) | 10 | +20.0" in table
    )
    assert any(r[0] == "vision" and r[3].startswith("+10.0") for r in axis_rows)  # mean of (+20, 0)


def test_compare_refuses_different_suites_or_assets(tmp_path, capsys):
    a = write_run(tmp_path / "a", standard_records())
    b = write_run(tmp_path / "b", standard_records(), asset_pack_hash="zzzz", catalog_hash="cccccccX")
    with pytest.raises(RunError) as e:
        compare(a, b)
    msg = str(e.value)
    assert "catalog_hash: 'cccccccc' vs 'cccccccX'" in msg and "asset_pack_hash: 'aaaaaaaa' vs 'zzzz'" in msg
    assert "suite_hash" not in msg and "comparable only on the same suite" in msg
    assert compare_command(Compare(a, b)) == 1
    assert "cannot compare" in capsys.readouterr().err


def test_compare_command_writes_markdown(tmp_path, capsys):
    import tyro

    a = write_run(tmp_path / "a", standard_records())
    b = write_run(tmp_path / "b", standard_records("zero"), policy="zero")
    cfg = tyro.cli(Compare, args=[str(a), str(b), "--out", str(tmp_path / "cmp.md")])
    assert compare_command(cfg) == 0
    out = capsys.readouterr().out
    assert (
        "| ind | in-distribution | 70.0" in out
        and (tmp_path / "cmp.md").read_text() == out.rstrip("\n") + "\n"
    )
