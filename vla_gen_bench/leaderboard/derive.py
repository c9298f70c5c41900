"""Leaderboard rows from a run directory: every number is recomputed from ``episodes.jsonl``.

Nothing typed by a person enters a ``run`` row except the display name, the submitter and the notes. The run must be
complete (every planned (variant, seed, episode) present), its episodes must agree with ``run.json`` and with the
variant catalog, and an episode recorded twice must have the same outcome both times (it then counts once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vla_gen_bench.leaderboard.schema import DATE, HEX16, NAMES, fmt_float

RUN_JSON = "run.json"
EPISODES = "episodes.jsonl"
RUN_FIELDS = ("policy", "policy_id", "suite", "suite_hash", "catalog_hash", "asset_pack_hash", "control",
              "variants", "seeds", "episodes_per_seed", "versions", "created")  # fmt: skip
EPISODE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "variant": str,
    "seed": int,
    "episode": int,
    "success": bool,
    "policy": str,
}


class LeaderboardError(ValueError):
    """A run directory or leaderboard CSV that cannot be used; the message says where and what to do."""


def _is(v: Any, t) -> bool:
    return isinstance(v, t) and not (isinstance(v, bool) and t is int)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_JSON
    if not path.is_file():
        raise LeaderboardError(f"{path} not found; is {run_dir} a run directory written by 'vgb evaluate'?")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LeaderboardError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise LeaderboardError(f"{path}: expected a JSON object")
    missing = [k for k in RUN_FIELDS if k not in cfg]
    if missing:
        raise LeaderboardError(f"{path} lacks {', '.join(map(repr, missing))}; re-run 'vgb evaluate' with this "
                               f"version to write a complete run.json")  # fmt: skip
    for k in ("policy_id", "suite_hash", "catalog_hash", "asset_pack_hash"):
        if not isinstance(cfg[k], str) or not HEX16.match(cfg[k]):
            raise LeaderboardError(f"{path}: {k} {cfg[k]!r} is not a 16-digit lowercase hex hash")
    version = cfg["versions"].get("vla-gen-bench") if isinstance(cfg["versions"], dict) else None
    if not isinstance(version, str) or not version:
        raise LeaderboardError(f"{path}: versions['vla-gen-bench'] is missing: the run was not made by an "
                               f"installed vla-gen-bench")  # fmt: skip
    if not isinstance(cfg["variants"], dict) or not cfg["variants"]:
        raise LeaderboardError(
            f"{path}: 'variants' must map the suite's variant names to their axis and split"
        )
    if not isinstance(cfg["seeds"], list) or not all(_is(s, int) for s in cfg["seeds"]):
        raise LeaderboardError(f"{path}: 'seeds' must be a list of integers, got {cfg['seeds']!r}")
    if not _is(cfg["episodes_per_seed"], int) or cfg["episodes_per_seed"] < 1:
        raise LeaderboardError(f"{path}: 'episodes_per_seed' must be a positive integer")
    if not isinstance(cfg["created"], str) or not DATE.match(cfg["created"][:10]):
        raise LeaderboardError(f"{path}: 'created' must be an ISO date-time, got {cfg['created']!r}")
    return cfg


def read_episodes(path: Path, policy: str) -> list[dict[str, Any]]:
    """Episode records, one per (variant, seed, episode); exact repeats are dropped, conflicting ones refused."""
    if not path.is_file():
        raise LeaderboardError(
            f"{path} not found; is {path.parent} a run directory written by 'vgb evaluate'?"
        )
    text = path.read_text()
    kept: dict[tuple[str, int, int], tuple[int, dict[str, Any]]] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            hint = (" (a torn last line: the run was killed mid-write; resume it with the same 'vgb evaluate' command)"
                    if not text.endswith("\n") and no == len(text.splitlines()) else "")  # fmt: skip
            raise LeaderboardError(f"{where}: not valid JSON ({e.msg}){hint}") from None
        if not isinstance(r, dict):
            raise LeaderboardError(f"{where}: expected a JSON object (one episode record)")
        for name, t in EPISODE_FIELDS.items():
            if name not in r:
                raise LeaderboardError(f"{where}: missing field {name!r}")
            if not _is(r[name], t):
                raise LeaderboardError(
                    f"{where}: field {name!r} must be {t.__name__}, got {json.dumps(r[name])}"
                )
        if r["seed"] < 0 or r["episode"] < 0:
            raise LeaderboardError(f"{where}: seed and episode must be >= 0")
        if r["policy"] != policy:
            raise LeaderboardError(f"{where}: episode run by policy {r['policy']!r} but run.json says {policy!r}; "
                                   f"one run directory holds one policy")  # fmt: skip
        key = (r["variant"], r["seed"], r["episode"])
        if key in kept:
            first, prev = kept[key]
            if prev["success"] != r["success"]:
                raise LeaderboardError(f"{where}: ({key[0]}, seed {key[1]}, episode {key[2]}) repeats line {first} "
                                       f"with a different outcome; a leaderboard run must be deterministic per "
                                       f"episode; re-run it")  # fmt: skip
            continue
        kept[key] = (no, r)
    return [r for _, r in kept.values()]


def run_rows(
    run_dir: Path | str, policy: str | None = None, submitter: str = "", notes: str = ""
) -> list[dict[str, str]]:
    """One leaderboard row per variant of a finished run, every number derived from its episodes.

    Args:
        run_dir: a directory written by ``vgb evaluate`` (run.json + episodes.jsonl).
        policy: display name on the leaderboard (default: run.json's ``policy`` string).
        submitter, notes: copied into the rows.

    Returns:
        Rows as ``{column: text}`` in catalog order (control first), ready for the CSV.

    Raises:
        LeaderboardError: missing or malformed files, an incomplete run, episodes that disagree with run.json or
            with the variant catalog, or conflicting repeats of an episode.
    """
    from vla_gen_bench.eval.stats import paired_difference, wilson_interval
    from vla_gen_bench.variants import CATALOG, VariantError, get_variant

    d = Path(run_dir)
    cfg = read_run_json(d)
    records = read_episodes(d / EPISODES, cfg["policy"])
    ej = d / EPISODES
    if not records:
        raise LeaderboardError(f"{ej} holds no episodes")
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], []).append(r)
    for name in list(cfg["variants"]) + list(by_variant):
        try:
            v = get_variant(name)
        except VariantError as e:
            raise LeaderboardError(f"{d}: {e}") from None
        meta = cfg["variants"].get(name)
        for field in ("axis", "split"):
            if isinstance(meta, dict) and meta.get(field, getattr(v, field)) != getattr(v, field):
                raise LeaderboardError(f"{d / RUN_JSON}: variant {name!r} has {field} {meta[field]!r}, the catalog "
                                       f"says {getattr(v, field)!r}")  # fmt: skip
        for r in by_variant.get(name, []):
            for field in ("axis", "split"):
                if field in r and r[field] != getattr(v, field):
                    raise LeaderboardError(f"{ej}: ({name}, seed {r['seed']}, episode {r['episode']}) has {field} "
                                           f"{r[field]!r}, the catalog says {getattr(v, field)!r}")  # fmt: skip
    extra = sorted(set(by_variant) - set(cfg["variants"]))
    if extra:
        raise LeaderboardError(f"{ej}: episodes of {', '.join(extra)}, which run.json's suite does not list")
    planned = [
        (v, s, k) for v in cfg["variants"] for s in cfg["seeds"] for k in range(cfg["episodes_per_seed"])
    ]
    have = {(r["variant"], r["seed"], r["episode"]) for r in records}
    missing = [p for p in planned if p not in have]
    if missing:
        eg = ", ".join(f"({v}, seed {s}, episode {k})" for v, s, k in missing[:3])
        raise LeaderboardError(f"{d}: the run is incomplete: {len(missing)} of {len(planned)} planned episodes "
                               f"missing (e.g. {eg}); finish it by re-running the same 'vgb evaluate' command")  # fmt: skip

    control = cfg["control"]
    ctrl = {(r["seed"], r["episode"]): r["success"] for r in by_variant.get(control, [])}
    order = [v.name for v in CATALOG if v.name in by_variant]
    version = cfg["versions"]["vla-gen-bench"]
    rows = []
    for name in order:
        v = get_variant(name)
        eps = sorted(by_variant[name], key=lambda r: (r["seed"], r["episode"]))
        n, k = len(eps), sum(r["success"] for r in eps)
        lo, hi = wilson_interval(k, n)
        row = {
            "policy": policy or cfg["policy"], "policy_hash": cfg["policy_id"], "source": "run",
            "suite": str(cfg["suite"]), "suite_hash": cfg["suite_hash"], "catalog_hash": cfg["catalog_hash"],
            "asset_pack_hash": cfg["asset_pack_hash"], "vgb_version": version, "variant": name, "axis": v.axis,
            "split": v.split, "n": str(n), "successes": str(k), "rate": fmt_float(k / n), "ci_low": fmt_float(lo),
            "ci_high": fmt_float(hi), "paired_n": "", "paired_drop": "", "paired_drop_low": "",
            "paired_drop_high": "", "date": cfg["created"][:10], "submitter": submitter, "notes": notes,
        }  # fmt: skip
        pairs = [
            (ctrl[(r["seed"], r["episode"])], r["success"]) for r in eps if (r["seed"], r["episode"]) in ctrl
        ]
        if name != control and pairs:
            # control - variant: a positive drop means the variant is harder than the control arm
            p = paired_difference([c for c, _ in pairs], [x for _, x in pairs])
            row.update(paired_n=str(p.n), paired_drop=fmt_float(p.diff), paired_drop_low=fmt_float(p.low),
                       paired_drop_high=fmt_float(p.high))  # fmt: skip
        assert tuple(row) == NAMES
        rows.append(row)
    return rows
