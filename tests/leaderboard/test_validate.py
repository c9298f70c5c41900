"""Validation of leaderboard CSVs: random valid leaderboards pass, each kind of corruption is caught with the right,
line-numbered message (hypothesis)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla_gen_bench.eval.escape import csv_text
from vla_gen_bench.eval.stats import paired_difference, wilson_interval
from vla_gen_bench.leaderboard.schema import HEX16, NAMES, fmt_float
from vla_gen_bench.leaderboard.validate import validate, validate_text
from vla_gen_bench.variants import AXES, CATALOG, CONTROL

VARIANTS = [v.name for v in CATALOG]
BY = {v.name: v for v in CATALOG}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hex16 = st.text("0123456789abcdef", min_size=16, max_size=16)
# names with commas, quotes and non-ASCII letters: the CSV must quote them and read them back unchanged; one that
# starts like a formula (=, +, -, @) is valid as 'vgb leaderboard add' writes it, behind a '
text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=24
).map(str.strip).filter(bool).map(csv_text)  # fmt: skip
label = st.from_regex(r"[a-z][a-z0-9._-]{0,15}", fullmatch=True).filter(lambda s: not HEX16.match(s))
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)).map(date.isoformat)


@st.composite
def result(draw, reported: bool):
    """n, successes, rate, ci_low, ci_high cells (reported rows: rate rounded as published, n maybe empty)."""
    if reported and draw(st.booleans()):
        return {"n": "", "successes": "", "rate": f"{draw(st.integers(0, 1000)) / 1000:.3f}", "ci_low": "",
                "ci_high": ""}  # fmt: skip
    n = draw(st.integers(1, 400))
    k = draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    rate = f"{k / n:.3f}" if reported else fmt_float(k / n)
    return {"n": str(n), "successes": str(k), "rate": rate, "ci_low": fmt_float(lo), "ci_high": fmt_float(hi)}


@st.composite
def paired(draw, variant: str, n: str):
    empty = dict.fromkeys(("paired_n", "paired_drop", "paired_drop_low", "paired_drop_high"), "")
    if variant == CONTROL or not n or not draw(st.booleans()):
        return empty
    pn = draw(st.integers(1, int(n)))
    a = draw(st.integers(0, pn))
    b = draw(st.integers(0, pn - a))
    c = draw(st.integers(0, pn - a - b))
    d = pn - a - b - c
    ctrl = [1] * a + [1] * b + [0] * c + [0] * d
    var = [1] * a + [0] * b + [1] * c + [0] * d
    p = paired_difference(ctrl, var)
    return {"paired_n": str(pn), "paired_drop": fmt_float(p.diff), "paired_drop_low": fmt_float(p.low),
            "paired_drop_high": fmt_float(p.high)}  # fmt: skip


@st.composite
def submission(draw, reported: bool = False):
    """The rows of one policy on one suite/asset group, as the CSV holds them."""
    variants = draw(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=6, unique=True))
    if reported:
        common = {"policy_hash": draw(st.just("") | label), "source": "reported", "suite_hash": draw(label),
                  "catalog_hash": "", "asset_pack_hash": draw(label), "vgb_version": ""}  # fmt: skip
    else:
        common = {"policy_hash": draw(hex16), "source": "run", "suite_hash": draw(hex16), "catalog_hash": draw(hex16),
                  "asset_pack_hash": draw(hex16), "vgb_version": draw(st.sampled_from(["0.1.0", "1.2.3rc1", "0.2"]))}  # fmt: skip
    common.update(policy=draw(text), suite=draw(text), date=draw(dates), submitter=draw(text),
                  notes=draw(st.just("") | text))  # fmt: skip
    rows = []
    for v in variants:
        res = draw(result(reported))
        row = {**common, "variant": v, "axis": BY[v].axis, "split": BY[v].split, **res}
        row.update(draw(paired(v, "" if reported else res["n"])))
        rows.append({k: row[k] for k in NAMES})
    return rows


@st.composite
def leaderboards(draw):
    """Valid leaderboards: several run submissions (unique names and policy hashes) and maybe reported ones."""
    subs = draw(st.lists(submission(), min_size=1, max_size=4))
    subs += draw(st.lists(submission(reported=True), max_size=2))
    names = [s[0]["policy"] for s in subs]
    hashes = [s[0]["policy_hash"] for s in subs if s[0]["source"] == "run"]
    from hypothesis import assume

    assume(len(set(names)) == len(names) and len(set(hashes)) == len(hashes))
    return [r for s in subs for r in s]


def to_csv(rows: list[dict[str, str]], columns=NAMES) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def at(problems: list[str], line: int) -> list[str]:
    return [p for p in problems if p.startswith(f"lb.csv:{line}: ")]


# ---------------------------------------------------------------------------- valid
@FAST
@given(leaderboards())
def test_random_valid_leaderboards_pass(rows):
    assert validate_text(to_csv(rows), "lb.csv") == []


@FAST
@given(leaderboards())
def test_rows_written_by_the_board_read_back_unchanged(rows):
    import tempfile
    from pathlib import Path

    from vla_gen_bench.leaderboard.board import write_rows
    from vla_gen_bench.leaderboard.validate import read_rows

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lb.csv"
        write_rows(path, rows)
        header, back, problems = read_rows(path)
        assert problems == [] and header == list(NAMES)
        assert [r for _, r in back] == rows
        assert validate(path) == []


# ---------------------------------------------------------------------------- corruptions
def _with_n(rows):
    return [i for i, r in enumerate(rows) if r["n"]]


CORRUPTIONS = ("bad_rate", "bad_ci", "duplicate", "unknown_variant", "wrong_axis", "wrong_split", "negative_n",
               "successes_gt_n", "bad_hash", "non_numeric", "bad_source", "bad_date", "empty_required")  # fmt: skip


@pytest.mark.parametrize("kind", CORRUPTIONS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=leaderboards(), data=st.data())
def test_each_corruption_is_caught_with_a_line_numbered_message(kind, rows, data):
    rows = [dict(r) for r in rows]
    with_n = _with_n(rows)
    i = data.draw(
        st.sampled_from(
            with_n if kind in ("bad_rate", "bad_ci", "negative_n", "successes_gt_n") else range(len(rows))
        )
    )
    r = rows[i]
    line = i + 2  # the header is line 1, no cell holds a newline
    if kind == "bad_rate":
        k, n = int(r["successes"]), int(r["n"])
        delta = data.draw(st.floats(0.002, 0.5))
        r["rate"] = f"{(k / n + delta) if k / n + delta <= 1 else (k / n - delta):.6f}"
        expect = rf"rate {re.escape(r['rate'])} does not equal successes/n = {k}/{n}"
    elif kind == "bad_ci":
        col = data.draw(st.sampled_from(["ci_low", "ci_high"]))
        x = float(r[col])
        r[col] = fmt_float(x + 0.01 if x <= 0.99 else x - 0.01)
        expect = r"ci_low/ci_high .* are not the Wilson 95 % interval of"
    elif kind == "duplicate":
        rows.append(dict(r))
        line, first = len(rows) + 1, i + 2
        expect = rf"duplicate of line {first}: \(policy, suite_hash, asset_pack_hash, variant\)"
    elif kind == "unknown_variant":
        r["variant"] = r["variant"] + data.draw(st.sampled_from(["x", "_2", "s"]))
        if r["variant"] in BY:
            r["variant"] = "no_such_variant"
        expect = rf"unknown variant '{re.escape(r['variant'])}'"
    elif kind == "wrong_axis":
        r["axis"] = data.draw(st.sampled_from([a for a in AXES if a != r["axis"]]))
        expect = (
            rf"variant '{r['variant']}' has axis '{BY[r['variant']].axis}' in the catalog, not '{r['axis']}'"
        )
    elif kind == "wrong_split":
        r["split"] = "train" if r["split"] == "test" else "test"
        expect = rf"variant '{r['variant']}' has split '{BY[r['variant']].split}' in the catalog"
    elif kind == "negative_n":
        r["n"] = str(-data.draw(st.integers(0, 50)))
        expect = rf"column 'n' must be >= 1, got {r['n']}"
    elif kind == "successes_gt_n":
        r["successes"] = str(int(r["n"]) + data.draw(st.integers(1, 20)))
        expect = rf"successes {r['successes']} > n {r['n']}"
    elif kind == "bad_hash":
        col = data.draw(st.sampled_from(["suite_hash", "asset_pack_hash"] + (["policy_hash", "catalog_hash"]
                                                                              if r["source"] == "run" else [])))  # fmt: skip
        if r["source"] == "run":
            r[col] = data.draw(
                st.sampled_from([r[col][:15], r[col].upper() + "G", r[col] + "0", "not-a-hash"])
            )
            expect = rf"{col} '{re.escape(r[col])}' is not a 16-digit lowercase hex hash"
        else:
            r[col] = data.draw(hex16)
            expect = rf"{col} '{r[col]}' of a reported row must be a label"
    elif kind == "non_numeric":
        col = data.draw(
            st.sampled_from(["n", "successes", "rate", "ci_low", "ci_high"] if r["n"] else ["rate"])
        )
        r[col] = data.draw(st.sampled_from(["abc", "1.5.2", "nan", "inf", "12%", "one"]))
        word = "an integer" if col in ("n", "successes") else "a number"
        expect = rf"column '{col}' must be {word}, got '{re.escape(r[col])}'"
    elif kind == "bad_source":
        r["source"] = data.draw(st.sampled_from(["Run", "paper", "runs", "?"]))
        expect = r"source must be one of run, reported"
    elif kind == "bad_date":
        r["date"] = data.draw(
            st.sampled_from(["2026-13-01", "2026-02-30", "25/11/2026", "yesterday", "2026-1-5"])
        )
        expect = rf"column 'date' must be a date YYYY-MM-DD, got '{re.escape(r['date'])}'"
    else:  # empty_required
        col = data.draw(st.sampled_from(["policy", "variant", "rate", "date", "submitter", "suite_hash"]
                                        + (["n", "policy_hash"] if r["source"] == "run" else [])))  # fmt: skip
        r[col] = ""
        expect = rf"column '{col}' is empty \(required for source={r['source']}\)"
    problems = validate_text(to_csv(rows), "lb.csv")
    mine = at(problems, line)
    assert any(re.search(expect, p) for p in mine), (kind, expect, problems)
    # the corrupted row is blamed; other lines only for duplicates' first line or a changed hash group
    assert mine, problems


@FAST
@given(leaderboards(), st.data())
def test_missing_column_is_reported_on_the_header(rows, data):
    col = data.draw(st.sampled_from(NAMES))
    problems = validate_text(to_csv(rows, [c for c in NAMES if c != col]), "lb.csv")
    assert problems == [f"lb.csv:1: missing column '{col}' (the header needs: {', '.join(NAMES)})"]


def test_structure_problems_are_line_numbered():
    rows = [
        "OpenVLA,0123456789abcdef,run,smoke,0123456789abcdef,0123456789abcdef,0123456789abcdef,0.1.0,ind,"
        "in-distribution,train,10,7,0.700000,0.396778,0.892209,,,,,2026-11-20,me,",
    ]
    good = ",".join(NAMES) + "\n" + rows[0] + "\n"
    assert validate_text(good, "lb.csv") == []
    assert validate_text("", "lb.csv") == [
        f"lb.csv:1: empty file; the first line must be the header: {','.join(NAMES)}"
    ]
    short = good + "a,b,c\n"
    assert validate_text(short, "lb.csv") == [f"lb.csv:3: 3 fields, the header has {len(NAMES)}"]
    extra = good.replace("notes\n", "notes,extra\n", 1).replace(",me,\n", ",me,,x\n")
    assert validate_text(extra, "lb.csv") == [
        "lb.csv:1: unknown column 'extra' (allowed: " + ", ".join([*NAMES, "family"]) + ")"
    ]
    # a quoted cell spanning two lines (refused: a cell is one line) and the next record's line number still counts
    # physical lines
    quoted = (
        rows[0]
        .replace("OpenVLA", '"Open\nVLA"')
        .replace("run,smoke,0123456789abcdef", "run,smoke,1111111111111111")
    )
    bad = (
        rows[0]
        .replace("OpenVLA", "other")
        .replace("0.700000", "0.7x")
        .replace(",0123456789abcdef,run", ",2222222222222222,run")
    )
    assert validate_text(good + quoted + "\n" + bad + "\n", "lb.csv") == [
        "lb.csv:3: column 'policy' holds control character(s) U+000A: 'Open\\nVLA'; a cell is one line of printable "
        "text (no NUL, tab or newline)",
        "lb.csv:5: column 'rate' must be a number, got '0.7x'",
    ]
    assert validate_text(good + rows[0].replace(",0.1.0,", ", 0.1.0,") + "\n", "lb.csv")[0].startswith(
        "lb.csv:3: column 'vgb_version' has leading or trailing spaces"
    )


def test_cross_row_consistency():
    base = dict(zip(NAMES, (
        "OpenVLA,0123456789abcdef,run,smoke,1111111111111111,2222222222222222,3333333333333333,0.1.0,ind,"
        "in-distribution,train,10,7,0.700000,0.396778,0.892209,,,,,2026-11-20,me,"
    ).split(","), strict=True))  # fmt: skip
    lo, hi = wilson_interval(4, 10)
    other = {**base, "variant": "unseen_table", "axis": "vision", "split": "test", "successes": "4",
             "rate": "0.400000", "ci_low": fmt_float(lo), "ci_high": fmt_float(hi)}  # fmt: skip
    assert validate_text(to_csv([base, other]), "lb.csv") == []
    # the same run under a second name
    renamed = {**other, "policy": "OpenVLA v2"}
    assert at(validate_text(to_csv([base, other, renamed]), "lb.csv"), 4) == [
        "lb.csv:4: the run with policy_hash 0123456789abcdef already has variant unseen_table on line 3 (same suite "
        "and asset pack): one run is added once"
    ]
    # one name, two checkpoints in one group
    clash = {**other, "policy_hash": "abcdefabcdefabcd"}
    (p,) = validate_text(to_csv([base, clash]), "lb.csv")
    assert p.startswith(
        "lb.csv:3: policy 'OpenVLA' has policy_hash abcdefabcdefabcd here but 0123456789abcdef on line 2"
    )
    # one run, two catalog hashes
    (p,) = validate_text(to_csv([base, {**other, "catalog_hash": "4444444444444444"}]), "lb.csv")
    assert p.startswith("lb.csv:3: catalog_hash/vgb_version 4444444444444444/0.1.0 differ from line 2")
    # paired columns: all or none, inside their interval, not on the control, not on reported rows
    pd_ = {
        "paired_n": "10",
        "paired_drop": "0.300000",
        "paired_drop_low": "-0.117732",
        "paired_drop_high": "0.601139",
    }
    assert validate_text(to_csv([base, {**other, **pd_}]), "lb.csv") == []
    assert validate_text(to_csv([base, {**other, **pd_, "paired_drop": "0.700000"}]), "lb.csv") == [
        "lb.csv:3: paired_drop 0.7 is not inside its interval [-0.117732, 0.601139]"
    ]
    assert validate_text(to_csv([base, {**other, **pd_, "paired_n": "11"}]), "lb.csv") == [
        "lb.csv:3: paired_n 11 > n 10"
    ]
    assert validate_text(to_csv([base, {**other, "paired_n": "10"}]), "lb.csv") == [
        "lb.csv:3: paired_n, paired_drop, paired_drop_low and paired_drop_high go together (all or none)"
    ]
    assert validate_text(to_csv([{**base, **pd_}]), "lb.csv") == [
        "lb.csv:2: the control variant 'ind' has no paired drop against itself; leave paired_* empty"
    ]
    assert validate_text(to_csv([base, {**other, **pd_, "paired_drop": "1.5"}]), "lb.csv")[0] == (
        "lb.csv:3: column 'paired_drop' must be in [-1, 1], got 1.5"
    )


def test_reported_rows_are_exempt_where_appropriate():
    rep = dict(zip(NAMES, (
        "Paper policy,,reported,rl4vla-paper,rl4vla-paper,,rl4vla-assets,,ind,in-distribution,train,192,150,0.781,"
        "0.717573,0.833894,,,,,2026-11-25,maintainers,published"
    ).split(","), strict=True))  # fmt: skip
    assert validate_text(to_csv([rep]), "lb.csv") == []
    # no n: rate only
    bare = {**rep, "n": "", "successes": "", "ci_low": "", "ci_high": ""}
    assert validate_text(to_csv([bare]), "lb.csv") == []
    # a rate off by more than the published rounding (78.1 % vs 150/192 = 78.125 %) is still caught
    assert at(validate_text(to_csv([{**rep, "rate": "0.775"}]), "lb.csv"), 2) == [
        "lb.csv:2: rate 0.775 does not equal successes/n = 150/192 = 0.781250"
    ]
    # a CI without n cannot be checked, so it is refused
    assert validate_text(to_csv([{**bare, "ci_low": "0.7", "ci_high": "0.8"}]), "lb.csv") == [
        "lb.csv:2: ci_low and ci_high need each other and n/successes (the interval is recomputed from them)"
    ]
    assert validate_text(to_csv([{**rep, "paired_n": "5"}]), "lb.csv") == [
        "lb.csv:2: a reported row cannot carry paired_* columns (they need the run's matched episodes)"
    ]
    # a run row gets no such exemptions
    run = {**rep, "source": "run"}
    problems = validate_text(to_csv([run]), "lb.csv")
    for expect in ("column 'policy_hash' is empty", "suite_hash 'rl4vla-paper' is not a 16-digit",
                   "rate 0.781 does not equal successes/n", "column 'vgb_version' is empty"):  # fmt: skip
        assert any(expect in p for p in problems), (expect, problems)


def test_unknown_variant_suggests_the_closest_name():
    row = dict(zip(NAMES, (
        "p,0123456789abcdef,run,smoke,1111111111111111,2222222222222222,3333333333333333,0.1.0,unseen_tabel,"
        "vision,test,10,7,0.700000,0.396778,0.892209,,,,,2026-11-20,me,"
    ).split(","), strict=True))  # fmt: skip
    (p,) = validate_text(to_csv([row]), "lb.csv")
    assert (
        p.startswith("lb.csv:2: unknown variant 'unseen_tabel'; did you mean 'unseen_table'")
        and "vgb list" in p
    )


@pytest.mark.parametrize("name", VARIANTS)
def test_every_catalog_variant_is_accepted_with_its_axis_and_split(name):
    v = BY[name]
    row = dict(zip(NAMES, (
        f"p,0123456789abcdef,run,all,1111111111111111,2222222222222222,3333333333333333,0.1.0,{name},{v.axis},"
        f"{v.split},10,7,0.700000,0.396778,0.892209,,,,,2026-11-20,me,"
    ).split(","), strict=True))  # fmt: skip
    assert validate_text(to_csv([row]), "lb.csv") == []
