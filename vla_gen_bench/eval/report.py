"""Reports of a run directory: ``vgb report <run_dir>`` and ``vgb compare <run_a> <run_b>``.

A run directory holds ``run.json`` (policy, suite, hashes, control variant, variants, versions) and
``episodes.jsonl`` (one record per finished episode, written by the runner). :func:`write_outputs` derives
``episodes.csv``, ``summary.csv`` (one row per variant), ``axes.csv`` (one row per axis + the OOD mean),
``plots/*.png``, ``report.md`` and a self-contained ``report.html`` (plots embedded). Formulas: :mod:`.stats` and
``docs/evaluation.md``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import json
import math
import shutil
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tyro

from vla_gen_bench.episode import FAILURE_LABELS
from vla_gen_bench.eval.escape import control_chars, csv_cell, md, md_code, printable
from vla_gen_bench.eval.records import (
    EPISODES,
    FIELDS,
    RUN_JSON,
    EpisodeRecord,
    RecordError,
    RunInfo,
    read,
    read_run,
)
from vla_gen_bench.eval.stats import (
    AXES,
    SMALL_N_HALF_WIDTH,
    AxisStats,
    Summary,
    VariantStats,
    mover_mean,
    paired_difference,
    summarize,
)

HASH_KEYS = ("suite_hash", "catalog_hash", "asset_pack_hash")
AXIS_COLORS = {
    "in-distribution": "#7f7f7f",
    "vision": "#1f77b4",
    "semantics": "#ff7f0e",
    "execution": "#2ca02c",
}
FAILURE_COLORS = dict(
    zip(FAILURE_LABELS, ("#2ca02c", "#7f7f7f", "#9467bd", "#d62728", "#ff7f0e", "#8c564b"), strict=True)
)
# the other families' labels (vla_gen_bench.families); a label without a colour here gets matplotlib's next one
FAILURE_COLORS.update({"never_touched": "#bcbd22", "overshot": "#17becf"})


def run_labels(s: Summary) -> tuple[str, ...]:
    """The outcome labels of a summary's families, put_on's first: put_on's alone for a put_on run (its CSV
    columns are what they always were)."""
    out = list(FAILURE_LABELS) if any(v.family == "put_on" for v in s.variants) or not s.variants else []
    for v in s.variants:
        out += [lab for lab in v.failures if lab not in out]
    return tuple(out)


def _multi_family(s: Summary) -> bool:
    return any(v.family != "put_on" for v in s.variants)


class RunError(ValueError):
    """A run directory that cannot be reported: missing files, malformed lines (with line numbers), mismatches."""


# ---------------------------------------------------------------------------- reading
@dataclass
class Run:
    dir: Path
    info: RunInfo
    """Its run.json."""
    records: list[dict[str, Any]]
    """De-duplicated on (variant, seed, episode), in file order."""
    warnings: list[str] = field(default_factory=list)

    @property
    def policy(self) -> str:
        return self.info.policy

    def summary(self) -> Summary:
        return summarize(self.records, self.info.control, self.info.variants)


def _consistent(r: dict[str, Any], where: str) -> dict[str, Any]:
    if r["success"] != (r["failure"] == "success"):
        raise RunError(
            f"{where}: success is {json.dumps(r['success'])} but the failure label is {r['failure']!r}"
        )
    return r


def parse_record(line: str, where: str) -> dict[str, Any]:
    """One episodes.jsonl line as a validated record (:class:`.records.EpisodeRecord`, old names migrated, as a
    dict without its chain link); RunError naming ``where`` (file:line) otherwise."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise RunError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    try:
        return _consistent(EpisodeRecord.from_dict(obj, where).to_dict(chain=False), where)
    except RecordError as e:
        raise RunError(str(e)) from None


def read_episodes(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of an episodes.jsonl (:func:`.records.read`: each (variant, seed, episode) once, a torn last line
    skipped) as dicts without chain links, and warnings. A malformed line is a RunError naming its line number."""
    try:
        eps = read(path)
    except RecordError as e:
        raise RunError(str(e)) from None
    records = [_consistent(r, f"{path}:{no}") for r, no in zip(eps.dicts(), eps.lines, strict=True)]
    return records, eps.warnings


def load_run(run_dir: Path | str) -> Run:
    """Read and validate ``run.json`` and ``episodes.jsonl`` of a run directory."""
    d = Path(run_dir)
    rj, ej = d / RUN_JSON, d / EPISODES
    for p in (rj, ej):
        if not p.is_file():
            raise RunError(f"{p} not found; is {d} a run directory written by 'vgb evaluate'?")
    try:
        info = read_run(d)
    except RecordError as e:
        raise RunError(str(e)) from None
    records, warnings = read_episodes(ej)
    if not records:
        raise RunError(f"{ej} holds no episodes yet")
    unknown: set[str] = set()
    for r in records:
        if r["policy"] != info.policy:
            raise RunError(f"{ej.name}: episode ({r['variant']}, {r['episode']}) was run by policy {r['policy']!r}, "
                           f"but run.json says {info.policy!r}; one run directory holds one policy")  # fmt: skip
        m = info.variants.get(r["variant"])
        if m is None:
            unknown.add(r["variant"])
        elif m.get("axis", r["axis"]) != r["axis"]:
            raise RunError(f"{ej.name}: variant {r['variant']!r} has axis {r['axis']!r} in its episodes but "
                           f"{m['axis']!r} in run.json")  # fmt: skip
    if unknown:
        warnings.append(f"variants not listed in run.json: {', '.join(sorted(unknown))}")
    for r in records:
        v = r.get("video")
        if v:
            _, problem = video_link(d, v)
            if problem:
                warnings.append(f"video {v} of ({r['variant']}, seed {r['seed']}, episode {r['episode']}) {problem}; "
                                f"the report shows 'video missing'")  # fmt: skip
    for name, problem in _instruction_problems(records):
        warnings.append(f"{name}: {problem}")
    return Run(d, info, records, warnings)


def video_link(run_dir: Path, value: object) -> tuple[str | None, str | None]:
    """The link a report may emit for an episode's ``video`` field: ``(url, None)`` for a relative path to a whole
    video file inside the run folder (no scheme, no ``..``, no absolute path, percent-encoded), else ``(None, why)``.
    """
    if not isinstance(value, str) or not value:
        return None, "is not a path"
    parts = value.split("/")
    if (value.startswith("/") or ":" in value or "\\" in value or ".." in parts or control_chars(value)
            or "" in parts):  # fmt: skip
        return None, "is not a relative path inside the run folder (no scheme, '..' or absolute path)"
    root = run_dir.resolve()
    path = (run_dir / value).resolve()
    if not path.is_relative_to(root):
        return None, "leads outside the run folder (a symlink?)"
    problem = video_problem(path)
    if problem:
        return None, problem
    return urllib.parse.quote(value, safe="/"), None


def video_problem(path: Path) -> str | None:
    """Why ``path`` is no playable video (missing, empty, an mp4 cut short or without its index), None if it looks
    whole. MP4s are checked box by box: every top-level box must fit in the file and ``moov`` must be there."""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        return None
    kinds = []
    with path.open("rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            n = int.from_bytes(head[:4], "big") if len(head) >= 8 else -1
            if n == 1:
                n = int.from_bytes(head[8:16], "big") if len(head) == 16 else -1
            elif n == 0:
                n = size - pos  # the last box runs to the end of the file
            if n < 8 or pos + n > size:
                return f"is not a complete mp4 (its box at byte {pos} runs past the end of its {size} bytes: truncated?)"
            kinds.append(head[4:8])
            pos += n
    if kinds[0] != b"ftyp" or b"moov" not in kinds:
        return f"is not a complete mp4 (no {'ftyp' if kinds[0] != b'ftyp' else 'moov'} box: truncated?)"
    return None


def _instruction_problems(records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """Instruction integrity: empty prompts, or a variant's identifier leaking into the prompt."""
    out = []
    by: dict[str, list[str]] = {}
    for r in records:
        by.setdefault(r["variant"], []).append(r["instruction"])
    for v, ins in by.items():
        empty = sum(1 for s in ins if not s.strip())
        if empty:
            out.append((v, f"{empty} episode(s) sent an empty instruction to the policy"))
        if len(v) >= 4 and "_" in v:
            leaked = sum(1 for s in ins if v.lower() in s.lower())
            if leaked:
                out.append((v, f"the variant's name appears in {leaked} instruction(s): does the prompt leak the "
                               f"perturbation id?"))  # fmt: skip
    return out


# ---------------------------------------------------------------------------- formatting
def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _ci(lo: float, hi: float) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def _sev(s: Any) -> str:
    return "" if s is None else f"{s:g}" if isinstance(s, (int, float)) else str(s)


def _failures(v: VariantStats) -> str:
    parts = [f"{lab} {c}" for lab, c in v.failures.items() if c and lab != "success"]
    return ", ".join(parts) or "—"


def _paired_cell(v: VariantStats) -> tuple[str, str]:
    if v.is_control:
        return "control", "—"
    if v.paired is None:
        return "—", "—"
    p = v.paired
    return str(p.n), f"{_pct(p.diff, True)} {_ci(p.low, p.high)}"


def variant_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    """Per-variant rows; with task families other than put_on, a ``family`` column (each variant is paired with
    its family's control arm)."""
    fam = _multi_family(s)
    head = ["variant", *(["family"] if fam else []), "axis", "split", "severity", "n", "success %", "95 % CI",
            "grasped %", "paired n", "Δ vs control (pp) [95 % CI]", "relative drop", "failures"]  # fmt: skip
    rows = []
    for v in s.variants:
        pn, pd = _paired_cell(v)
        rd = "—" if v.relative_drop is None else f"{100 * v.relative_drop:.1f} %"
        name = v.variant + (" ⚠" if v.small_n else "")
        rows.append([name, *([v.family] if fam else []), v.axis, v.split, _sev(v.severity), str(v.n),
                     _pct(v.rate), _ci(v.ci_low, v.ci_high), _pct(v.grasp_rate), pn, pd, rd, _failures(v)])  # fmt: skip
    return head, rows


def axis_table(s: Summary) -> tuple[list[str], list[list[str]]]:
    """Per-axis rows: the run's axes; with several families, each family's axes (``push: vision``) and then the
    overall ones (the MOVER mean over the families)."""
    head = ["axis", "variants", "score %", "95 % CI", "Δ vs control (pp)", "relative drop"]
    rows = []
    groups = [(f"{f}: ", p) for f, p in s.families.items()] + [("overall: " if s.families else "", s)]
    for prefix, part in groups:
        for a in part.axes + ([part.ood] if part.ood else []):
            rd = "—" if a.relative_drop is None else f"{100 * a.relative_drop:.1f} %"
            rows.append([prefix + a.axis, str(len(a.variants)), _pct(a.score), _ci(a.ci_low, a.ci_high),
                         _pct(a.diff_vs_control, True), rd])  # fmt: skip
    return head, rows


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; every cell is escaped with :func:`.escape.md` (raw HTML, ``|``, newlines, links)."""
    esc = [[md(c) for c in r] for r in [list(head), *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------- files
def write_csvs(run: Run, s: Summary, out_dir: Path | None = None) -> dict[str, Path]:
    """episodes.csv, summary.csv and axes.csv into ``out_dir`` (default: the run folder); text cells that a
    spreadsheet would run as a formula are written with a leading ``'`` (:func:`.escape.csv_text`)."""
    d = run.dir if out_dir is None else out_dir
    known = list(FIELDS)
    extra = sorted(
        {k for r in run.records for k in r} - set(known) - {"chain"}
    )  # the hash-chain link is no data
    cols = known + extra
    with (d / "episodes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(map(csv_cell, cols))  # extra keys of a record are text from the file
        for r in sorted(run.records, key=lambda r: (r["variant"], r["seed"], r["episode"])):
            w.writerow([csv_cell("" if r.get(c) is None else json.dumps(r[c]) if isinstance(r.get(c), (dict, list))
                                 else r[c]) for c in cols])  # fmt: skip
    labels, fam = run_labels(s), _multi_family(s)
    with (d / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "axis", "split", "severity", "is_control", "n", "successes", "rate", "ci_low",
                    "ci_high", "grasp_rate", "success_once_rate", "paired_n", "diff_vs_control", "diff_low",
                    "diff_high", "relative_drop", "small_n", *(f"failure_{x}" for x in labels),
                    "instructions", "description", *(["family"] if fam else [])])  # fmt: skip
        for v in s.variants:
            p = v.paired
            w.writerow(map(csv_cell, [
                v.variant, v.axis, v.split, "" if v.severity is None else v.severity, v.is_control, v.n,
                v.successes, v.rate, v.ci_low, v.ci_high, v.grasp_rate, v.success_once_rate,
                "" if p is None else p.n, "" if p is None else p.diff, "" if p is None else p.low,
                "" if p is None else p.high, "" if v.relative_drop is None else v.relative_drop,
                v.small_n, *(v.failures.get(x, 0) for x in labels), len(v.instructions), v.description,
                *([v.family] if fam else [])]))  # fmt: skip
    with (d / "axes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["axis", "variants", "k", "score", "ci_low", "ci_high", "diff_vs_control", "relative_drop"]
        )
        groups = [(f"{f}: ", p) for f, p in s.families.items()] + [("overall: " if s.families else "", s)]
        for prefix, a in [
            (pre, a) for pre, part in groups for a in part.axes + ([part.ood] if part.ood else [])
        ]:
            w.writerow(map(csv_cell, [prefix + a.axis, ";".join(a.variants), len(a.variants), a.score, a.ci_low, a.ci_high,
                                      "" if a.diff_vs_control is None else a.diff_vs_control,
                                      "" if a.relative_drop is None else a.relative_drop]))  # fmt: skip
    return {"episodes.csv": d / "episodes.csv", "summary.csv": d / "summary.csv", "axes.csv": d / "axes.csv"}


def _plain(label: str) -> str:
    """A tick label matplotlib shows as written: ``$`` would start mathtext (and a malformed formula raises), a control
    character has no glyph."""
    return printable(label).replace("$", r"\$")


def make_plots(s: Summary, out_dir: Path) -> dict[str, Path]:
    """PNG plots (matplotlib, Agg canvas, no global pyplot state) under ``out_dir``."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise RunError("plots need matplotlib: pip install matplotlib (or the 'train' extra)") from e
    out_dir.mkdir(parents=True, exist_ok=True)
    vs = s.variants
    names = [_plain(v.variant) for v in vs][::-1]  # top-to-bottom in table order
    rev = vs[::-1]
    colors = [AXIS_COLORS.get(v.axis, "#17becf") for v in rev]
    h = max(2.8, 0.32 * len(vs) + 1.2)
    paths = {}

    def legend_axes(ax):
        from matplotlib.patches import Patch

        present = [a for a in AXIS_COLORS if any(v.axis == a for v in vs)]
        ax.legend(handles=[Patch(color=AXIS_COLORS[a], label=a) for a in present], loc="upper center", fontsize=8,
                  bbox_to_anchor=(0.5, -0.12 if len(vs) > 6 else -0.25), ncol=len(present))  # fmt: skip

    # 1. per-variant success with Wilson whiskers, coloured by axis
    fig = Figure(figsize=(7.5, h), layout="constrained")
    ax = fig.add_subplot()
    rates = [100 * v.rate for v in rev]
    err = [[100 * (v.rate - v.ci_low) for v in rev], [100 * (v.ci_high - v.rate) for v in rev]]
    ax.barh(names, rates, xerr=err, color=colors, capsize=3, ecolor="#333333")
    ctrl = [v for v in vs if v.is_control]
    if ctrl:
        ax.axvline(100 * ctrl[0].rate, color="#333333", ls="--", lw=1, label="control")
    ax.set_xlim(0, 100)
    ax.set_xlabel("success at the final step (%), 95 % Wilson CI")
    ax.set_title("Success per variant")
    legend_axes(ax)
    paths["variants"] = out_dir / "variants.png"
    fig.savefig(paths["variants"], dpi=110)

    # 2. per-axis score with MOVER CI
    rows = s.axes + ([s.ood] if s.ood else [])
    fig = Figure(figsize=(6.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    labels = [a.axis if a is not s.ood else "OOD mean" for a in rows]
    ax.bar(labels, [100 * a.score for a in rows],
           yerr=[[100 * (a.score - a.ci_low) for a in rows], [100 * (a.ci_high - a.score) for a in rows]],
           color=[AXIS_COLORS.get(a.axis, "#17becf") for a in rows], capsize=4, ecolor="#333333")  # fmt: skip
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (%), 95 % CI")
    ax.set_title("Per-axis score (unweighted mean of the axis' variants)")
    paths["axes"] = out_dir / "axes.png"
    fig.savefig(paths["axes"], dpi=110)

    # 3. paired difference vs control
    paired = [v for v in rev if v.paired is not None]
    fig = Figure(figsize=(7.5, max(2.8, 0.32 * len(paired) + 1.2)), layout="constrained")
    ax = fig.add_subplot()
    if paired:
        d = [100 * v.paired.diff for v in paired]
        e = [
            [100 * (v.paired.diff - v.paired.low) for v in paired],
            [100 * (v.paired.high - v.paired.diff) for v in paired],
        ]
        ax.errorbar(
            d,
            [_plain(v.variant) for v in paired],
            xerr=e,
            fmt="o",
            color="#333333",
            ecolor="#777777",
            capsize=3,
        )
        ax.scatter(
            d,
            [_plain(v.variant) for v in paired],
            c=[AXIS_COLORS.get(v.axis, "#17becf") for v in paired],
            zorder=3,
        )
    else:
        ax.text(
            0.5,
            0.5,
            "no paired variants (control missing?)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.axvline(0, color="#333333", lw=1)
    ax.set_xlim(-100, 100)
    ax.set_xlabel(f"variant − control ({s.control}) on matched episodes (pp), 95 % Newcombe CI")
    ax.set_title("Paired difference vs the control arm")
    paths["paired_drop"] = out_dir / "paired_drop.png"
    fig.savefig(paths["paired_drop"], dpi=110)

    # 4. failure labels, stacked fractions
    fig = Figure(figsize=(7.5, h), layout="constrained")
    ax = fig.add_subplot()
    left = [0.0] * len(rev)
    for lab in run_labels(s):
        frac = [100 * v.failures.get(lab, 0) / v.n for v in rev]
        ax.barh(names, frac, left=left, color=FAILURE_COLORS.get(lab), label=lab)
        left = [a + b for a, b in zip(left, frac, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("episodes (%)")
    ax.set_title("Outcome labels per variant")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 if len(vs) > 6 else -0.25), ncol=3, fontsize=8)
    paths["failures"] = out_dir / "failures.png"
    fig.savefig(paths["failures"], dpi=110)
    return paths


def _instruction_lines(v: VariantStats, limit: int = 8) -> list[str]:
    items = list(v.instructions.items())
    lines = [f"{c}× “{ins}”" for ins, c in items[:limit]]
    if len(items) > limit:
        lines.append(f"… and {len(items) - limit} more distinct instructions (all in episodes.csv)")
    return lines


def _videos(run: Run) -> dict[str, list[tuple[dict[str, Any], str | None]]]:
    """Per variant, the records with a video and the link to it (None: not a whole file inside the run folder)."""
    by: dict[str, list[tuple[dict[str, Any], str | None]]] = {}
    for r in sorted(run.records, key=lambda r: (r["variant"], r["seed"], r["episode"])):
        if r.get("video"):
            by.setdefault(r["variant"], []).append((r, video_link(run.dir, r["video"])[0]))
    return by


def _copy_videos(run: Run, out_dir: Path) -> dict[str, Path]:
    """A report written outside the run folder links copies of the run's videos (links never leave the folder)."""
    written = {}
    for rs in _videos(run).values():
        for r, url in rs:
            if url is not None:
                dest = out_dir / r["video"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run.dir / r["video"], dest)
                written[r["video"]] = dest
    return written


def _video_label(r: dict[str, Any]) -> str:
    return f"s{r['seed']} ep {r['episode']} {r['failure']}"


def _config_rows(cfg: dict[str, Any]) -> list[list[str]]:
    rows = [[k, str(cfg.get(k, ""))] for k in ("policy", "suite", "suite_hash", "catalog_hash", "asset_pack_hash",
                                                  "policy_hash", "control", "created") if k in cfg]  # fmt: skip
    if cfg.get("render_device"):
        dev = cfg["render_device"]
        kind = "CPU rasteriser" if dev.get("cpu_rasteriser") else "GPU"
        rows.append(["render device", f"{dev.get('name')} ({kind}; --render-device {dev.get('requested')})"])
    for k, v in (cfg.get("versions") or {}).items():
        rows.append([f"version: {k}", str(v)])
    return rows


METHOD_NOTE = (
    f"Success is read at the final step. 95 % CIs: Wilson per variant; paired difference variant − control on "
    f"episodes matched by index, Newcombe's method 10 (corrected φ); axis score = unweighted mean of the axis' variants with a "
    f"MOVER interval (variants treated as independent); OOD = mean of the non-ID axis scores. ⚠ marks a variant "
    f"whose CI half-width exceeds {SMALL_N_HALF_WIDTH:.2f}, too wide to separate two policies by 10 points. "
    f"Formulas: docs/evaluation.md."
)


def render_markdown(run: Run, s: Summary, plots: dict[str, Path]) -> str:
    cfg = run.info.to_dict()
    out = [f"# vgb report: {md_code(run.policy)} on suite {md_code(cfg['suite'])}", "", METHOD_NOTE, ""]
    if run.warnings or s.warnings:
        out += ["## Warnings", ""] + [f"- {md(w)}" for w in run.warnings + s.warnings] + [""]
    out += ["## Per-axis scores", "", md_table(*axis_table(s)), ""]
    out += ["## Per variant", "", md_table(*variant_table(s)), ""]
    out += ["## Plots", ""] + [f"![{k}](plots/{p.name})" for k, p in plots.items()] + [""]
    out += ["## Instructions the policy received", ""]
    for v in s.variants:
        out += [f"**{md(v.variant)}**" + (f" — {md(v.description)}" if v.description else ""), ""]
        out += [f"- {md(x)}" for x in _instruction_lines(v)] + [""]
    vids = _videos(run)
    if vids:
        out += ["## Videos", ""]
        for name, rs in vids.items():
            links = ", ".join(f"[{md(_video_label(r))}]({url})" if url else f"{md(_video_label(r))}: video missing"
                              for r, url in rs)  # fmt: skip
            out += [f"- **{md(name)}**: {links}"]
        out += [""]
    out += ["## Run", "", md_table(["key", "value"], _config_rows(cfg)), ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
.note{color:#555;font-size:.9rem}.warn{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem 1rem}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}.plots{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
video{width:224px;margin-right:.5rem}code,pre{background:#f6f6f6}pre{padding:.6rem;overflow:auto;font-size:.8rem}
"""


def render_html(run: Run, s: Summary, plots: dict[str, Path]) -> str:
    cfg = run.info.to_dict()
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>vgb report: {e(run.policy)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>vgb report: <code>{e(run.policy)}</code> on suite <code>{e(str(cfg['suite']))}</code></h1>",
             f"<p class='note'>{e(METHOD_NOTE)}</p>"]  # fmt: skip
    warns = run.warnings + s.warnings
    if warns:
        parts.append(
            "<div class='warn'><b>Warnings</b><ul>"
            + "".join(f"<li>{e(w)}</li>" for w in warns)
            + "</ul></div>"
        )
    parts += ["<h2>Per-axis scores</h2>", _html_table(*axis_table(s))]
    parts += ["<h2>Per variant</h2>", _html_table(*variant_table(s))]
    parts.append("<h2>Plots</h2><div class='plots'>")
    for k, p in plots.items():
        b64 = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{e(k)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption class='note'>plots/{e(p.name)}</figcaption></figure>")  # fmt: skip
    parts.append("</div><h2>Instructions the policy received</h2>")
    for v in s.variants:
        desc = f" — {e(v.description)}" if v.description else ""
        parts.append(f"<p><b>{e(v.variant)}</b>{desc}</p><ul>"
                     + "".join(f"<li>{e(x)}</li>" for x in _instruction_lines(v)) + "</ul>")  # fmt: skip
    vids = _videos(run)
    if vids:
        parts.append("<h2>Videos</h2>")
        for name, rs in vids.items():
            items = "".join(
                f"<figure style='display:inline-block'><video controls preload='none' src='{e(url)}'></video>"
                f"<figcaption class='note'><a href='{e(url)}'>{e(_video_label(r))}</a></figcaption></figure>"
                if url else f"<figure style='display:inline-block'><figcaption class='note'>{e(_video_label(r))}: "
                            f"video missing</figcaption></figure>"
                for r, url in rs
            )  # fmt: skip
            parts.append(f"<p><b>{e(name)}</b></p><div>{items}</div>")
    parts += ["<h2>Run</h2>", _html_table(["key", "value"], _config_rows(cfg)),
              "<details><summary>run.json</summary><pre>" + e(json.dumps(cfg, indent=2, default=str)) + "</pre></details>",
              "</body></html>"]  # fmt: skip
    return "\n".join(parts)


def write_outputs(run_dir: Path | str, out_dir: Path | str | None = None) -> dict[str, Path]:
    """Write episodes.csv, summary.csv, axes.csv, plots/*.png, report.md and report.html into ``run_dir``.

    Args:
        run_dir: the run folder.
        out_dir: write there instead (with copies of the linked videos); default: ``run_dir``.

    Returns:
        name -> path of every file written.

    Raises:
        RunError: missing or malformed run.json / episodes.jsonl (line-numbered), inconsistent records.
        OSError: a file cannot be written (a read-only run folder).
    """
    run = load_run(run_dir)
    return write_run_outputs(run, run.summary(), None if out_dir is None else Path(out_dir))


def write_run_outputs(run: Run, s: Summary, out_dir: Path | None = None) -> dict[str, Path]:
    """:func:`write_outputs` for an already loaded run and its summary."""
    out = run.dir if out_dir is None else out_dir
    out.mkdir(parents=True, exist_ok=True)
    written = write_csvs(run, s, out)
    plots = make_plots(s, out / "plots")
    written.update({f"plots/{p.name}": p for p in plots.values()})
    if out.resolve() != run.dir.resolve():
        written.update(_copy_videos(run, out))
    (out / "report.md").write_text(render_markdown(run, s, plots))
    (out / "report.html").write_text(render_html(run, s, plots))
    written["report.md"] = out / "report.md"
    written["report.html"] = out / "report.html"
    return written


# ---------------------------------------------------------------------------- compare
@dataclass
class CompareRow:
    variant: str
    axis: str
    n_a: int
    rate_a: float
    ci_a: tuple[float, float]
    n_b: int
    rate_b: float
    ci_b: tuple[float, float]
    pairs: int
    diff: float | None
    """A − B on (variant, seed, episode) triples present in both runs."""
    diff_low: float | None
    diff_high: float | None


def _check_comparable(a: Run, b: Run) -> None:
    bad = [
        f"{k}: {getattr(a.info, k)!r} vs {getattr(b.info, k)!r}"
        for k in HASH_KEYS
        if getattr(a.info, k) != getattr(b.info, k)
    ]
    if bad:
        raise RunError(
            f"cannot compare {a.dir} and {b.dir}: they were run on different episodes or assets ("
            + "; ".join(bad) + "). Success rates are comparable only on the same suite, variant catalog and asset "
            "pack; re-run one policy with the other's suite and asset pack."
        )  # fmt: skip


def compare_rows(run_a: Path | str, run_b: Path | str) -> tuple[Run, Run, list[CompareRow], list[list[str]]]:
    """Per-variant rows of A vs B and per-axis rows (A score, B score, mean paired A − B with MOVER CI)."""
    a, b = load_run(run_a), load_run(run_b)
    _check_comparable(a, b)
    ia = {(r["variant"], r["seed"], r["episode"]): bool(r["success"]) for r in a.records}
    ib = {(r["variant"], r["seed"], r["episode"]): bool(r["success"]) for r in b.records}
    sa, sb = a.summary(), b.summary()
    names = list(dict.fromkeys([v.variant for v in sa.variants] + [v.variant for v in sb.variants]))
    rows: list[CompareRow] = []
    for name in names:
        va = next((v for v in sa.variants if v.variant == name), None)
        vb = next((v for v in sb.variants if v.variant == name), None)
        keys = sorted(k for k in ia if k[0] == name and k in ib)
        pd = paired_difference([ia[k] for k in keys], [ib[k] for k in keys]) if keys else None
        rows.append(CompareRow(
            name, (va or vb).axis,
            va.n if va else 0, va.rate if va else math.nan, (va.ci_low, va.ci_high) if va else (0.0, 1.0),
            vb.n if vb else 0, vb.rate if vb else math.nan, (vb.ci_low, vb.ci_high) if vb else (0.0, 1.0),
            len(keys), pd.diff if pd else None, pd.low if pd else None, pd.high if pd else None,
        ))  # fmt: skip
    axis_rows = []
    for ax in [x for x in AXES if any(r.axis == x for r in rows)]:
        ra = _axis_score(sa, ax)
        rb = _axis_score(sb, ax)
        diffs = [(r.diff, r.diff_low, r.diff_high) for r in rows if r.axis == ax and r.diff is not None]
        d = mover_mean(diffs) if diffs else None
        axis_rows.append([ax, "—" if ra is None else f"{_pct(ra.score)} {_ci(ra.ci_low, ra.ci_high)}",
                          "—" if rb is None else f"{_pct(rb.score)} {_ci(rb.ci_low, rb.ci_high)}",
                          "—" if d is None else f"{_pct(d[0], True)} {_ci(max(-1, d[1]), min(1, d[2]))}"])  # fmt: skip
    return a, b, rows, axis_rows


def _axis_score(s: Summary, axis: str) -> AxisStats | None:
    return next((x for x in s.axes if x.axis == axis), None)


def compare(run_a: Path | str, run_b: Path | str) -> str:
    """Markdown: two policies side by side per variant and per axis, with paired A − B differences.

    Raises:
        RunError: the runs differ in suite, catalog or asset-pack hash (their numbers are not comparable), or a
            run directory is unreadable.
    """
    a, b, rows, axis_rows = compare_rows(run_a, run_b)
    body = []
    for r in rows:
        cell_a = "—" if r.n_a == 0 else f"{_pct(r.rate_a)} {_ci(*r.ci_a)} (n={r.n_a})"
        cell_b = "—" if r.n_b == 0 else f"{_pct(r.rate_b)} {_ci(*r.ci_b)} (n={r.n_b})"
        d = "—" if r.diff is None else f"{_pct(r.diff, True)} {_ci(r.diff_low, r.diff_high)}"
        body.append([r.variant, r.axis, cell_a, cell_b, str(r.pairs), d])
    out = [
        f"A = {md_code(a.policy)} ({md(a.dir)}), B = {md_code(b.policy)} ({md(b.dir)}); suite "
        f"{md_code(a.info.suite)}, asset pack {md(a.info.asset_pack_hash)}",
        "",
        md_table(
            [
                "variant",
                "axis",
                "A success % [95 % CI]",
                "B success % [95 % CI]",
                "pairs",
                "A − B (pp) [95 % Newcombe CI]",
            ],
            body,
        ),  # fmt: skip
        "",
        md_table(["axis", "A score %", "B score %", "mean paired A − B (pp) [MOVER CI]"], axis_rows),
    ]
    unmatched = [r.variant for r in rows if r.pairs < max(r.n_a, r.n_b)]
    if unmatched:
        out += ["", f"Note: some episodes have no counterpart in the other run ({md(', '.join(unmatched))}); the paired "
                    f"difference uses matched (variant, seed, episode) episodes only."]  # fmt: skip
    from vla_gen_bench.eval.audit import contradiction_warning

    # same actions, other outcomes
    if warning := contradiction_warning(a.records, b.records, a.info.to_dict(), b.info.to_dict()):
        out += ["", *map(md, warning)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- CLI (wired as `vgb report`, `vgb compare`)
@dataclass(frozen=True)
class Report:
    """Rebuild episodes.csv, summary.csv, axes.csv, plots, report.md and report.html of a run directory."""

    run_dir: tyro.conf.Positional[Path]
    """Directory written by 'vgb evaluate' (holds run.json and episodes.jsonl)."""
    out: Path | None = None
    """Write the report files here instead of into the run folder (for a read-only run)."""


@dataclass(frozen=True)
class Compare:
    """Two policies side by side per variant, with paired differences on matched episodes."""

    run_a: tyro.conf.Positional[Path]
    run_b: tyro.conf.Positional[Path]
    out: Path | None = None
    """Also write the markdown table here."""


def _unwritable(e: OSError, fallback: Path, hint: str) -> str:
    return f"cannot write {e.filename or fallback}: {e.strerror or e}; {hint}"


def report_command(cfg: Report) -> int:
    """``vgb report``: holds the run's lock while it reads the run and writes (a shared one with ``--out``)."""
    from rich.console import Console

    from vla_gen_bench.eval.lock import RunLockedError, run_lock

    console = Console(stderr=True, soft_wrap=True)  # one message, one line
    elsewhere = cfg.out if cfg.out is not None and cfg.out.resolve() != cfg.run_dir.resolve() else None
    out = elsewhere or cfg.run_dir
    if elsewhere is None:
        hint = (f"is the run folder read-only? Copy it (cp -r {cfg.run_dir} <copy>) and report the copy, or write "
                f"the report elsewhere: vgb report {cfg.run_dir} --out <dir>")  # fmt: skip
    else:
        hint = "choose a writable --out folder"
    try:
        if not cfg.run_dir.is_dir():
            raise RunError(f"{cfg.run_dir}: no such folder; give a run directory written by 'vgb evaluate'")
        with contextlib.ExitStack() as stack:
            if elsewhere is not None:
                elsewhere.mkdir(parents=True, exist_ok=True)
                stack.enter_context(run_lock(cfg.run_dir, "vgb report (reading)", shared=True))
            stack.enter_context(run_lock(out, "vgb report"))
            try:
                run = load_run(cfg.run_dir)
            except OSError as e:
                raise RunError(f"cannot read {e.filename or cfg.run_dir}: {e.strerror or e}") from None
            s = run.summary()
            written = write_run_outputs(run, s, elsewhere)
    except RunError as e:
        console.print(printable(e), style="red", markup=False)
        return 1
    except RunLockedError as e:
        console.print(f"refused: {printable(e)}", style="red", markup=False)
        return 2
    except OSError as e:
        console.print(printable(_unwritable(e, out, hint)), style="red", markup=False)
        return 1
    for w in run.warnings + s.warnings:
        console.print(f"warning: {printable(w)}", style="yellow", markup=False)
    for p in written.values():
        console.print(f"wrote {printable(p)}", markup=False)
    return 0


def compare_command(cfg: Compare) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    try:
        table = compare(cfg.run_a, cfg.run_b)
    except RunError as e:
        console.print(printable(e), style="red", markup=False)
        return 1
    print(table)
    if cfg.out is not None:
        try:
            cfg.out.parent.mkdir(parents=True, exist_ok=True)
            cfg.out.write_text(table)
        except OSError as e:
            console.print(_unwritable(e, cfg.out, "choose a writable --out path (the table is printed above)"),
                          style="red", markup=False)  # fmt: skip
            return 1
        console.print(f"wrote {cfg.out}", markup=False)
    return 0
