"""``vgb leaderboard add|validate|show`` handlers: parsing with tyro, exit codes, messages, files written."""

from __future__ import annotations

import tyro

from vla_gen_bench.leaderboard.commands import (
    LeaderboardAdd,
    LeaderboardShow,
    LeaderboardValidate,
    leaderboard_add,
    leaderboard_show,
    leaderboard_validate,
)

from .conftest import make_run


def _run(cls, fn, args):
    return fn(tyro.cli(cls, args=args))


def test_add_validate_show_commands(tmp_path, capsys):
    csv = tmp_path / "lb" / "leaderboard.csv"
    run = make_run(tmp_path / "run", policy="pkg.mod:Policy")
    rc = _run(LeaderboardAdd, leaderboard_add, [str(run), "--submitter", "me", "--csv", str(csv), "--name", "My policy",
                                                 "--submission", "my-policy"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0
    assert "added 5 rows for 'My policy'" in err and str(csv) in err and "unseen_table" in err
    assert (tmp_path / "lb" / "submissions" / "my-policy" / "episodes.jsonl").is_file()

    rc = _run(
        LeaderboardValidate,
        leaderboard_validate,
        [str(csv), "--submissions", str(tmp_path / "lb" / "submissions")],
    )
    assert rc == 0 and "valid (5 rows: 5 run, 0 reported)" in capsys.readouterr().err

    out = tmp_path / "board.html"
    assert _run(LeaderboardShow, leaderboard_show, [str(csv), "--format", "html", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().err and "<td>My policy</td>" in out.read_text()
    assert _run(LeaderboardShow, leaderboard_show, [str(csv)]) == 0
    assert "| 1 | My policy |" in capsys.readouterr().out

    # the same run again: refused with exit code 2, the CSV untouched
    before = csv.read_text()
    rc = _run(LeaderboardAdd, leaderboard_add, [str(run), "--submitter", "me", "--csv", str(csv)])
    assert rc == 2 and "already on the leaderboard" in capsys.readouterr().err and csv.read_text() == before


def test_validate_exits_nonzero_with_line_numbered_messages(tmp_path, capsys):
    csv = tmp_path / "lb.csv"
    make_run(tmp_path / "run")
    assert (
        _run(LeaderboardAdd, leaderboard_add, [str(tmp_path / "run"), "--submitter", "me", "--csv", str(csv)])
        == 0
    )
    capsys.readouterr()
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace(",vision,", ",semantics,")
    csv.write_text("\n".join(lines) + "\n")
    assert _run(LeaderboardValidate, leaderboard_validate, [str(csv)]) == 1
    err = capsys.readouterr().err
    assert f"{csv}:4: variant 'dyn_noise_strong' has axis 'vision' in the catalog, not 'semantics'" in err
    assert "1 problem(s)" in err
    assert _run(LeaderboardShow, leaderboard_show, [str(csv)]) == 1
    assert "does not validate" in capsys.readouterr().err
    assert _run(LeaderboardValidate, leaderboard_validate, [str(tmp_path / "missing.csv")]) == 1
