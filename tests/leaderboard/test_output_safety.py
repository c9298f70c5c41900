"""The leaderboard against hostile text and folders: formulas neutralised in the CSV and refused by the validator,
control characters refused, rendered tables escaped, no write through a symlink, and locks on the folders it uses."""

from __future__ import annotations

import csv
import io
import os
import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vla_gen_bench.eval.escape import FORMULA_PREFIXES, control_chars, csv_text
from vla_gen_bench.leaderboard import LeaderboardError, add, show, validate, validate_text
from vla_gen_bench.leaderboard.board import write_rows
from vla_gen_bench.leaderboard.commands import (
    LeaderboardAdd,
    LeaderboardValidate,
    leaderboard_add,
    leaderboard_validate,
)
from vla_gen_bench.leaderboard.schema import NAMES, TEXT
from vla_gen_bench.leaderboard.validate import read_rows

from ..eval.lock_holder import held
from .conftest import OUTCOMES, make_run

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"
FORMULAS = ('=HYPERLINK("http://evil.example","click")', "@SUM(1+1)*cmd|' /C calc'!A0", "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0")  # fmt: skip
FREE = tuple(c for c in TEXT if c != "variant")  # free text (a variant must be in the catalog)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# one valid run row (control variant, 7/10 with its Wilson interval)
BASE = dict(zip(NAMES, (
    "p,0123456789abcdef,run,smoke,1111111111111111,2222222222222222,3333333333333333,0.1.0,ind,in-distribution,"
    "train,10,7,0.700000,0.396778,0.892209,,,,,2026-11-20,me,"
).split(","), strict=True))  # fmt: skip


def to_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=list(NAMES), lineterminator="\n", quoting=csv.QUOTE_ALL
    )  # a lone \r too
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _raw_cells(path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- CSV formulas and control characters
def test_add_writes_formulas_neutralised_keeps_numbers_and_the_result_validates(tmp_path):
    csv_path = tmp_path / "lb" / "leaderboard.csv"
    better = {**OUTCOMES, "unseen_objects": [1] * 9 + [0]}  # beats the control (7/10): a negative paired drop
    run = make_run(tmp_path / "run", policy=FORMULAS[1], suite="@suite", outcomes=better)
    add(run, csv_path, submitter=FORMULAS[0], notes=FORMULAS[2], submission="s")
    rows = _raw_cells(csv_path)
    for r in rows:
        assert (r["policy"], r["suite"], r["submitter"], r["notes"]) == (
            "'" + FORMULAS[1], "'@suite", "'" + FORMULAS[0], "'" + FORMULAS[2])  # fmt: skip
    drop = next(r for r in rows if r["variant"] == "unseen_objects")["paired_drop"]
    assert drop == "-0.200000"  # a number stays a number
    assert validate(csv_path) == [] and validate(csv_path, csv_path.parent / "submissions") == []
    # a second add (--replace) neither doubles the quote nor misses the clash with the stored name
    with pytest.raises(LeaderboardError, match="already on the leaderboard"):
        add(run, csv_path, submitter=FORMULAS[0])
    add(run, csv_path, submitter=FORMULAS[3], notes=FORMULAS[2], replace=True, submission="s")
    rows = _raw_cells(csv_path)
    assert len(rows) == 5 and {r["policy"] for r in rows} == {"'" + FORMULAS[1]}
    assert {r["submitter"] for r in rows} == {"'" + FORMULAS[3]} and validate(csv_path) == []


@pytest.mark.parametrize("column", ["policy", "submitter", "notes"])
@pytest.mark.parametrize("payload", FORMULAS)
def test_validate_refuses_a_formula_in_a_text_cell_with_line_and_column(column, payload):
    other = {**BASE, "variant": "unseen_table", "axis": "vision", "split": "test", "policy": "q",
             "policy_hash": "abcdefabcdefabcd"}  # fmt: skip
    problems = validate_text(to_csv([other, {**BASE, column: payload}]), "lb.csv")
    assert problems == [f"lb.csv:3: column {column!r} starts with {payload[0]!r}, which a spreadsheet runs as a "
                        f"formula: {payload!r}; start it with another character (or with ', as 'vgb leaderboard "
                        f"add' writes it)"]  # fmt: skip
    assert validate_text(to_csv([other, {**BASE, column: "'" + payload}]), "lb.csv") == []
    # numbers are not text: a negative drop is valid where a number belongs
    assert validate_text(to_csv([{**other, "paired_n": "10", "paired_drop": "-0.050000", "paired_drop_low": "-0.2",
                                  "paired_drop_high": "0.1"}]), "lb.csv") == []  # fmt: skip


@pytest.mark.parametrize("column", ["notes", "policy", "suite", "variant", "rate", "date", "submitter"])
@pytest.mark.parametrize(
    "payload, code", [("a\x00b", "U+0000"), ("a\tb", "U+0009"), ("a\nb", "U+000A"), ("a\rb", "U+000D"),
                      ("\x1b[31mred", "U+001B"), ("a\x7fb", "U+007F"), ("a\x85b", "U+0085")],
)  # fmt: skip
def test_validate_refuses_control_characters_in_any_cell(column, payload, code):
    problems = validate_text(to_csv([{**BASE, column: payload}]), "lb.csv")
    assert (
        f"lb.csv:2: column {column!r} holds control character(s) {code}: {payload!r}; a cell is one line"
        in (problems[0] if problems else "")
    ), problems


def test_add_refuses_control_characters_in_what_the_submitter_types(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    csv_path = tmp_path / "lb.csv"
    for kw, flag in (({"notes": "ok\x00 nul"}, "--notes"), ({"submitter": "me\nyou"}, "--submitter"),
                     ({"policy": "a\tb"}, "--name")):  # fmt: skip
        with pytest.raises(LeaderboardError, match=f"^{flag} holds control character"):
            add(run, csv_path, **{"submitter": "me", **kw})
    assert not csv_path.exists()
    rc = leaderboard_add(LeaderboardAdd(run, submitter="me", csv=csv_path, notes="a\x00b"))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "refused: --notes holds control character(s) U+0000" in err


@FAST
@given(st.text(max_size=12), st.sampled_from(FREE))
def test_a_text_cell_is_refused_exactly_when_it_holds_a_control_character_or_starts_like_a_formula(
    value, column
):
    assume(value.strip() == value or control_chars(value))  # surrounding spaces are another, older refusal
    assume(value or column == "notes")  # notes may be empty, the other text columns are required
    problems = validate_text(to_csv([{**BASE, column: value}]), "lb.csv")
    bad = bool(control_chars(value)) or value.startswith(FORMULA_PREFIXES)
    assert bool(problems) == bad, (value, problems)
    assert all(p.startswith(f"lb.csv:2: column {column!r} ") for p in problems), problems


@FAST
@given(st.dictionaries(st.sampled_from(FREE), st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                                                       min_size=1, max_size=12).map(str.strip).filter(bool)))  # fmt: skip
def test_write_rows_makes_any_text_safe_and_valid(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("lb") / "lb.csv"
    write_rows(path, [{**BASE, **texts}])
    (row,) = _raw_cells(path)
    for c in FREE:
        assert not row[c].startswith(FORMULA_PREFIXES)
        assert row[c] == csv_text(texts.get(c, BASE[c]))
    assert validate(path) == []
    _, back, _ = read_rows(path)
    write_rows(path, [r for _, r in back])  # idempotent: written again, unchanged
    assert _raw_cells(path) == [row]


# ---------------------------------------------------------------------------- rendered leaderboard
class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs


def test_show_escapes_names_notes_and_suites_in_md_and_html(tmp_path):
    csv_path = tmp_path / "lb.csv"
    run = make_run(tmp_path / "run", suite=f"{SCRIPT}|s")
    add(run, csv_path, submitter="me", policy=f"{SCRIPT} | x", notes=f"{IMG} {LINK} [d]: javascript:alert(1)")
    md = show(csv_path)
    for raw in ("<script", "<img", "](javascript", "]: javascript"):
        assert raw not in md, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| x" in md  # the name is shown, as text
    # every row of a table has its header's columns: no unescaped | and no newline got through
    for block in re.findall(r"(?:^\|.*\|$\n?)+", md, re.M):
        rows = block.strip("\n").split("\n")
        assert len({len(re.findall(r"(?<!\\)\|", r)) for r in rows}) == 1, rows
    page = show(csv_path, "html")
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b", "ul", "li",
                           "table", "caption", "thead", "tbody", "tr", "th", "td"}, parser.tags  # fmt: skip
    assert [a for a in parser.attrs if a[0] != "charset"] == []  # no href, src or handler of any kind
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | x" in page


# ---------------------------------------------------------------------------- symlinks
def test_a_submission_that_is_a_symlink_is_refused_and_nothing_is_written_through_it(tmp_path, capsys):
    csv_path = tmp_path / "lb" / "leaderboard.csv"
    subs = csv_path.parent / "submissions"
    subs.mkdir(parents=True)
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "run.json").write_text("precious")
    os.symlink(victim, subs / "sym")
    run = make_run(tmp_path / "run")
    with pytest.raises(
        LeaderboardError, match=rf"^{subs / 'sym'} is a symlink \(to {victim}\); .*remove the link"
    ):
        add(run, csv_path, submitter="me", submission="sym", replace=True)
    assert sorted(os.listdir(victim)) == ["run.json"] and (victim / "run.json").read_text() == "precious"
    assert not csv_path.exists()
    rc = leaderboard_add(LeaderboardAdd(run, submitter="me", csv=csv_path, submission="sym", replace=True))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"refused: {subs / 'sym'} is a symlink")
    # a real folder whose run.json links out
    (subs / "real").mkdir()
    os.symlink(victim / "run.json", subs / "real" / "run.json")
    with pytest.raises(LeaderboardError, match=r"real/run.json is a symlink"):
        add(run, csv_path, submitter="me", submission="real", replace=True)
    assert (victim / "run.json").read_text() == "precious"
    # the submissions folder itself a link
    os.rename(subs, tmp_path / "subs-real")
    os.symlink(tmp_path / "subs-real", subs)
    with pytest.raises(LeaderboardError, match=r"submissions is a symlink"):
        add(run, csv_path, submitter="me", submission="new")
    assert not (tmp_path / "subs-real" / "new").exists()


def test_validate_flags_a_symlinked_submission_folder(tmp_path, capsys):
    csv_path = tmp_path / "lb" / "leaderboard.csv"
    run = make_run(tmp_path / "run")
    add(run, csv_path, submitter="me", submission="a")
    subs = csv_path.parent / "submissions"
    os.rename(subs / "a", tmp_path / "a-real")
    os.symlink(tmp_path / "a-real", subs / "a")
    rc = leaderboard_validate(LeaderboardValidate(csv_path, submissions=subs))
    err = capsys.readouterr().err
    assert (
        rc == 1
        and f"{subs / 'a'}: a symlink (to {tmp_path / 'a-real'}); a submission folder holds its own" in err
    )


# ---------------------------------------------------------------------------- locks
def test_add_holds_a_shared_lock_on_the_run_and_an_exclusive_one_on_the_submission(tmp_path, capsys):
    csv_path = tmp_path / "lb" / "leaderboard.csv"
    run = make_run(tmp_path / "run")
    cfg = LeaderboardAdd(run, submitter="me", csv=csv_path, submission="s")
    with held(run, "vgb evaluate") as holder:  # a writer of the run: refused, nothing written
        assert leaderboard_add(cfg) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(
            f"refused: {run} is in use by process {holder.pid} (vgb evaluate"
        )
        assert not csv_path.exists() and not (csv_path.parent / "submissions" / "s").exists()
    with held(run, "vgb report (reading)", shared=True):  # another reader: fine
        assert leaderboard_add(cfg) == 0
    capsys.readouterr()
    before = csv_path.read_bytes()
    dest = csv_path.parent / "submissions" / "s"
    with held(dest, "vgb leaderboard add") as holder:  # someone writes the submission folder
        assert (
            leaderboard_add(LeaderboardAdd(run, submitter="you", csv=csv_path, submission="s", replace=True))
            == 2
        )
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and f"{dest} is in use by process {holder.pid} (vgb leaderboard add" in err
        )
    assert csv_path.read_bytes() == before
    assert (
        leaderboard_add(LeaderboardAdd(run, submitter="you", csv=csv_path, submission="s", replace=True)) == 0
    )
    assert sorted(os.listdir(dest)) == ["episodes.jsonl", "run.json"]  # the lock file goes with the writer


def test_messages_print_no_terminal_escape_sequences(tmp_path, capsys):
    csv_path = tmp_path / "lb.csv"
    csv_path.write_text(to_csv([{**BASE, "notes": "\x1b[2Jgone"}]))
    assert leaderboard_validate(LeaderboardValidate(csv_path)) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "holds control character(s) U+001B" in err
    run = make_run(tmp_path / "run", policy="p\x1b[31m")
    assert leaderboard_add(LeaderboardAdd(run, submitter="me", csv=tmp_path / "new.csv")) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "column 'policy' holds control character(s) U+001B" in err
