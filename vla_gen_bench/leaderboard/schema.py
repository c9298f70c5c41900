"""The leaderboard's columns: one definition from which the validator, the CSV writer and ``schema.json`` follow.

A row is one (policy, variant) result. ``source`` says where it came from: ``run`` rows are derived by
``vgb leaderboard add`` from a run directory's ``episodes.jsonl`` and carry the run's hashes; ``reported`` rows
are numbers published elsewhere (the RL4VLA paper), on other assets, and are never ranked with runs.

In the CSV every cell is text and an empty cell means "no value". :func:`json_schema` describes one row after
parsing (empty -> null, integers and numbers typed), which is what ``leaderboard/schema.json`` holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

SCHEMA_VERSION = 1
SOURCES = ("run", "reported")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
"""Hashes written by ``vgb evaluate``: policy_id, suite_hash, catalog_hash, asset_pack_hash (sha256, 16 hex)."""
LABEL = re.compile(r"^[a-z][a-z0-9._-]*$")
"""What a ``reported`` row puts in place of a hash (e.g. ``rl4vla-paper``): it names the source's own set-up."""
VERSION = re.compile(r"^\d+(\.\d+)*([.+-]?[0-9A-Za-z.+-]*)?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

RATE_TOL = 1e-6
"""|rate - successes/n| allowed on run rows: the CSV keeps 6 decimals."""
REPORTED_RATE_TOL = 0.0005 + 1e-9
"""On reported rows: the source printed percentages with one decimal (e.g. 78.1 for 150/192 = 78.125 %)."""
DECIMALS = 6

Kind = Literal["text", "int", "float", "hash", "date", "enum", "version"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    run: bool
    """Required (non-empty) on run rows."""
    reported: bool
    """Required (non-empty) on reported rows."""
    minimum: float | None = None
    maximum: float | None = None
    derived: bool = False
    """Computed from the run directory (re-derived and compared by the submissions check)."""


# fmt: off
COLUMNS: tuple[Column, ...] = (
    Column("policy", "text", "display name of the policy (unique within a suite/asset group)", True, True),
    Column("policy_hash", "hash", "run.json policy_id: hash of the --policy string and the adapter's metadata "
           "(e.g. the checkpoint's weight hash); empty on reported rows", True, False, derived=True),
    Column("source", "enum", "'run' (derived from a run directory by 'vgb leaderboard add') or 'reported' "
           "(published elsewhere; not produced by this package)", True, True, derived=True),
    Column("suite", "text", "suite name the run used ('vgb list'), or the source's name for reported rows",
           True, True, derived=True),
    Column("suite_hash", "hash", "hash of the suite's variant definitions and episode manifests; a label such "
           "as 'rl4vla-paper' on reported rows", True, True, derived=True),
    Column("catalog_hash", "hash", "hash of the whole variant catalog at run time; empty on reported rows",
           True, False, derived=True),
    Column("asset_pack_hash", "hash", "hash of the asset pack (every asset's sha256); a label such as "
           "'rl4vla-assets' on reported rows", True, True, derived=True),
    Column("vgb_version", "version", "vla-gen-bench version that ran the episodes; empty on reported rows",
           True, False, derived=True),
    Column("variant", "text", "variant name from the catalog ('vgb list')", True, True, derived=True),
    Column("axis", "enum", "the variant's axis in the catalog", True, True, derived=True),
    Column("split", "enum", "the variant's split in the catalog", True, True, derived=True),
    Column("n", "int", "episodes (distinct (seed, episode) pairs)", True, False, minimum=1, derived=True),
    Column("successes", "int", "episodes that succeeded at the final step", True, False, minimum=0, derived=True),
    Column("rate", "float", "successes / n (reported rows: the published rate)", True, True, 0.0, 1.0,
           derived=True),
    Column("ci_low", "float", "Wilson 95 % interval of successes / n, lower end", True, False, 0.0, 1.0,
           derived=True),
    Column("ci_high", "float", "Wilson 95 % interval of successes / n, upper end", True, False, 0.0, 1.0,
           derived=True),
    Column("paired_n", "int", "episodes paired with the control arm (same seed and episode); empty for the "
           "control itself or when the run has no control episodes", False, False, minimum=1, derived=True),
    Column("paired_drop", "float", "control rate - variant rate on the paired episodes (positive = worse than "
           "control); = -diff_vs_control of the run's summary.csv (variant - control)", False, False, -1.0, 1.0,
           derived=True),
    Column("paired_drop_low", "float", "Newcombe 95 % interval of paired_drop, lower end (= -diff_high of "
           "summary.csv)", False, False, -1.0, 1.0, derived=True),
    Column("paired_drop_high", "float", "Newcombe 95 % interval of paired_drop, upper end (= -diff_low of "
           "summary.csv)", False, False, -1.0, 1.0, derived=True),
    Column("date", "date", "run rows: the run's creation date (UTC, run.json 'created'); reported rows: the date "
           "the numbers were transcribed", True, True, derived=True),
    Column("submitter", "text", "who added the row (GitHub handle or name)", True, True),
    Column("notes", "text", "free text: checkpoint, training recipe, caveats", False, False),
)
# fmt: on
NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
"""The columns every leaderboard CSV has (its header)."""
FAMILY = Column("family", "enum", "the variant's task family (vla_gen_bench.families); empty = put_on, the only "
                "family before families existed (the paper's reported rows)", False, False, derived=True)  # fmt: skip
OPTIONAL: tuple[Column, ...] = (FAMILY,)
"""Columns a CSV may leave out of its header (every row then has them empty): written once a row needs one."""
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS + OPTIONAL}
KEY = ("policy", "suite_hash", "asset_pack_hash", "variant")
"""At most one row per key; a second run of the same policy needs another name or --replace."""
RUN_KEY = ("policy_hash", "suite_hash", "asset_pack_hash", "variant")
"""Run rows: the same run (policy hash) may not appear twice under different names either."""
PAIRED = ("paired_n", "paired_drop", "paired_drop_low", "paired_drop_high")
FLOATS = tuple(c.name for c in COLUMNS if c.kind == "float")
TEXT = tuple(c.name for c in COLUMNS if c.kind == "text")
"""Free-text columns: written CSV-safe (a formula prefix gets a leading ``'``); the validator refuses one without."""


def enum_values(name: str) -> tuple[str, ...]:
    """Allowed values of an enum column (axes and splits come from the variant catalog)."""
    if name == "source":
        return SOURCES
    if name == "axis":
        from vla_gen_bench.variants import AXES

        return tuple(AXES)
    if name == "split":
        from vla_gen_bench.variants.catalog import Split

        return get_args(Split)
    if name == "family":
        from vla_gen_bench.families import FAMILIES

        return tuple(FAMILIES)
    raise KeyError(name)


def fmt_float(x: float) -> str:
    """How the CSV writes numbers: 6 decimals, no negative zero."""
    s = f"{x:.{DECIMALS}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def parse_cells(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the typed object :func:`json_schema` describes: empty -> None, int and float columns parsed.

    Raises:
        ValueError: a numeric cell that does not parse (the validator reports these with line numbers instead).
    """
    out: dict[str, Any] = {}
    for k, v in row.items():
        c = BY_NAME.get(k)
        v = v.strip()
        if v == "":
            out[k] = None
        elif c is not None and c.kind == "int":
            out[k] = int(v)
        elif c is not None and c.kind == "float":
            out[k] = float(v)
        else:
            out[k] = v
    return out


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one parsed row: what ``leaderboard/schema.json`` holds."""
    props: dict[str, Any] = {}
    for c in COLUMNS + OPTIONAL:
        if c.kind == "int":
            p: dict[str, Any] = {"type": ["integer", "null"]}
        elif c.kind == "float":
            p = {"type": ["number", "null"]}
        else:
            p = {"type": ["string", "null"]}
        if c.minimum is not None:
            p["minimum"] = c.minimum
        if c.maximum is not None:
            p["maximum"] = c.maximum
        if c.kind == "enum":
            p["enum"] = [*enum_values(c.name), None]
        elif c.kind == "date":
            p["pattern"] = DATE.pattern
        elif c.kind == "version":
            p["pattern"] = VERSION.pattern
        p["description"] = c.description
        props[c.name] = p

    def not_null(names):
        return {n: {"type": props[n]["type"][0]} for n in names}

    run_required = [c.name for c in COLUMNS if c.run]
    reported_required = [c.name for c in COLUMNS if c.reported]
    hashes = [c.name for c in COLUMNS if c.kind == "hash"]
    label = {"type": "string", "pattern": LABEL.pattern, "not": {"pattern": HEX16.pattern}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/vla-gen-bench/vla-gen-bench/leaderboard/schema.json",
        "title": "vla-gen-bench leaderboard row",
        "description": (
            "One row of leaderboard/leaderboard.csv after parsing (an empty cell is null, n/successes/paired_n are "
            "integers, rates are numbers). Checks beyond this schema (rate = successes/n, Wilson CI recomputed, "
            "unique keys, variants from the catalog, run rows re-derived from leaderboard/submissions/) are done by "
            "'vgb leaderboard validate'. Generated from vla_gen_bench/leaderboard/schema.py."
        ),
        "x-schema-version": SCHEMA_VERSION,
        "x-key": list(KEY),
        "type": "object",
        "properties": props,
        "required": list(NAMES),
        "additionalProperties": False,
        "allOf": [
            {
                "if": {"properties": {"source": {"const": "run"}}},
                "then": {"properties": {**not_null(run_required),
                                        **{h: {"type": "string", "pattern": HEX16.pattern} for h in hashes}}},
            },
            {
                "if": {"properties": {"source": {"const": "reported"}}},
                "then": {
                    "properties": {
                        **not_null(reported_required),
                        **{h: {"anyOf": [label] + ([] if BY_NAME[h].reported else [{"type": "null"}])} for h in hashes},
                        **{p: {"type": "null"} for p in PAIRED},
                    }
                },
            },
        ],
    }  # fmt: skip
