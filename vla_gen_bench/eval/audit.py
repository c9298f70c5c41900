"""``vgb audit``: re-simulate a random sample of a run's episodes and check each against what the run recorded.

The hash chain of :mod:`.chain` catches edits made after ``vgb evaluate`` wrote a line, but anyone can recompute a
SHA-256 chain, so a forger can flip outcomes and re-seal the file. What a forger cannot change is the simulator:
an episode depends only on (variant, seed, episode), the policy and the run's settings, and the runner seeds a
sampling policy's random numbers per episode step, so re-running an episode gives the same executed actions
(``action_digest``) and the same outcome. ``vgb audit`` re-runs a seeded random sample of the recorded episodes,
exactly as ``run.json`` says the run ran them (policy arguments, profile, camera, robot, physics rate, asset pack;
videos off), through evaluate's own :class:`~vla_gen_bench.eval.evaluate.Worker`, and reports each episode whose
re-run differs. It writes ``audit.json`` outside the run and never touches the audited run.

:func:`same_actions_different_outcomes` is the cheap check ``vgb compare`` runs on two runs' records: matched
episodes with identical action digests but different outcomes mean one of the runs does not record what its
actions produced.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tyro

from vla_gen_bench.eval.records import EPISODES, EpisodeRecord, RecordError, RunInfo

OUTCOME = ("success", "success_once", "grasped", "failure")
"""The fields of a record that the episode's actions determine (with ``action_digest``)."""
SIM_KEYS = ("camera", "robot", "sim_freq", "profile", "profile_settings")
"""Settings two runs must share for identical actions to imply identical outcomes (the asset pack and episodes
are already required equal by ``vgb compare``)."""


@dataclass(frozen=True)
class Audit:
    """Re-simulate a random sample of a run's episodes and check each against its record (outcome, action digest)."""

    run_dir: tyro.conf.Positional[Path]
    """Directory written by 'vgb evaluate' (run.json + episodes.jsonl); it is only read."""
    policy: str | None = None
    """The policy to re-run; default: run.json's. It must report the run's policy id (the same weights)."""
    sample: int = 8
    """Episodes to re-simulate, chosen at random from the run's records (all of them when the run has fewer)."""
    seed: int | None = None
    """Seed of the random choice of episodes; default: a fresh one (printed, so the audit can be repeated)."""
    out: Path = Path("audit.json")
    """Where to write the audit (JSON); never inside the audited run."""
    asset_pack: str | None = None
    """Where the run's generated table pack is on this machine (name or path); default: run.json's."""
    rl4vla_assets: Path | None = None
    """RL4VLA asset folder on this machine for rl4vla-profile runs; default: run.json's, else $VGB_RL4VLA_ASSETS."""


class AuditError(ValueError):
    """Input the audit cannot work with (missing run, unknown policy, other weights...); exit code 2."""


# ---------------------------------------------------------------------------- pure checks on record dicts
def _key(r: dict[str, Any]) -> tuple[str, int, int]:
    return (r["variant"], r["seed"], r["episode"])


def _outcome(r: dict[str, Any]) -> tuple:
    return tuple(r.get(k) for k in OUTCOME)


def same_actions_different_outcomes(
    records_a: list[dict[str, Any]], records_b: list[dict[str, Any]]
) -> list[tuple[str, int, int]]:
    """Matched episodes (same variant, seed, episode) whose action digests are equal but outcomes differ.

    Args:
        records_a, records_b: episode records as JSON objects (``episodes.jsonl`` lines). Records without an
            ``action_digest`` (runs from before digests) are never matched.

    Returns:
        The (variant, seed, episode) keys, sorted.
    """
    by_key = {_key(r): r for r in records_b}
    out = []
    for r in records_a:
        other = by_key.get(_key(r))
        if (
            other is None
            or not r.get("action_digest")
            or r.get("action_digest") != other.get("action_digest")
        ):
            continue
        if _outcome(r) != _outcome(other):
            out.append(_key(r))
    return sorted(set(out))


def contradiction_warning(
    records_a: list[dict[str, Any]],
    records_b: list[dict[str, Any]],
    config_a: dict[str, Any] | None = None,
    config_b: dict[str, Any] | None = None,
) -> list[str]:
    """The lines ``vgb compare`` adds when matched episodes have identical actions but different outcomes (a count,
    then one line per variant); none when there are none, or when the runs' simulation settings differ (then the
    same actions may rightly end differently, e.g. an open-loop policy under another camera or physics rate)."""
    if config_a is not None and config_b is not None:
        defaults = {"profile": "vgb"}
        if any(config_a.get(k, defaults.get(k)) != config_b.get(k, defaults.get(k)) for k in SIM_KEYS):
            return []
    keys = same_actions_different_outcomes(records_a, records_b)
    if not keys:
        return []
    out = [f"Warning: {len(keys)} episodes have identical actions but different outcomes: one run's outcomes are not "
           f"what its actions produce; audit both with vgb audit"]  # fmt: skip
    for variant in dict.fromkeys(k[0] for k in keys):
        mine = [k for k in keys if k[0] == variant]
        shown = ", ".join(f"seed {s} episode {e}" for _, s, e in mine[:8]) + (
            ", ..." if len(mine) > 8 else ""
        )
        out.append(f"- {variant}: {len(mine)} episode(s) ({shown})")
    return out


def differences(recorded: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    """The fields of :data:`OUTCOME` and ``action_digest`` where a re-run episode differs from its record (the
    digest only when the record has one)."""
    out = [k for k in OUTCOME if recorded.get(k) != rerun.get(k)]
    if recorded.get("action_digest") is not None and recorded["action_digest"] != rerun.get("action_digest"):
        out.append("action_digest")
    return out


def choose(keys: list[tuple[str, int, int]], n: int, seed: int) -> list[tuple[str, int, int]]:
    """``n`` of ``keys`` (all when there are fewer), drawn with a ``seed``-ed RNG, in sorted order."""
    import random

    pool = sorted(keys)
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


# ---------------------------------------------------------------------------- the run as it ran
def _load(run_dir: Path) -> tuple[RunInfo, list[EpisodeRecord], dict[str, Any]]:
    """run.json, the records and the chain check of a run directory; AuditError when it is not one."""
    from vla_gen_bench.eval import records
    from vla_gen_bench.eval.chain import genesis, verify

    if not run_dir.is_dir():
        raise AuditError(f"{run_dir} is not a folder; give a run directory written by 'vgb evaluate'")
    try:
        run = records.read_run(run_dir)
        eps = records.read(run_dir / EPISODES)
    except RecordError as e:
        raise AuditError(str(e)) from None
    if not eps.records:
        raise AuditError(f"{run_dir / EPISODES} holds no episodes; there is nothing to audit")
    lines = (run_dir / EPISODES).read_text(encoding="utf-8").splitlines()
    chk = verify(lines, genesis(run.to_dict()))
    sealed = run.episodes_chain or {}
    chain = {"verified": chk.verified, "broken_line": chk.broken, "unbound_lines": len(chk.unbound),
             "sealed": sealed.get("head") == chk.head and sealed.get("lines") == chk.lines}  # fmt: skip
    return run, eps.records, chain


def evaluate_config(run: RunInfo, run_dir: Path, policy: str | None = None, asset_pack: str | None = None,
                    rl4vla_assets: Path | None = None):  # fmt: skip
    """The :class:`~vla_gen_bench.eval.evaluate.Evaluate` that re-runs ``run``'s episodes as it ran them: its
    policy arguments, profile, camera, robot, physics rate, asset pack and parallel envs; one in-process worker,
    no videos, no probe steps, no report."""
    from vla_gen_bench.eval.evaluate import Evaluate
    from vla_gen_bench.options import PolicyOptions

    config = run.config or {}
    if asset_pack is None and run.config is not None:  # the --asset-pack the run was given (None: built-in)
        asset_pack = config.get("asset_pack")
    elif asset_pack is None:  # the top-level name, where "procedural" and "rl4vla" mean the built-in packs
        asset_pack = None if run.asset_pack in ("procedural", "rl4vla") else run.asset_pack
    assets = rl4vla_assets or config.get("rl4vla_assets")
    if (
        rl4vla_assets is None and assets and not Path(assets).exists()
    ):  # the submitter's folder: use this machine's
        assets = None
    args = run.policy_args or {}
    return Evaluate(
        policy=policy or run.policy, out=run_dir, suite=run.suite, episodes=run.episodes_per_seed,
        seeds=run.seeds, camera=run.camera, robot=run.robot, sim_freq=run.sim_freq,
        asset_pack=asset_pack, policy_options=PolicyOptions.from_kwargs(args),
        profile=run.profile_name, rl4vla_assets=Path(assets) if assets else None,
        policy_timeout=float(config.get("policy_timeout", 600.0)), num_envs=int(config.get("num_envs", 1)),
        workers=1, policy_server="off", videos=0, check=False, report=False,
    )  # fmt: skip


def _check_settings(cfg, run: RunInfo, run_dir: Path, policy_given: bool):
    """The asset store of ``cfg``, after checking that ``cfg`` re-creates the run's settings and episodes (the keys
    a resume must agree on); AuditError naming what differs."""
    from vla_gen_bench.eval.evaluate import (
        RESUME_KEYS,
        EvalConfigError,
        check_pack_view,
        env_settings,
        load_store,
        policy_kwargs,
        resume_clash,
        run_config,
    )
    from vla_gen_bench.policies.registry import check_policy

    try:
        check_policy(cfg.policy, policy_kwargs(cfg))
        store = load_store(cfg.asset_pack, cfg.profile, cfg.rl4vla_assets)
        check_pack_view(store, env_settings(cfg)["camera"])
        meta = run_config(cfg, store, {})
    except (EvalConfigError, OSError) as e:
        raise AuditError(f"cannot set up {run_dir}'s run here: {e}") from None
    clash = resume_clash(run, meta, tuple(k for k in RESUME_KEYS if not (k == "policy" and policy_given)))
    if clash:
        raise AuditError(
            f"cannot re-simulate {run_dir} as it ran: on this machine its "
            + "; ".join(f"{k} is {now!r}, the run has {was!r}" for k, (was, now) in clash.items())
            + " (a different vgb version, catalog or asset pack; give the run's pack with --asset-pack, or audit "
            "with the vgb version in run.json's versions)"
        )  # fmt: skip
    return store


# ---------------------------------------------------------------------------- the audit
def audit(cfg: Audit, console=None) -> dict[str, Any]:
    """Re-simulate ``cfg.sample`` episodes of ``cfg.run_dir`` and compare them with the records.

    Returns:
        The audit (what ``audit.json`` holds); ``"differing"`` counts the episodes whose re-run differs.

    Raises:
        AuditError: a missing or unreadable run, a bad option, a policy that cannot be loaded or reports another
            policy id, settings this machine cannot re-create.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vla_gen_bench.eval.evaluate import Item, Worker, _versions, policy_id

    console = console or Console(stderr=True)
    run_dir = cfg.run_dir
    if cfg.sample < 1:
        raise AuditError(f"--sample must be >= 1 (episodes to re-simulate), got {cfg.sample}")
    if cfg.seed is not None and cfg.seed < 0:
        raise AuditError(f"--seed must be >= 0, got {cfg.seed}")
    out = cfg.out.resolve()
    if run_dir.is_dir() and out.is_relative_to(run_dir.resolve()):
        raise AuditError(f"--out {cfg.out} is inside the audited run {run_dir}, which the audit never modifies; "
                         f"write it elsewhere, e.g. --out {run_dir.name}-audit.json")  # fmt: skip
    run, recs, chain = _load(run_dir)
    by_key = {r.key: r for r in recs}
    seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**32)
    chosen = choose(list(by_key), cfg.sample, seed)
    ecfg = evaluate_config(run, run_dir, cfg.policy, cfg.asset_pack, cfg.rl4vla_assets)
    _check_settings(ecfg, run, run_dir, cfg.policy is not None)
    if ecfg.num_envs > 1:
        import torch

        if not torch.cuda.is_available():  # the CPU simulator's physics would not reproduce the GPU's
            raise AuditError(f"{run_dir} ran on ManiSkill's GPU simulator (--num-envs {ecfg.num_envs}); audit it on "
                             f"a machine with CUDA")  # fmt: skip
    console.print(f"auditing {run_dir}: {len(chosen)} of {len(recs)} episodes, chosen with --seed {seed} "
                  f"(repeat the same choice with --seed {seed})", markup=False)  # fmt: skip
    console.print("sample: " + ", ".join(f"{v}/s{s}/e{e}" for v, s, e in chosen), markup=False)

    worker = Worker(ecfg, 0, 0, shared=True)  # the env is kept for later in-process runs, as evaluate does
    try:
        info = worker.setup()
        ids = {policy_id(ecfg.policy, info["metadata"]), policy_id(run.policy, info["metadata"])}
        if run.policy_id not in ids:
            raise AuditError(f"--policy {ecfg.policy} reports policy id {policy_id(ecfg.policy, info['metadata'])}, "
                             f"but {run_dir} was run with {run.policy_id} (different weights or metadata); "
                             f"audit with the policy the run used")  # fmt: skip
        rows = []
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*cols, console=console) as bar:
            task = bar.add_task("re-simulating", total=len(chosen))
            b = ecfg.num_envs  # the run's batch of parallel envs (GPU simulation when > 1)
            for batch in [chosen[i : i + b] for i in range(0, len(chosen), b)]:
                for key, (rerun, _) in zip(batch, worker.run([Item(*k) for k in batch], None), strict=True):
                    rec, again = by_key[key].to_dict(chain=False), rerun.to_dict(chain=False)
                    rows.append({"variant": key[0], "seed": key[1], "episode": key[2],
                                 "recorded": {k: rec.get(k) for k in (*OUTCOME, "action_digest")},
                                 "rerun": {k: again.get(k) for k in (*OUTCOME, "action_digest")},
                                 "differs": differences(rec, again)})  # fmt: skip
                bar.advance(task, len(batch))
    finally:
        worker.close()
    return {
        "run_dir": str(run_dir.resolve()),
        "policy": ecfg.policy,
        "policy_id": run.policy_id,
        "suite": run.suite,
        "suite_hash": run.suite_hash,
        "asset_pack_hash": run.asset_pack_hash,
        "sample_seed": seed,
        "episodes_in_run": len(recs),
        "sampled": len(chosen),
        "differing": sum(bool(r["differs"]) for r in rows),
        "chain": chain,
        "episodes": rows,
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cell(recorded: dict[str, Any], rerun: dict[str, Any], k: str) -> str:
    a, b = recorded[k], rerun[k]
    return str(a) if a == b else f"[red]{a} → {b}[/]"


def _table(result: dict[str, Any]):
    from rich.table import Table

    t = Table("variant", "seed", "ep", "success (rec → re-run)", "failure (rec → re-run)",
              "action digest (rec → re-run)", "verdict", title=f"audit of {result['run_dir']}")  # fmt: skip
    for r in result["episodes"]:
        a, b = r["recorded"], r["rerun"]
        digest = (
            f"{b['action_digest']} (none recorded)"
            if a["action_digest"] is None
            else _cell(a, b, "action_digest")
        )
        verdict = "[green]agrees[/]" if not r["differs"] else f"[red]DIFFERS: {', '.join(r['differs'])}[/]"
        t.add_row(r["variant"], str(r["seed"]), str(r["episode"]), _cell(a, b, "success"), _cell(a, b, "failure"),
                  digest, verdict)  # fmt: skip
    return t


def audit_command(cfg: Audit) -> int:
    """``vgb audit``: 0 when every sampled episode re-runs as recorded, 1 when any differs (or the hash chain is
    broken), 2 for input the audit cannot work with."""
    import os
    import sys

    from rich.console import Console

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from vla_gen_bench.assets.store import AssetError
    from vla_gen_bench.eval.conventions import ActionError
    from vla_gen_bench.eval.evaluate import EvalConfigError, RunDirError
    from vla_gen_bench.eval.guard import PolicyCallError
    from vla_gen_bench.policies.registry import PolicyError
    from vla_gen_bench.policies.remote import RemotePolicyError
    from vla_gen_bench.variants import VariantError

    console = Console(stderr=True, soft_wrap=True)
    try:
        result = audit(cfg, console)
    except (
        AuditError,
        EvalConfigError,
        RunDirError,
        PolicyError,
        VariantError,
        AssetError,
        ActionError,
    ) as e:
        console.print(f"refused: {e.args[0] if isinstance(e, KeyError) else e}", style="red", markup=False)
        return 2
    except (PolicyCallError, RemotePolicyError) as e:
        console.print(f"the policy failed while re-simulating: {e}", style="red", markup=False)
        return 1
    Console(width=None if sys.stdout.isatty() else 160).print(_table(result))
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(result, indent=1) + "\n")
    chain = result["chain"]
    if chain["broken_line"] is not None:
        console.print(f"{cfg.run_dir / EPISODES}:{chain['broken_line']}: the hash chain is broken there: the file "
                      f"was edited after 'vgb evaluate' wrote it", style="red", markup=False)  # fmt: skip
    bad = [r for r in result["episodes"] if r["differs"]]
    for r in bad:
        console.print(f"differs: {r['variant']} seed {r['seed']} episode {r['episode']}: "
                      + "; ".join(f"{k} recorded {r['recorded'][k]}, re-run {r['rerun'][k]}" for k in r["differs"]),
                      style="red", markup=False)  # fmt: skip
    if bad:
        console.print(f"{len(bad)} of {result['sampled']} re-simulated episodes differ from the run's records: the "
                      f"run does not record what its policy does in these episodes", style="red", markup=False)  # fmt: skip
    else:
        console.print(f"all {result['sampled']} re-simulated episodes agree with the run's records",
                      style="green" if chain["broken_line"] is None else None, markup=False)  # fmt: skip
    console.print(f"wrote {cfg.out}", markup=False)
    return 1 if bad or chain["broken_line"] is not None else 0
