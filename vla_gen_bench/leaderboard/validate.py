"""``vgb leaderboard validate``: every problem of a leaderboard CSV, one line-numbered message each.

Checks, per row: the columns of :mod:`.schema` (types, ranges, required cells per source), hash and date formats,
no control characters in any cell and no text cell starting like a spreadsheet formula (``= + - @``),
rate = successes / n, the Wilson interval recomputed, the paired drop's interval ordered and within range, the
variant known to the catalog with its axis and split; across rows: no duplicate (policy, suite_hash,
asset_pack_hash, variant) (nor, for runs, the same policy hash twice), one policy hash per policy name in a
suite/asset group, one catalog hash and version per submitted run. ``reported`` rows (published elsewhere) may leave
n, successes and the CI empty, carry rates rounded as published, and use labels instead of hashes; they may not
use a run's hash format (so they are never ranked with runs) nor carry paired numbers.

:func:`check_submissions` re-derives every ``run`` row from ``leaderboard/submissions/<name>/`` and compares.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from vla_gen_bench.eval.escape import FORMULA_PREFIXES, control_chars
from vla_gen_bench.leaderboard.schema import (
    BY_NAME,
    COLUMNS,
    DATE,
    FLOATS,
    HEX16,
    KEY,
    LABEL,
    NAMES,
    OPTIONAL,
    PAIRED,
    RATE_TOL,
    REPORTED_RATE_TOL,
    RUN_KEY,
    SOURCES,
    VERSION,
    enum_values,
)

Row = dict[str, str]


def read_rows(path: Path | str) -> tuple[list[str], list[tuple[int, Row]], list[str]]:
    """Header, (line number, row) pairs and structural problems of a CSV (line numbers count the header as 1)."""
    p = Path(path)
    if not p.is_file():
        return [], [], [f"{p}: not found"]
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return [], [], [f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); save the CSV as UTF-8 (in a spreadsheet: "
                        f"'CSV UTF-8')"]  # fmt: skip
    return parse_text(text, str(p))


def parse_text(text: str, where: str) -> tuple[list[str], list[tuple[int, Row]], list[str]]:
    problems: list[str] = []
    text = text.removeprefix(
        "\ufeff"
    )  # a byte-order mark (spreadsheets' 'CSV UTF-8') is not part of the header
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [], [f"{where}:1: empty file; the first line must be the header: {','.join(NAMES)}"]
    except csv.Error as e:
        return [], [], [f"{where}:1: unreadable header ({e})"]
    header = [h.strip() for h in header]
    for name in NAMES:
        if name not in header:
            problems.append(f"{where}:1: missing column {name!r} (the header needs: {', '.join(NAMES)})")
    for name in header:
        if name not in BY_NAME:
            problems.append(f"{where}:1: unknown column {name!r} (allowed: {', '.join(BY_NAME)})")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(f"{where}:1: column {name!r} appears twice in the header")
        seen.add(name)
    rows: list[tuple[int, Row]] = []
    start = 2
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(f"{where}:{start}: unreadable CSV ({e})")
            break
        line = start
        start = reader.line_num + 1
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.append(f"{where}:{line}: {len(fields)} fields, the header has {len(header)}")
            continue
        rows.append((line, dict(zip(header, fields, strict=True))))
    return header, rows, problems


def _num(s: str) -> float | None:
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _int(s: str) -> int | None:
    s = s.strip()
    return int(s) if re.fullmatch(r"-?[0-9]+", s) else None


def check_row(row: Row, line: int, where: str) -> list[str]:
    """Problems of one row on its own (the catalog is consulted for variant, axis and split)."""
    from vla_gen_bench.eval.stats import wilson_interval
    from vla_gen_bench.variants import VariantError, get_variant

    at = f"{where}:{line}:"
    out: list[str] = []
    source = row.get("source", "").strip()
    if source not in SOURCES:
        out.append(f"{at} source must be one of {', '.join(SOURCES)}, got {source!r}")
        return out
    is_run = source == "run"
    ints: dict[str, int] = {}
    floats: dict[str, float] = {}
    for c in COLUMNS + OPTIONAL:
        if c.name not in row:
            continue  # reported once, on the header (an optional column may be absent)
        v = row[c.name]
        bad = control_chars(v)
        if bad:
            out.append(f"{at} column {c.name!r} holds control character(s) {', '.join(bad)}: {v!r}; a cell is one "
                       f"line of printable text (no NUL, tab or newline)")  # fmt: skip
            continue
        if c.kind == "text" and v.startswith(FORMULA_PREFIXES):
            out.append(f"{at} column {c.name!r} starts with {v[0]!r}, which a spreadsheet runs as a formula: "
                       f"{v!r}; start it with another character (or with ', as 'vgb leaderboard add' writes it)")  # fmt: skip
            continue
        if v != v.strip():
            out.append(f"{at} column {c.name!r} has leading or trailing spaces: {v!r}")
            v = v.strip()
        required = c.run if is_run else c.reported
        if v == "":
            if required:
                out.append(f"{at} column {c.name!r} is empty (required for source={source})")
            continue
        if c.kind == "int":
            x = _int(v)
            if x is None:
                out.append(f"{at} column {c.name!r} must be an integer, got {v!r}")
            elif c.minimum is not None and x < c.minimum:
                out.append(f"{at} column {c.name!r} must be >= {c.minimum:g}, got {x}")
            else:
                ints[c.name] = x
        elif c.kind == "float":
            f = _num(v)
            if f is None:
                out.append(f"{at} column {c.name!r} must be a number, got {v!r}")
            elif (c.minimum is not None and f < c.minimum) or (c.maximum is not None and f > c.maximum):
                out.append(f"{at} column {c.name!r} must be in [{c.minimum:g}, {c.maximum:g}], got {v}")
            else:
                floats[c.name] = f
        elif c.kind == "enum":
            allowed = enum_values(c.name)
            if v not in allowed:
                out.append(f"{at} column {c.name!r} must be one of {', '.join(allowed)}, got {v!r}")
        elif c.kind == "hash":
            if is_run and not HEX16.match(v):
                out.append(
                    f"{at} {c.name} {v!r} is not a 16-digit lowercase hex hash (as written by 'vgb evaluate')"
                )
            elif not is_run and (HEX16.match(v) or not LABEL.match(v)):
                out.append(f"{at} {c.name} {v!r} of a reported row must be a label such as 'rl4vla-paper' "
                           f"(lowercase letters, digits, '.', '_', '-'), not a run's hex hash: reported numbers "
                           f"are never ranked with runs")  # fmt: skip
        elif c.kind == "date":
            ok = bool(DATE.match(v))
            if ok:
                try:
                    date.fromisoformat(v)
                except ValueError:
                    ok = False
            if not ok:
                out.append(f"{at} column 'date' must be a date YYYY-MM-DD, got {v!r}")
        elif c.kind == "version" and not VERSION.match(v):
            out.append(f"{at} column {c.name!r} must be a version such as 0.1.0, got {v!r}")

    variant = row.get("variant", "").strip()
    if variant:
        try:
            spec = get_variant(variant)
        except VariantError as e:
            out.append(f"{at} {e}")
        else:
            for col in ("axis", "split"):
                got = row.get(col, "").strip()
                if got and got != getattr(spec, col):
                    out.append(f"{at} variant {variant!r} has {col} {getattr(spec, col)!r} in the catalog, "
                               f"not {got!r}")  # fmt: skip
            family = row.get("family", "").strip() or "put_on"  # empty (or no column): put_on
            if family != spec.family:
                out.append(f"{at} variant {variant!r} is of the {spec.family} family in the catalog, not {family!r} "
                           f"(the family column must say {spec.family!r}{' or be empty' if spec.family == 'put_on' else ''})")  # fmt: skip

    n, k = ints.get("n"), ints.get("successes")
    has_n, has_k = row.get("n", "").strip() != "", row.get("successes", "").strip() != ""
    if has_n != has_k:
        out.append(f"{at} n and successes must both be given or both be empty")
    if n is not None and k is not None:
        if k > n:
            out.append(f"{at} successes {k} > n {n}")
        else:
            rate = floats.get("rate")
            tol = RATE_TOL if is_run else REPORTED_RATE_TOL
            if rate is not None and abs(rate - k / n) > tol:
                out.append(
                    f"{at} rate {row['rate'].strip()} does not equal successes/n = {k}/{n} = {k / n:.6f}"
                )
            lo, hi = wilson_interval(k, n)
            given = (floats.get("ci_low"), floats.get("ci_high"))
            if None not in given and (abs(given[0] - lo) > RATE_TOL or abs(given[1] - hi) > RATE_TOL):
                out.append(f"{at} ci_low/ci_high {row['ci_low'].strip()}/{row['ci_high'].strip()} are not the "
                           f"Wilson 95 % interval of {k}/{n} = {lo:.6f}/{hi:.6f}")  # fmt: skip
    has_ci = [row.get(c, "").strip() != "" for c in ("ci_low", "ci_high")]
    if any(has_ci) and not (all(has_ci) and has_n):
        out.append(
            f"{at} ci_low and ci_high need each other and n/successes (the interval is recomputed from them)"
        )

    given = [row.get(c, "").strip() != "" for c in PAIRED]
    if not is_run and any(given):
        out.append(
            f"{at} a reported row cannot carry paired_* columns (they need the run's matched episodes)"
        )
    elif any(given) and not all(given):
        out.append(
            f"{at} paired_n, paired_drop, paired_drop_low and paired_drop_high go together (all or none)"
        )
    elif all(given):
        from vla_gen_bench.variants import VariantError, get_variant

        try:
            control = get_variant(variant).control
        except VariantError:
            control = None  # reported above
        if variant == control:
            out.append(
                f"{at} the control variant {control!r} has no paired drop against itself; leave paired_* empty"
            )
        pn = ints.get("paired_n")
        if pn is not None and n is not None and pn > n:
            out.append(f"{at} paired_n {pn} > n {n}")
        d, dl, dh = (floats.get(c) for c in ("paired_drop", "paired_drop_low", "paired_drop_high"))
        if None not in (d, dl, dh) and not (dl - RATE_TOL <= d <= dh + RATE_TOL):
            out.append(f"{at} paired_drop {d:g} is not inside its interval [{dl:g}, {dh:g}]")
    return out


def check_rows(rows: Sequence[tuple[int, Row]], where: str) -> list[str]:
    """Per-row problems plus those across rows (duplicates, hash consistency)."""
    out: list[str] = []
    for line, row in rows:
        out += check_row(row, line, where)
    first: dict[tuple, int] = {}
    first_run: dict[tuple, int] = {}
    name_hash: dict[tuple, tuple[str, int]] = {}
    per_run: dict[tuple, tuple[str, str, int]] = {}
    for line, row in rows:
        r = {k: v.strip() for k, v in row.items()}
        key = tuple(r.get(k, "") for k in KEY)
        if key in first:
            out.append(f"{where}:{line}: duplicate of line {first[key]}: (policy, suite_hash, asset_pack_hash, "
                       f"variant) = ({', '.join(key)}) must be unique; use another policy name or "
                       f"'vgb leaderboard add --replace'")  # fmt: skip
        else:
            first[key] = line
        if r.get("source") != "run":
            continue
        rkey = tuple(r.get(k, "") for k in RUN_KEY)
        if rkey in first_run:
            out.append(f"{where}:{line}: the run with policy_hash {rkey[0]} already has variant {rkey[3]} on line "
                       f"{first_run[rkey]} (same suite and asset pack): one run is added once")  # fmt: skip
        else:
            first_run[rkey] = line
        group = (r.get("policy", ""), r.get("suite_hash", ""), r.get("asset_pack_hash", ""))
        if group in name_hash and name_hash[group][0] != r.get("policy_hash", ""):
            h, at = name_hash[group]
            out.append(f"{where}:{line}: policy {group[0]!r} has policy_hash {r.get('policy_hash')} here but {h} on "
                       f"line {at} in the same suite/asset group; two checkpoints need two names")  # fmt: skip
        else:
            name_hash.setdefault(group, (r.get("policy_hash", ""), line))
        sub = (r.get("policy_hash", ""), r.get("suite_hash", ""), r.get("asset_pack_hash", ""))
        info = (r.get("catalog_hash", ""), r.get("vgb_version", ""))
        if sub in per_run and per_run[sub][:2] != info:
            c, ver, at = per_run[sub]
            out.append(f"{where}:{line}: catalog_hash/vgb_version {info[0]}/{info[1]} differ from line {at} "
                       f"({c}/{ver}) of the same run (policy_hash {sub[0]}): rows of one run come from one "
                       f"'vgb leaderboard add'")  # fmt: skip
        else:
            per_run.setdefault(sub, (*info, line))
    return out


def validate(csv_path: Path | str, submissions: Path | str | None = None) -> list[str]:
    """All problems of a leaderboard CSV (empty list = valid), each as ``path:line: message``.

    Args:
        csv_path: the leaderboard CSV.
        submissions: also re-derive every run row from this folder of submissions (``leaderboard/submissions``).
    """
    header, rows, problems = read_rows(csv_path)
    if not header or any(n not in header for n in NAMES):
        return problems  # rows cannot be read reliably without every column
    problems += check_rows(rows, str(csv_path))
    if submissions is not None:
        problems += check_submissions(rows, str(csv_path), Path(submissions))
    return problems


def validate_text(text: str, where: str = "leaderboard.csv") -> list[str]:
    """:func:`validate` of CSV text held in memory (``where`` names it in the messages)."""
    header, rows, problems = parse_text(text, where)
    if not header or any(n not in header for n in NAMES):
        return problems
    return problems + check_rows(rows, where)


def check_submissions(rows: Sequence[tuple[int, Row]], where: str, root: Path) -> list[str]:
    """Re-derive every submission folder's rows and compare them with the CSV's ``run`` rows.

    Every derived row must be in the CSV with the same derived columns, and every run row of the CSV must come from
    a submission folder: a number without its episodes is not accepted.
    """
    from vla_gen_bench.leaderboard.derive import EPISODES, RUN_JSON, LeaderboardError, run_rows

    out: list[str] = []
    if not root.is_dir():
        return [f"{root}: submissions folder not found"]
    csv_rows: dict[tuple, tuple[int, Row]] = {}
    for line, row in rows:
        if row.get("source", "").strip() == "run":
            csv_rows.setdefault(tuple(row.get(k, "").strip() for k in RUN_KEY), (line, row))
    derived_from: dict[tuple, str] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.is_symlink():
            out.append(f"{folder}: a symlink (to {folder.resolve()}); a submission folder holds its own {RUN_JSON} "
                       f"and {EPISODES}: replace the link with a copy")  # fmt: skip
            continue
        missing = [f for f in (RUN_JSON, EPISODES) if not (folder / f).is_file()]
        if missing:
            out.append(
                f"{folder}: a submission folder needs {RUN_JSON} and {EPISODES} (missing {', '.join(missing)})"
            )
            continue
        try:
            derived = run_rows(folder)
        except LeaderboardError as e:
            out.append(f"{folder}: {e}")
            continue
        for d in derived:
            key = tuple(d[k] for k in RUN_KEY)
            if key in derived_from:
                out.append(f"{folder}: variant {d['variant']} of policy_hash {d['policy_hash']} is also submitted "
                           f"in {derived_from[key]}")  # fmt: skip
                continue
            derived_from[key] = folder.name
            if key not in csv_rows:
                out.append(f"{folder}: variant {d['variant']} has no run row in {where}; add it with "
                           f"'vgb leaderboard add {folder} --submitter <you>'")  # fmt: skip
                continue
            line, row = csv_rows[key]
            for c in COLUMNS + OPTIONAL:
                if not c.derived:
                    continue
                got, want = row.get(c.name, "").strip(), d.get(c.name, "")
                same = got == want
                if not same and c.name in FLOATS and got and want:
                    a, b = _num(got), _num(want)
                    same = a is not None and b is not None and abs(a - b) <= RATE_TOL
                if not same:
                    out.append(
                        f"{where}:{line}: {c.name} is {got!r} but {folder.name}/{EPISODES} gives {want!r}"
                    )
    for key, (line, row) in csv_rows.items():
        if key not in derived_from:
            out.append(f"{where}:{line}: run row ({row.get('policy')}, {row.get('variant')}, policy_hash "
                       f"{key[0]}) has no submission folder in {root} that re-derives it; submit the run's "
                       f"{RUN_JSON} and {EPISODES} (see leaderboard/README.md)")  # fmt: skip
    return out
