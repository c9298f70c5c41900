"""Adding a run to the leaderboard CSV and rendering the leaderboard (``vgb leaderboard add`` / ``show``).

Ranking rule: rows are ranked only against rows with the same (suite_hash, asset_pack_hash): one table group per
pair, reported numbers in groups of their own. Within a group the axis score of a policy is the unweighted mean of
its rates on the axis' variants, with a MOVER 95 % interval from the variants' Wilson intervals (the formula of
``vgb report``, :func:`vla_gen_bench.eval.stats.mover_mean`); the OOD score is the same mean over the non-ID axes.
A policy is ranked on an axis only if it has every variant of that axis present in its group; ties share a rank.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vla_gen_bench.eval.escape import control_chars, csv_text, md
from vla_gen_bench.leaderboard.derive import EPISODES, RUN_JSON, LeaderboardError, run_rows
from vla_gen_bench.leaderboard.schema import KEY, NAMES, OPTIONAL, RUN_KEY, TEXT
from vla_gen_bench.leaderboard.validate import check_rows, read_rows, validate

SUBMISSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# ---------------------------------------------------------------------------- CSV
def write_rows(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """Write rows with the schema's columns, atomically (a temporary file renamed over the old one). Text cells
    that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` ...) are written with a leading ``'``."""
    import pandas as pd

    safe = [{k: csv_text(v) if k in TEXT and isinstance(v, str) else v for k, v in r.items()} for r in rows]
    # optional columns (the task family) are written once a row fills one; a put_on-only board keeps its header
    extra = [c.name for c in OPTIONAL if any(r.get(c.name) for r in rows)]
    safe = [{**r, **{n: r.get(n) or "" for n in extra}} for r in safe]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(safe, columns=list(NAMES) + extra, dtype=str).to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, path)


def _one_line(value: str, what: str) -> None:
    bad = control_chars(value)
    if bad:
        raise LeaderboardError(f"{what} holds control character(s) {', '.join(bad)}: {value!r}; give one line of "
                               f"printable text")  # fmt: skip


def submission_folder(csv_path: Path, name: str) -> Path:
    """``<csv dir>/submissions/<name>``, the folder ``add`` writes a submission into.

    Raises:
        LeaderboardError: a bad name, or a folder or file there that is a symlink or resolves outside the
            submissions folder (vgb never writes through a link into another folder).
    """
    if not SUBMISSION_NAME.match(name):
        raise LeaderboardError(f"submission name {name!r} must be letters, digits, '.', '_' or '-'")
    root = csv_path.parent / "submissions"
    dest = root / name
    for p in (root, dest, *(dest / f for f in (RUN_JSON, EPISODES))):
        if p.is_symlink():
            raise LeaderboardError(f"{p} is a symlink (to {os.readlink(p)}); vgb writes submissions only into real "
                                   f"folders under {root}: remove the link, or pick another --submission name")  # fmt: skip
    if not dest.resolve().is_relative_to(root.resolve()):
        raise LeaderboardError(
            f"{dest} resolves to {dest.resolve()}, outside {root}; pick another --submission name"
        )
    return dest


def _copy_submission(src: Path, dest: Path) -> None:
    """Copy run.json and episodes.jsonl into ``dest``: each through a new temporary file renamed over the old one
    (a rename replaces a link itself, it never writes through one)."""
    for f in (RUN_JSON, EPISODES):
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{f}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write((src / f).read_bytes())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest / f)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def add(
    run_dir: Path | str,
    csv_path: Path | str,
    submitter: str,
    notes: str = "",
    policy: str | None = None,
    replace: bool = False,
    submission: str | None = None,
) -> list[dict[str, str]]:
    """Derive a finished run's rows from its episodes and append them to the leaderboard CSV.

    Args:
        run_dir: directory written by ``vgb evaluate``.
        csv_path: leaderboard CSV (created with the header if absent).
        submitter: who submits (GitHub handle); required.
        notes: free text copied into every row (checkpoint, recipe, caveats).
        policy: display name (default: run.json's ``policy`` string).
        replace: replace rows already there for the same (policy, suite, asset pack, variant) or the same run.
        submission: also copy run.json and episodes.jsonl to ``<csv dir>/submissions/<submission>/`` (what a pull
            request adds, and what the CI check re-derives the rows from).

    Returns:
        The rows added.

    Locks: a shared one on ``run_dir`` while it reads it, an exclusive one on the submission folder while it writes
    there (:func:`vla_gen_bench.eval.lock.run_lock`).

    Raises:
        LeaderboardError: the run cannot be used, its rows clash with rows already there (without ``replace``), the
            result would not validate, or the submission folder is a symlink or leads outside
            ``<csv dir>/submissions``; nothing is written then.
        RunLockedError: another process writes the run folder or the submission folder.
    """
    from vla_gen_bench.eval.lock import run_lock

    if not submitter.strip():
        raise LeaderboardError("a submitter is required (--submitter <your GitHub handle>)")
    if policy is not None and not policy.strip():
        raise LeaderboardError("--name must not be empty")
    for value, what in ((submitter, "--submitter"), (notes, "--notes"), (policy or "", "--name")):
        _one_line(value.strip(), what)
    path = Path(csv_path)
    if submission is not None:
        submission_folder(path, submission)
    with run_lock(run_dir, "vgb leaderboard add (reading)", shared=True):
        return _add(Path(run_dir), path, submitter, notes, policy, replace, submission)


def _add(run_dir: Path, path: Path, submitter: str, notes: str, policy: str | None, replace: bool,
         submission: str | None) -> list[dict[str, str]]:  # fmt: skip
    from vla_gen_bench.eval.lock import remove_lock_file, run_lock

    new = run_rows(run_dir, policy, submitter.strip(), notes.strip())
    existing: list[tuple[int, dict[str, str]]] = []
    if path.exists():
        header, existing, problems = read_rows(path)
        if problems or not header:
            raise LeaderboardError(
                f"{path} cannot be read as a leaderboard; fix it first:\n" + "\n".join(problems)
            )
    keys = {tuple(r[k] for k in KEY) for r in new}
    run_keys = {tuple(r[k] for k in RUN_KEY) for r in new}

    def clashes(r: dict[str, str]) -> bool:
        return tuple(r.get(k, "") for k in KEY) in keys or (
            r.get("source") == "run" and tuple(r.get(k, "") for k in RUN_KEY) in run_keys
        )

    clash = [(line, r) for line, r in existing if clashes(r)]
    if clash and not replace:
        line, r = clash[0]
        raise LeaderboardError(f"{path}:{line}: {r.get('policy')!r} on {r.get('variant')} (suite hash "
                               f"{r.get('suite_hash')}, asset pack {r.get('asset_pack_hash')}) is already on the "
                               f"leaderboard ({len(clash)} clashing row(s)); pass --replace to replace them, or "
                               f"--name to add this run under another name")  # fmt: skip
    rows = [r for _, r in existing if not clashes(r)] + new
    problems = check_rows(list(enumerate(rows, 2)), str(path))
    if problems:
        raise LeaderboardError(f"not written: {path} would not validate:\n" + "\n".join(problems))
    if submission is None:
        write_rows(path, rows)
        return new
    dest = submission_folder(path, submission)
    existed = dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    with run_lock(dest, "vgb leaderboard add"):
        try:
            submission_folder(path, submission)  # again, now that nobody else writes there
            if existed and not replace:
                same = all((dest / f).is_file() and (dest / f).read_bytes() == (run_dir / f).read_bytes()
                           for f in (RUN_JSON, EPISODES))  # fmt: skip
                if not same:
                    raise LeaderboardError(
                        f"{dest} already holds another submission; pick another name or --replace"
                    )
            _copy_submission(run_dir, dest)
            write_rows(path, rows)
        finally:
            # a submission folder holds run.json and episodes.jsonl only (it is committed)
            remove_lock_file(dest)
    return new


# ---------------------------------------------------------------------------- show
@dataclass
class Table:
    caption: str
    head: list[str]
    rows: list[list[str]]


@dataclass
class Group:
    """One suite/asset group. Every string is plain text (names and notes as submitted): :func:`render` escapes."""

    title: str
    lines: list[str]
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    caution: str = ""
    """Shown in bold before the lines (reported rows: not produced by vla-gen-bench)."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _cell(p: float, lo: float | None, hi: float | None) -> str:
    return _pct(p) if lo is None or hi is None else f"{_pct(p)} [{_pct(lo)}, {_pct(hi)}]"


def _score(
    estimates: list[tuple[float, float | None, float | None]],
) -> tuple[float, float | None, float | None]:
    from vla_gen_bench.eval.stats import mover_mean

    if any(lo is None or hi is None for _, lo, hi in estimates):
        return sum(p for p, _, _ in estimates) / len(estimates), None, None
    s, lo, hi = mover_mean([(p, lo, hi) for p, lo, hi in estimates])  # type: ignore[misc]
    return s, max(0.0, lo), min(1.0, hi)


def _ranks(scores: list[float | None]) -> list[str]:
    """Competition ranks (1, 2, 2, 4) of the given scores, '–' where there is none."""
    out = []
    for s in scores:
        out.append("–" if s is None else str(1 + sum(1 for t in scores if t is not None and t > s + 1e-12)))
    return out


def groups(csv_path: Path | str) -> list[Group]:
    """The leaderboard as groups of ranked tables (one group per suite/asset hash pair)."""
    import pandas as pd

    from vla_gen_bench.variants import AXES, CONTROL, VARIANTS

    path = Path(csv_path)
    problems = validate(path)
    if problems:
        raise LeaderboardError(f"{path} does not validate; fix it first ('vgb leaderboard validate'):\n"
                               + "\n".join(problems))  # fmt: skip
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for c in ("rate", "ci_low", "ci_high"):
        df[c] = pd.to_numeric(df[c].replace("", None), errors="raise")
    df["n"] = pd.to_numeric(df["n"].replace("", None))
    order = {v.name: i for i, v in enumerate(VARIANTS)}
    df["_order"] = df["variant"].map(order)
    out: list[Group] = []
    keyed = sorted(df.groupby(["suite_hash", "asset_pack_hash"], sort=False),
                   key=lambda kv: (kv[1]["source"].iloc[0] != "run", kv[1]["suite"].iloc[0], kv[0]))  # fmt: skip
    for (suite_hash, pack_hash), g in keyed:
        reported = (g["source"] == "reported").all()
        suites = ", ".join(sorted(set(g["suite"])))
        ns = g["n"].dropna()
        nrange = (
            ""
            if ns.empty
            else f"n per variant {int(ns.min())}" + (f"–{int(ns.max())}" if ns.max() != ns.min() else "")
        )
        if reported:
            title = f"Reported: {suites} (asset set {pack_hash})"
            lines = ["Published numbers on the source's own simulator set-up and assets, mapped to this catalog's "
                     "variant names; listed for reference and never ranked with runs. See each row's notes."]  # fmt: skip
        else:
            title = f"Suite {suites} · suite hash {suite_hash} · asset pack {pack_hash}"
            lines = [f"catalog hash {', '.join(sorted(set(g['catalog_hash'])))} · vla-gen-bench "
                     f"{', '.join(sorted(set(g['vgb_version'])))}" + (f" · {nrange}" if nrange else "")]  # fmt: skip
        if nrange and reported:
            lines.append(nrange)
        lines.append("Cells: success rate in % [Wilson 95 % CI]; axis score = mean of the axis' variant rates "
                     "[MOVER 95 % CI]; ranks by point estimate (overlapping intervals mean the order is not "
                     "established).")  # fmt: skip
        policies = list(dict.fromkeys(g["policy"]))
        axes = [a for a in AXES if (g["axis"] == a).any()] + sorted(set(g["axis"]) - set(AXES))
        est: dict[tuple[str, str], dict[str, tuple[float, float | None, float | None]]] = {}
        for _, r in g.sort_values("_order").iterrows():
            ci = (None, None) if pd.isna(r["ci_low"]) else (float(r["ci_low"]), float(r["ci_high"]))
            est.setdefault((r["policy"], r["axis"]), {})[r["variant"]] = (float(r["rate"]), *ci)
        axis_variants = {
            a: list(dict.fromkeys(g[g["axis"] == a].sort_values("_order")["variant"])) for a in axes
        }
        scores: dict[tuple[str, str], tuple[float, float | None, float | None] | None] = {}
        for p in policies:
            for a in axes:
                have = est.get((p, a), {})
                scores[(p, a)] = (
                    _score([have[v] for v in axis_variants[a]])
                    if len(have) == len(axis_variants[a])
                    else None
                )

        # overview: one row per policy, ranked by the OOD mean (by the control arm alone when there is no OOD axis)
        ood_axes = [a for a in axes if a != "in-distribution"]
        overall: dict[str, tuple[float, float | None, float | None] | None] = {}
        for p in policies:
            parts = [scores[(p, a)] for a in (ood_axes or axes)]
            overall[p] = None if any(x is None for x in parts) else _score(parts)  # type: ignore[arg-type]
        ranked = sorted(policies, key=lambda p: (overall[p] is None, -(overall[p] or (0,))[0], p))
        ranks = _ranks([overall[p][0] if overall[p] else None for p in ranked])  # type: ignore[index]
        head = ["rank", "policy", *axes, *(["OOD mean"] if ood_axes else [])]
        rows = []
        for rk, p in zip(ranks, ranked, strict=True):
            cells = [_cell(*scores[(p, a)]) if scores[(p, a)] else "incomplete" for a in axes]  # type: ignore[misc]
            if ood_axes:
                cells.append(_cell(*overall[p]) if overall[p] else "incomplete")  # type: ignore[misc]
            rows.append([rk, p, *cells])
        notes = [f"{p}: {n}" for p in ranked for n in dict.fromkeys(g[g["policy"] == p]["notes"]) if n]
        caution = "Not produced by vla-gen-bench." if reported else ""
        group = Group(title, lines, [Table("Overview", head, rows)], notes, caution)

        for a in axes:
            vs = axis_variants[a]
            ranked = sorted(policies, key=lambda p: (scores[(p, a)] is None, -(scores[(p, a)] or (0,))[0], p))
            ranked = [p for p in ranked if est.get((p, a))]
            ranks = _ranks([scores[(p, a)][0] if scores[(p, a)] else None for p in ranked])  # type: ignore[index]
            single = len(vs) == 1  # the score is the variant's rate: one column is enough
            head = ["rank", "policy", *([] if single else [f"{a} score"]), *vs]
            rows = []
            for rk, p in zip(ranks, ranked, strict=True):
                have = est.get((p, a), {})
                sc = scores[(p, a)]
                score = [] if single else [_cell(*sc) if sc else "incomplete"]
                rows.append([rk, p, *score, *[_cell(*have[v]) if v in have else "–" for v in vs]])
            note = " (the control arm)" if vs == [CONTROL] else ""
            group.tables.append(Table(f"{a}{note}", head, rows))
        out.append(group)
    return out


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(map(md, t.head)) + " |", "|" + "---|" * len(t.head)]
    lines += ["| " + " | ".join(map(md, r)) + " |" for r in t.rows]
    return "\n".join(lines)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in t.rows)
    return f"<table><caption>{html.escape(t.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(gs: Sequence[Group], format: Literal["md", "html"] = "md") -> str:
    if format == "md":
        parts = ["# vla-gen-bench leaderboard", ""]
        for g in gs:
            caution = [f"**{md(g.caution)}**  "] if g.caution else []
            parts += [f"## {md(g.title)}", "", *caution, *[f"{md(line)}  " for line in g.lines], ""]
            if g.notes:
                parts += ["Notes:", "", *[f"- {md(n)}" for n in g.notes], ""]
            for t in g.tables:
                parts += [f"### {md(t.caption)}", "", _md_table(t), ""]
        return "\n".join(parts)
    if format == "html":
        css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;"
               "margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}"
               "caption{text-align:left;font-weight:bold;padding:0.3em 0}th{background:#f3f3f3}")  # fmt: skip
        body = []
        for g in gs:
            body.append(f"<h2>{html.escape(g.title)}</h2>")
            if g.caution:
                body.append(f"<p><b>{html.escape(g.caution)}</b></p>")
            body += [f"<p>{html.escape(line)}</p>" for line in g.lines]
            if g.notes:
                body.append(
                    "<p>Notes:</p><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in g.notes) + "</ul>"
                )
            body += [_html_table(t) for t in g.tables]
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>vla-gen-bench leaderboard</title>"
                f"<style>{css}</style></head><body><h1>vla-gen-bench leaderboard</h1>{''.join(body)}</body></html>\n")  # fmt: skip
    raise ValueError(f"unknown format {format!r}; choose md or html")


def show(csv_path: Path | str, format: Literal["md", "html"] = "md") -> str:
    """The leaderboard as markdown or HTML: per (suite hash, asset hash) group, an overview ranked by the OOD mean
    and one table per axis ranked by the axis score, every number with its 95 % CI.

    Raises:
        LeaderboardError: the CSV does not validate (nothing is ranked from an invalid leaderboard).
    """
    return render(groups(csv_path), format)
