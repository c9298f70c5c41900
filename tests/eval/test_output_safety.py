"""Reports of hostile or odd runs: user text never becomes markup, a formula or a link; unsafe or broken videos are
shown as "video missing"; unwritable and locked run folders give one line, not a traceback."""

from __future__ import annotations

import csv
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_gen_bench.eval.escape import md
from vla_gen_bench.eval.report import (
    Compare,
    Report,
    compare_command,
    load_run,
    report_command,
    video_link,
    video_problem,
    write_outputs,
)

from .conftest import VARIANTS, standard_records, write_run
from .lock_holder import held
from .test_report import TINY_MP4

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
DEF = "[x]: javascript:alert(1)"
FORMULAS = ('=HYPERLINK("http://evil.example","click")', "@SUM(1+1)*cmd|' /C calc'!A0", "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0")  # fmt: skip


def _hostile_run(tmp_path):
    policy = f"{SCRIPT}|pol`x`"
    recs = standard_records(policy)
    recs[0]["instruction"] = f"put {IMG} on the plate\nnew line | pipe {LINK} {DEF}"
    recs[1]["instruction"] = FORMULAS[0]
    recs[3]["instruction"] = FORMULAS[2]
    variants = {
        **VARIANTS,
        "unseen_table": {**VARIANTS["unseen_table"], "description": f"{SCRIPT} & {FORMULAS[1]}"},
    }
    return write_run(tmp_path / "run", recs, policy=policy, suite=f"{IMG}\n| x", variants=variants,
                     versions={"vla_gen_bench": SCRIPT, "x|y": "1\n2"})  # fmt: skip


def _hrefs(page: str) -> list[str]:
    """Every link of the page's tags (href, src; not the embedded PNG plots), as a browser's parser sees them."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v or "" for k, v in attrs if k in ("href", "src", "action", "formaction", "poster"))

    Links().feed(page)
    return [u for u in found if not u.startswith("data:image/png;base64,")]


def test_report_md_and_html_escape_every_run_string(tmp_path):
    d = _hostile_run(tmp_path)
    write_outputs(d)
    text = (d / "report.md").read_text()
    page = (d / "report.html").read_text()
    for raw in ("<script", "<img", "](javascript", "]: javascript"):
        assert raw not in text, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # shown as text, not dropped
    # every table row keeps its column count: an unescaped | or a newline in a cell would break it
    for block in re.findall(r"(?:^\|.*\|$\n?)+", text, re.M):
        rows = block.strip("\n").split("\n")
        counts = {len(re.findall(r"(?<!\\)\|", r)) for r in rows}
        assert len(counts) == 1, rows
    assert "<script" not in page.lower() and "<img src=x" not in page and "&lt;script&gt;" in page
    assert _hrefs(page) == []  # no video: no link at all


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_md_escaping_renders_no_markup_and_no_table_break(s):
    out = md(s)
    assert "<" not in out and ">" not in out and "\n" not in out and "\r" not in out
    assert re.search(r"(?<!\\)\|", out.replace("\\\\", "")) is None  # every | escaped
    assert "](" not in out and "]:" not in out and "`" not in out.replace("\\`", "")


def _box(kind: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


BAD_VIDEOS = {
    "javascript:alert(1)": "not a relative path",
    "JaVaScRiPt:alert(document.cookie)//x.mp4": "not a relative path",
    "https://evil.example/x.mp4": "not a relative path",
    "//evil.example/x.mp4": "not a relative path",
    "/etc/passwd": "not a relative path",
    "../outside.mp4": "not a relative path",
    "videos/../../outside.mp4": "not a relative path",
    "videos\\..\\x.mp4": "not a relative path",
    "videos/missing.mp4": "is missing",
    "videos/empty.mp4": "is empty",
    "videos/truncated.mp4": "is not a complete mp4",
    "videos/no_index.mp4": "is not a complete mp4 (no moov box",
    "videos/link.mp4": "leads outside the run folder",
}


def test_only_whole_videos_inside_the_run_folder_are_linked(tmp_path):
    recs = standard_records()
    good = "videos/ind s0 #1?.mp4"  # spaces, '#' and '?' are part of the name: percent-encoded in the link
    for i, v in enumerate([good, *BAD_VIDEOS]):
        recs[i]["video"] = v
    d = write_run(tmp_path / "run", recs)
    (d / "videos").mkdir()
    (d / good).write_bytes(TINY_MP4)
    (d / "videos" / "empty.mp4").write_bytes(b"")
    (d / "videos" / "truncated.mp4").write_bytes(TINY_MP4[:-3])
    (d / "videos" / "no_index.mp4").write_bytes(_box(b"ftyp", b"isom") + _box(b"mdat", bytes(8)))
    (tmp_path / "outside.mp4").write_bytes(TINY_MP4)
    os.symlink(tmp_path / "outside.mp4", d / "videos" / "link.mp4")

    run = load_run(d)
    for i, (v, why) in enumerate(BAD_VIDEOS.items(), start=1):
        r = recs[i]
        assert any(w.startswith(f"video {v} of ({r['variant']}, seed {r['seed']}, episode {r['episode']}) ") and why in w
                   and w.endswith("the report shows 'video missing'") for w in run.warnings), (v, run.warnings)  # fmt: skip
    write_outputs(d)
    page = (d / "report.html").read_text()
    text = (d / "report.md").read_text()
    url = "videos/ind%20s0%20%231%3F.mp4"
    assert _hrefs(page) == [url, url]  # <video src> and <a href> of the one good video, nothing else
    assert page.count("video missing</figcaption>") == len(BAD_VIDEOS)
    assert text.count(f"]({url})") == 1 and text.count(": video missing") == len(BAD_VIDEOS)
    # the bad values appear only as escaped text (in the warnings), never as a tag's attribute
    assert all(v not in text.split("## Videos")[1] for v in BAD_VIDEOS if ":" in v or v.startswith("/"))


def test_a_real_mp4_cut_short_is_not_linked(tmp_path):
    import numpy as np

    from vla_gen_bench.eval.runner import write_video

    p = tmp_path / "videos" / "v.mp4"
    p.parent.mkdir()
    write_video([np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)], p)
    assert video_problem(p) is None and video_link(tmp_path, "videos/v.mp4") == ("videos/v.mp4", None)
    whole = p.read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2, 6):
        p.write_bytes(whole[:cut])
        assert "is not a complete mp4" in video_problem(p)
        assert video_link(tmp_path, "videos/v.mp4")[0] is None


def _csv_rows(path):
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_report_csvs_neutralise_formulas_but_keep_numbers(tmp_path):
    d = _hostile_run(tmp_path)
    write_outputs(d)
    for name in ("episodes.csv", "summary.csv", "axes.csv"):
        for row in _csv_rows(d / name):
            for cell in row:
                # a negative number is a number; any other cell starting like a formula is neutralised
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
                assert not cell.startswith("-") or re.fullmatch(r"-[0-9.e-]+", cell), (name, cell)
    eps = {r["instruction"] for r in csv.DictReader((d / "episodes.csv").open(newline=""))}
    assert "'" + FORMULAS[0] in eps and "'" + FORMULAS[2] in eps
    summary = {r["variant"]: r for r in csv.DictReader((d / "summary.csv").open(newline=""))}
    diff = summary["unseen_table"]["diff_vs_control"]
    assert diff.startswith("-0.") and float(diff) == pytest.approx(-0.3)  # a number, not text
    assert (
        summary["unseen_table"]["description"] == f"{SCRIPT} & {FORMULAS[1]}"
    )  # not at the start: unchanged


def test_compare_output_escapes_policy_names_and_paths(tmp_path):
    a = _hostile_run(tmp_path / "a")
    b = write_run(tmp_path / f"b{SCRIPT.replace('/', '_')}", standard_records("zero"), policy="zero",
                  suite=f"{IMG}\n| x")  # fmt: skip
    from vla_gen_bench.eval.report import compare

    table = compare(a, b)
    assert "<script" not in table and "<img" not in table and "B = `zero`" in table


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_report_on_an_unwritable_run_is_one_line(tmp_path, capsys):
    d = write_run(tmp_path / "run", standard_records())
    (d / ".vgb.lock").mkdir()  # the lock file cannot be created (as in a read-only folder)
    assert report_command(Report(d)) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"cannot write {d / '.vgb.lock'}" in line and f"vgb report {d} --out <dir>" in line
    (d / ".vgb.lock").rmdir()
    (d / "report.html").mkdir()  # writing fails half-way
    assert report_command(Report(d)) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"cannot write {d / 'report.html'}: Is a directory" in line and "--out <dir>" in line
    # --out: written elsewhere, the run folder gets nothing new
    before = sorted(p.name for p in d.iterdir())
    assert report_command(Report(d, out=tmp_path / "elsewhere")) == 0
    assert (tmp_path / "elsewhere" / "report.html").is_file() and sorted(
        p.name for p in d.iterdir()
    ) == before
    capsys.readouterr()
    # compare --out into a path that cannot be written
    (tmp_path / "file").write_text("")
    assert compare_command(Compare(d, d, out=tmp_path / "file" / "cmp.md")) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"cannot write {tmp_path / 'file'}" in line and "choose a writable --out path" in line


def test_vgb_report_on_a_read_only_run_folder(tmp_path):
    """The real CLI on a read-only bind mount (a user namespace; skipped where none can be made)."""
    import subprocess
    import sys
    from pathlib import Path

    rw, ro, out = tmp_path / "rw", tmp_path / "ro", tmp_path / "out"
    write_run(rw / "run", standard_records())
    ro.mkdir()
    vgb = str(Path(sys.executable).with_name("vgb"))
    script = ('mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && "$3" report "$2/run"; echo "rc=$?"; '
              '"$3" report "$2/run" --out "$4" >/dev/null 2>&1; echo "rc=$?"')  # fmt: skip
    try:
        p = subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", str(rw), str(ro), vgb, str(out)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    except OSError:
        pytest.skip("no unshare here: a read-only mount cannot be made")
    if "rc=" not in p.stdout:
        pytest.skip(f"cannot bind-mount read-only in a user namespace here ({p.stderr.strip()})")
    assert p.stdout.split() == ["rc=1", "rc=0"], (p.stdout, p.stderr)
    assert _one_line(p.stderr) == (
        f"cannot write {ro}/run/.vgb.lock: Read-only file system; is the run folder read-only? Copy it (cp -r "
        f"{ro}/run <copy>) and report the copy, or write the report elsewhere: vgb report {ro}/run --out <dir>"
    )
    assert (out / "report.html").is_file() and sorted(q.name for q in (rw / "run").iterdir()) == [
        "episodes.jsonl", "run.json"]  # fmt: skip


def test_report_out_copies_the_videos_it_links(tmp_path):
    recs = standard_records()
    recs[0]["video"] = "videos/a.mp4"
    d = write_run(tmp_path / "run", recs)
    (d / "videos").mkdir()
    (d / "videos" / "a.mp4").write_bytes(TINY_MP4)
    out = tmp_path / "out"
    written = write_outputs(d, out)
    assert (out / "videos" / "a.mp4").read_bytes() == TINY_MP4 and written[
        "videos/a.mp4"
    ] == out / "videos" / "a.mp4"
    assert "src='videos/a.mp4'" in (out / "report.html").read_text()


def test_report_refuses_while_another_process_writes_the_run(tmp_path, capsys):
    d = write_run(tmp_path / "run", standard_records())
    with held(d, "vgb evaluate") as holder:
        assert report_command(Report(d)) == 2
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"refused: {d} is in use by process {holder.pid} (vgb evaluate, on ")
        assert not (d / "report.md").exists()
        assert report_command(Report(d, out=tmp_path / "out")) == 2  # reading needs the writer gone too
        capsys.readouterr()
    with held(d, "vgb leaderboard add (reading)", shared=True):
        assert report_command(Report(d, out=tmp_path / "out")) == 0  # readers share
        assert report_command(Report(d)) == 2  # but nobody writes under a reader
        assert "refused:" in capsys.readouterr().err
    assert report_command(Report(d)) == 0  # the holder is gone (killed): its lock went with it


def test_odd_variant_names_print_no_terminal_escapes_and_plot(tmp_path, capsys):
    recs = standard_records()
    recs[0] = {**recs[0], "variant": "evil\x1b[2J\x1b[31m"}  # not in run.json: named in a warning
    recs[1] = {**recs[1], "variant": "x$\\frac{$"}  # a tick label matplotlib would parse as a broken formula
    d = write_run(tmp_path / "run", recs)
    assert report_command(Report(d)) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "variants not listed in run.json: evil\\x1b[2J\\x1b[31m" in err
