"""``vgb leaderboard add|validate|show``: config dataclasses (tyro) and their handlers. Handlers return exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

DEFAULT_CSV = Path("leaderboard/leaderboard.csv")


def _console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


@dataclass(frozen=True)
class LeaderboardAdd:
    """Add a finished run to the leaderboard: its rows are re-derived from the run's episodes.jsonl."""

    run_dir: tyro.conf.Positional[Path]
    """Run directory written by 'vgb evaluate' (run.json + episodes.jsonl)."""
    submitter: str
    """Who submits (your GitHub handle); written into every row."""
    csv: Path = DEFAULT_CSV
    """Leaderboard CSV (created with its header if absent)."""
    name: str | None = None
    """Display name of the policy (default: the run's --policy string); unique within a suite/asset group."""
    notes: str = ""
    """Free text for every row: checkpoint, training recipe, caveats."""
    submission: str | None = None
    """Also copy run.json + episodes.jsonl to <csv dir>/submissions/<SUBMISSION>/ (what a pull request adds)."""
    replace: bool = False
    """Replace rows already there for this policy name or this run (same suite and asset pack)."""


@dataclass(frozen=True)
class LeaderboardValidate:
    """Check a leaderboard CSV (schema, rates, Wilson CIs, duplicates, variants, hashes); exit 1 on any problem."""

    csv: tyro.conf.Positional[Path] = DEFAULT_CSV
    """Leaderboard CSV to check."""
    submissions: Path | None = None
    """Also re-derive every run row from the submission folders here (CI: leaderboard/submissions)."""


@dataclass(frozen=True)
class LeaderboardShow:
    """Render the leaderboard: per suite/asset-hash group, tables per axis ranked by score with 95 % CIs."""

    csv: tyro.conf.Positional[Path] = DEFAULT_CSV
    """Leaderboard CSV to render (it must validate)."""
    format: Literal["md", "html"] = "md"
    out: Path | None = None
    """Write to this file instead of printing to stdout."""


def _refused(console, message: str) -> None:
    from rich.text import Text

    from vla_gen_bench.eval.escape import printable

    # a Text is no rich markup, and printable() lets no ESC sequence of a name through to the terminal
    console.print(Text.assemble(("refused: ", "red"), printable(message, newlines=True)))


def leaderboard_add(cfg: LeaderboardAdd) -> int:
    from vla_gen_bench.eval.lock import RunLockedError
    from vla_gen_bench.leaderboard.board import add
    from vla_gen_bench.leaderboard.derive import LeaderboardError

    console = _console()
    try:
        rows = add(cfg.run_dir, cfg.csv, cfg.submitter, cfg.notes, policy=cfg.name, replace=cfg.replace,
                   submission=cfg.submission)  # fmt: skip
    except (LeaderboardError, RunLockedError) as e:
        _refused(console, str(e))
        return 2
    except OSError as e:
        _refused(console, f"cannot write {e.filename or cfg.csv}: {e.strerror or e}")
        return 2
    for r in rows:
        ci = f"[{float(r['ci_low']):.1%}, {float(r['ci_high']):.1%}]"
        drop = f"  drop vs control {float(r['paired_drop']):+.1%}" if r["paired_drop"] else ""
        console.print(
            f"  {r['variant']:26s} {r['successes']:>4s}/{r['n']:<4s} {float(r['rate']):6.1%} {ci}{drop}",
            markup=False,
        )
    console.print(f"added {len(rows)} rows for {rows[0]['policy']!r} (policy hash {rows[0]['policy_hash']}, suite "
                  f"{rows[0]['suite']} {rows[0]['suite_hash']}, asset pack {rows[0]['asset_pack_hash']}) to {cfg.csv}", markup=False)  # fmt: skip
    if cfg.submission:
        console.print(
            f"copied run.json and episodes.jsonl to {cfg.csv.parent / 'submissions' / cfg.submission}",
            markup=False,
        )
    return 0


def leaderboard_validate(cfg: LeaderboardValidate) -> int:
    from vla_gen_bench.eval.escape import printable
    from vla_gen_bench.leaderboard.validate import read_rows, validate

    console = _console()
    problems = validate(cfg.csv, cfg.submissions)
    for p in problems:
        console.print(printable(p), style="red", markup=False)
    if problems:
        console.print(f"{len(problems)} problem(s) in {cfg.csv}", style="red", markup=False)
        return 1
    _, rows, _ = read_rows(cfg.csv)
    n_run = sum(1 for _, r in rows if r["source"] == "run")
    checked = f"; every run row re-derived from {cfg.submissions}" if cfg.submissions else ""
    console.print(f"{cfg.csv}: valid ({len(rows)} rows: {n_run} run, {len(rows) - n_run} reported){checked}",
                  markup=False)  # fmt: skip
    return 0


def leaderboard_show(cfg: LeaderboardShow) -> int:
    from vla_gen_bench.leaderboard.board import show
    from vla_gen_bench.leaderboard.derive import LeaderboardError

    console = _console()
    try:
        text = show(cfg.csv, cfg.format)
    except LeaderboardError as e:
        console.print(str(e), style="red", markup=False)
        return 1
    if cfg.out is None:
        print(text)
    else:
        try:
            cfg.out.parent.mkdir(parents=True, exist_ok=True)
            cfg.out.write_text(text)
        except OSError as e:
            console.print(f"cannot write {e.filename or cfg.out}: {e.strerror or e}; choose a writable --out path",
                          style="red", markup=False)  # fmt: skip
            return 1
        console.print(f"wrote {cfg.out}", markup=False)
    return 0
