"""The drawer family's scripted oracle on every setting of both modes: its own result files (not a ``vgb evaluate`` run folder).

    python baselines/scripts/oracle_drawer.py --out baselines/results/oracle-drawer/open --episodes 64 --mode open

Each setting (:data:`vla_gen_bench.assets.cabinets.SETTINGS`) draws its episodes with
:func:`~vla_gen_bench.assets.cabinets.drawer_episode` from ``numpy.random.default_rng((seed, setting, mode,
episode))``, runs them through the evaluation runner's loop (``run_batch``) and appends one JSON line per episode
to ``oracle.jsonl`` (a rerun skips the episodes already there). ``oracle.json`` holds the configuration and versions,
``oracle.csv`` the successes per setting and mode with Wilson 95 % intervals (rewritten from the episodes at the
end of every setting). Until the family is in the variant catalog this script is how its oracle numbers are made.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import time
from pathlib import Path

MODES = ("open", "close")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("baselines/results/oracle-drawer"))
    ap.add_argument("--episodes", type=int, default=64, help="episodes per setting and mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=(*MODES, "both"), default="both")
    ap.add_argument("--settings", default="", help="comma list (default: every setting)")
    args = ap.parse_args()

    import numpy as np

    from vla_gen_bench.assets import cabinets as CB
    from vla_gen_bench.assets.store import default_store
    from vla_gen_bench.envs.drawer import DRAWER_FAILURE_LABELS, make_drawer_env
    from vla_gen_bench.eval.runner import run_batch
    from vla_gen_bench.policies.scripted_drawer import DrawerScriptedPolicy
    from vla_gen_bench.variants.factors import RobotInit

    settings = [s for s in args.settings.split(",") if s] or list(CB.SETTINGS)
    for s in settings:
        if s not in CB.SETTINGS:
            raise SystemExit(f"unknown setting {s!r}; allowed: {', '.join(CB.SETTINGS)}")
    modes = MODES if args.mode == "both" else (args.mode,)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_run_json(args, settings, modes)
    path = args.out / "oracle.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["mode"], r["setting"], r["episode"]))
    store = default_store()
    for mode in modes:
        env = make_drawer_env(mode)
        for setting in settings:
            t0 = time.perf_counter()
            for k in range(args.episodes):
                if (mode, setting, k) in done:
                    continue
                rng = np.random.default_rng((args.seed, CB.SETTINGS.index(setting), MODES.index(mode), k))
                spec = CB.drawer_episode(rng, store, mode, setting, RobotInit.table())
                last = {}
                (res,) = run_batch(env, [DrawerScriptedPolicy()], [args.seed * 100_000 + k], [spec],
                                   on_step=lambda *step, last=last: last.update(info=step[-1]))  # fmt: skip
                info = last["info"]
                row = dict(mode=mode, setting=setting, episode=k, success=res.success,
                           success_once=bool(info["success_once"][0]),
                           failure=DRAWER_FAILURE_LABELS[int(info["failure"][0])],
                           joint_position=round(float(info["joint_position"][0]), 4),
                           grasped=res.grasped, return_=res.return_, steps=res.steps, wall_s=res.wall_s,
                           action_digest=res.action_digest, spec=res.spec)  # fmt: skip
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            _write_summary(args.out)
            print(f"{mode} {setting}: {time.perf_counter() - t0:.0f} s", flush=True)
        env.close()
    print(f"wrote {args.out}/oracle.jsonl, oracle.csv, oracle.json")


def _write_run_json(args, settings, modes) -> None:
    import mani_skill
    import sapien

    from vla_gen_bench.assets import cabinets as CB

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    run = dict(
        what="scripted drawer oracle (privileged) on VgbDrawer-v1", policy="DrawerScriptedPolicy",
        episodes_per_setting=args.episodes, seed=args.seed, modes=list(modes), settings=list(settings),
        camera="default", pushback_step=CB.PUSHBACK_STEP, cabinets=CB.cabinet_ids(), handles=CB.handle_ids(),
        cabinet_pack_hash=CB.pack_hash(),
        git_commit=commit.strip(), python=platform.python_version(), mani_skill=mani_skill.__version__,
        sapien=sapien.__version__, omp_threads=os.environ.get("OMP_NUM_THREADS"),
    )  # fmt: skip
    (args.out / "oracle.json").write_text(json.dumps(run, indent=1) + "\n")


def _write_summary(out: Path) -> None:
    from vla_gen_bench.eval.stats import wilson_interval

    rows: dict[tuple[str, str], list[dict]] = {}
    for line in (out / "oracle.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.setdefault((r["mode"], r["setting"]), []).append(r)
    with (out / "oracle.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mode", "setting", "n", "successes", "rate", "wilson_lo", "wilson_hi", "failures"])
        for (mode, setting), rs in sorted(rows.items()):
            n, s = len(rs), sum(r["success"] for r in rs)
            lo, hi = wilson_interval(s, n)
            fails = {}
            for r in rs:
                if not r["success"]:
                    fails[r["failure"]] = fails.get(r["failure"], 0) + 1
            w.writerow([mode, setting, n, s, f"{s / n:.4f}", f"{lo:.4f}", f"{hi:.4f}",
                        " ".join(f"{k}={v}" for k, v in sorted(fails.items()))])  # fmt: skip


if __name__ == "__main__":
    main()
