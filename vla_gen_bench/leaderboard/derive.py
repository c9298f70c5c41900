"""Leaderboard rows from a run directory: every number is recomputed from ``episodes.jsonl``.

Nothing typed by a person enters a ``run`` row except the display name, the submitter and the notes. The run must be
complete (every planned (variant, seed, episode) present), its episodes must agree with ``run.json`` and with the
variant catalog, each record must be internally consistent (its failure label agrees with its success, grasp flags
agree with the label), an episode recorded twice with different outcomes is refused, and the file must be the one
``vgb evaluate`` wrote: every line's link in the hash chain (:mod:`vla_gen_bench.eval.chain`) must match and the
last one must be the head ``run.json`` records. Runs written before vgb recorded chains cannot be verified and are
refused, except the ones pinned in :data:`VETTED_LEGACY` (the maintainers' own runs committed before chains).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vla_gen_bench.episode import FAILURE_LABELS  # noqa: F401 - put_on's labels, read from here too
from vla_gen_bench.eval import records
from vla_gen_bench.eval.escape import csv_text
from vla_gen_bench.eval.records import EPISODES, RUN_JSON, RunInfo
from vla_gen_bench.families import all_failure_labels
from vla_gen_bench.leaderboard.schema import DATE, HEX16, NAMES, TEXT, fmt_float

# sha256 of the episodes.jsonl of runs committed before vgb recorded hash chains, reviewed by the maintainers when
# they were committed (leaderboard/submissions/). Any other run without a chain is refused: re-run it.
VETTED_LEGACY = {
    "ec492c9aa99f6a3b7d08fb15e33ff678edd5f05724b058df813d3c5c31205c7a": "leaderboard/submissions/random-default",
    "5fcc06616543d8f23e357c6b5267bea17cc985e37f4381560d91c231fb94d461": "leaderboard/submissions/scripted-oracle-default",
}
GRASPED_LABELS = ("dropped", "misplaced", "timeout")  # labels the env gives only after a grasp
UNGRASPED_LABELS = ("never_grasped", "wrong_object")  # labels the env gives only without one


class LeaderboardError(ValueError):
    """A run directory or leaderboard CSV that cannot be used; the message says where and what to do."""


def read_run_json(run_dir: Path) -> RunInfo:
    """``run.json`` (:func:`vla_gen_bench.eval.records.read_run`) with what a leaderboard row also needs: 16-hex
    hashes, an installed vla-gen-bench version and an ISO creation date."""
    path = run_dir / RUN_JSON
    try:
        cfg = records.read_run(run_dir)
    except records.RecordError as e:
        raise LeaderboardError(str(e)) from None
    for k in ("policy_id", "suite_hash", "catalog_hash", "asset_pack_hash"):
        if not HEX16.match(getattr(cfg, k)):
            raise LeaderboardError(f"{path}: {k} {getattr(cfg, k)!r} is not a 16-digit lowercase hex hash")
    version = cfg.versions.get("vla-gen-bench")
    if not isinstance(version, str) or not version:
        raise LeaderboardError(f"{path}: versions['vla-gen-bench'] is missing: the run was not made by an "
                               f"installed vla-gen-bench")  # fmt: skip
    if not DATE.match(cfg.created[:10]):
        raise LeaderboardError(f"{path}: 'created' must be an ISO date-time, got {cfg.created!r}")
    return cfg


def check_record(r: dict[str, Any], where: str, once: bool = False) -> None:
    """A record's fields must agree with each other the way the env sets them (``once``: the run's profile scores
    success_once, so ``success`` need not match the final-step label)."""
    failure = r.get("failure")
    if failure is None:
        return
    labels = all_failure_labels()  # every task family's
    if failure not in labels:
        raise LeaderboardError(f"{where}: failure {failure!r} is not one of {', '.join(labels)}")
    at_end = failure == "success"  # the env labels the final step 'success' exactly when it succeeded then
    problem = None
    if not once and r["success"] != at_end:
        problem = f"success is {json.dumps(r['success'])} but the failure label is {failure!r}"
    elif r.get("success_once") is False and (r["success"] or at_end):
        problem = f"success_once is false but the episode succeeded (success {json.dumps(r['success'])})"
    elif r.get("grasped") is False and (failure in GRASPED_LABELS or r.get("consecutive_grasp") is True):
        problem = f"grasped is false but {'the failure label is ' + repr(failure) if failure in GRASPED_LABELS else 'consecutive_grasp is true'}"
    elif r.get("grasped") is True and failure in UNGRASPED_LABELS:
        problem = f"grasped is true but the failure label is {failure!r}"
    if problem:
        raise LeaderboardError(f"{where}: inconsistent record: {problem}; the env never writes this, so the line "
                               f"was edited. Restore the file 'vgb evaluate' wrote, or re-run the run")  # fmt: skip


def read_episodes(path: Path, policy: str, once: bool = False) -> list[dict[str, Any]]:
    """Episode records (:func:`vla_gen_bench.eval.records.read`: one per (variant, seed, episode), exact repeats
    dropped, conflicting ones refused) as dicts, each consistent and run by ``policy``; a torn last line is refused
    (the run was killed mid-write and is not finished)."""
    if not path.is_file():
        raise LeaderboardError(
            f"{path} not found; is {path.parent} a run directory written by 'vgb evaluate'?"
        )
    try:
        eps = records.read(path)
    except records.RecordError as e:
        raise LeaderboardError(str(e)) from None
    if eps.torn is not None:
        raise LeaderboardError(f"{path}:{eps.torn}: a torn last line (no newline: the run was killed mid-write); "
                               f"resume it with the same 'vgb evaluate' command")  # fmt: skip
    out = []
    for r, no in zip(eps.dicts(), eps.lines, strict=True):
        where = f"{path}:{no}"
        check_record(r, where, once)
        if r["policy"] != policy:
            raise LeaderboardError(f"{where}: episode run by policy {r['policy']!r} but run.json says {policy!r}; "
                                   f"one run directory holds one policy")  # fmt: skip
        out.append(r)
    return out


def verify_run(run_dir: Path, cfg: RunInfo) -> str:
    """Check that episodes.jsonl is the file ``vgb evaluate`` wrote for this run.json: ``"verified"`` (hash chain
    intact, head as recorded) or ``"vetted legacy"`` (a pinned pre-chain run); LeaderboardError otherwise."""
    import hashlib

    from vla_gen_bench.eval.chain import FORMAT, genesis, verify

    ej, rj = run_dir / EPISODES, run_dir / RUN_JSON
    raw = ej.read_bytes()
    chk = verify(raw.decode("utf-8").splitlines(), genesis(cfg.to_dict()))
    if chk.broken is not None:
        raise LeaderboardError(f"{ej}:{chk.broken}: this line is not what 'vgb evaluate' wrote (its hash-chain link "
                               f"does not match: edited, inserted, moved or from another run), so the run cannot be "
                               f"used. Restore the original file, or delete line {chk.broken} and every line after it "
                               f"and re-run the same 'vgb evaluate' command (those episodes are run again)")  # fmt: skip
    chain = cfg.episodes_chain
    if chk.unbound or not isinstance(chain, dict):
        if hashlib.sha256(raw).hexdigest() in VETTED_LEGACY:
            return "vetted legacy"
        what = (f"{len(chk.unbound)} of its {chk.lines} episode lines carry no hash-chain link" if chk.unbound
                else f"{rj.name} records no episodes_chain")  # fmt: skip
        raise LeaderboardError(f"{run_dir} cannot be verified: {what} (written by a vgb from before episode hash "
                               f"chains, or the chain was stripped). Re-run it with this version into a new --out "
                               f"(episodes are fixed per seed, so the numbers are comparable)")  # fmt: skip
    if chain.get("format") != FORMAT or chain.get("head") != chk.head or chain.get("lines") != chk.lines:
        raise LeaderboardError(f"{rj}: episodes_chain records {chain.get('lines')} line(s) ending in link "
                               f"{str(chain.get('head'))[:12]}..., but {ej.name} has {chk.lines} ending in "
                               f"{chk.head[:12]}...: lines were added or removed after the run ended, or run.json "
                               f"belongs to another run. If the run was interrupted, re-run the same 'vgb evaluate' "
                               f"command: it finishes and seals the run")  # fmt: skip
    return "verified"


def run_rows(
    run_dir: Path | str, policy: str | None = None, submitter: str = "", notes: str = ""
) -> list[dict[str, str]]:
    """One leaderboard row per variant of a finished run, every number derived from its episodes.

    Args:
        run_dir: a directory written by ``vgb evaluate`` (run.json + episodes.jsonl).
        policy: display name on the leaderboard (default: run.json's ``policy`` string).
        submitter, notes: copied into the rows.

    Returns:
        Rows as ``{column: text}`` in catalog order (control first), ready for the CSV: text cells that a spreadsheet
        would run as a formula carry a leading ``'`` (what the CSV holds and the submissions check compares).

    Raises:
        LeaderboardError: missing or malformed files, an incomplete run, episodes that disagree with run.json or
            with the variant catalog, or conflicting repeats of an episode.
    """
    from vla_gen_bench.eval.stats import summarize
    from vla_gen_bench.variants import VARIANTS, VariantError, get_variant

    d = Path(run_dir)
    cfg = read_run_json(d)
    quirks = (cfg.profile_settings or {}).get("quirks") or {}
    records = read_episodes(d / EPISODES, cfg.policy, once=quirks.get("success") == "once")
    ej = d / EPISODES
    if not records:
        raise LeaderboardError(f"{ej} holds no episodes")
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], []).append(r)
    for name in list(cfg.variants) + list(by_variant):
        try:
            v = get_variant(name)
        except VariantError as e:
            raise LeaderboardError(f"{d}: {e}") from None
        meta = cfg.variants.get(name)
        for field in ("axis", "split"):
            if meta is not None and meta.get(field, getattr(v, field)) != getattr(v, field):
                raise LeaderboardError(f"{d / RUN_JSON}: variant {name!r} has {field} {meta[field]!r}, the catalog "
                                       f"says {getattr(v, field)!r}")  # fmt: skip
        for r in by_variant.get(name, []):
            for field in ("axis", "split"):
                if field in r and r[field] != getattr(v, field):
                    raise LeaderboardError(f"{ej}: ({name}, seed {r['seed']}, episode {r['episode']}) has {field} "
                                           f"{r[field]!r}, the catalog says {getattr(v, field)!r}")  # fmt: skip
    extra = sorted(set(by_variant) - set(cfg.variants))
    if extra:
        raise LeaderboardError(f"{ej}: episodes of {', '.join(extra)}, which run.json's suite does not list")
    planned = [(v, s, k) for v in cfg.variants for s in cfg.seeds for k in range(cfg.episodes_per_seed)]
    have = {(r["variant"], r["seed"], r["episode"]) for r in records}
    missing = [p for p in planned if p not in have]
    if missing:
        eg = ", ".join(f"({v}, seed {s}, episode {k})" for v, s, k in missing[:3])
        raise LeaderboardError(f"{d}: the run is incomplete: {len(missing)} of {len(planned)} planned episodes "
                               f"missing (e.g. {eg}); finish it by re-running the same 'vgb evaluate' command")  # fmt: skip
    verify_run(d, cfg)

    # the statistics of 'vgb report' (summary.csv), on the same records
    stats = {v.variant: v for v in summarize(records, cfg.control, cfg.variants).variants}
    order = [v.name for v in VARIANTS if v.name in by_variant]
    version = cfg.versions["vla-gen-bench"]
    rows = []
    for name in order:
        v, s = get_variant(name), stats[name]
        row = {
            "policy": policy or cfg.policy, "policy_hash": cfg.policy_id, "source": "run",
            "suite": cfg.suite, "suite_hash": cfg.suite_hash, "catalog_hash": cfg.catalog_hash,
            "asset_pack_hash": cfg.asset_pack_hash, "vgb_version": version, "variant": name, "axis": v.axis,
            "split": v.split, "n": str(s.n), "successes": str(s.successes), "rate": fmt_float(s.rate),
            "ci_low": fmt_float(s.ci_low), "ci_high": fmt_float(s.ci_high), "paired_n": "", "paired_drop": "",
            "paired_drop_low": "", "paired_drop_high": "", "date": cfg.created[:10], "submitter": submitter,
            "notes": notes,
        }  # fmt: skip
        p = s.paired  # variant - control (summary.csv's diff_vs_control), None for the control itself
        if p is not None:
            # paired_drop = control - variant = -diff_vs_control: a positive drop means the variant is harder
            row.update(paired_n=str(p.n), paired_drop=fmt_float(-p.diff), paired_drop_low=fmt_float(-p.high),
                       paired_drop_high=fmt_float(-p.low))  # fmt: skip
        assert tuple(row) == NAMES
        if v.family != "put_on":  # the optional family column; empty means put_on
            row["family"] = v.family
        rows.append({k: csv_text(v) if k in TEXT else v for k, v in row.items()})
    return rows
