"""Synthetic run directories (run.json + episodes.jsonl as ``vgb evaluate`` writes them) and leaderboard helpers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vla_gen_bench.variants import get_variant

# success per episode index 0..9 (one seed); ind vs unseen_table gives the 2x2 table a=3, b=1, c=4, d=2
OUTCOMES = {
    "ind": [1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "unseen_table": [1, 1, 1, 0, 0, 0, 0, 1, 0, 0],
    "dyn_noise_strong": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    "unseen_objects": [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
    "reposition": [0, 0, 1, 1, 0, 0, 0, 0, 0, 0],
}


def h16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_run(
    root: Path,
    policy: str = "my_pkg.mod:Policy",
    outcomes: dict[str, list[int]] | None = None,
    seeds: tuple[int, ...] = (0,),
    suite: str = "synthetic",
    pack: str = "procedural",
    created: str = "2026-11-20T10:00:00+00:00",
) -> Path:
    """A finished run: episode k of variant v succeeds iff outcomes[v][k]; episodes are split evenly over seeds."""
    outcomes = outcomes or OUTCOMES
    root.mkdir(parents=True, exist_ok=True)
    per_seed = len(next(iter(outcomes.values()))) // len(seeds)
    variants = {}
    for name in outcomes:
        v = get_variant(name)
        variants[name] = {"axis": v.axis, "split": v.split, "severity": v.severity, "description": v.summary,
                          "paper": v.paper}  # fmt: skip
    run = {
        "policy": policy, "policy_id": h16("policy:" + policy), "policy_metadata": {}, "suite": suite,
        "suite_hash": h16("suite:" + suite + ",".join(outcomes)), "catalog_hash": h16("catalog"),
        "asset_pack": pack, "asset_pack_hash": h16("pack:" + pack), "control": "ind", "variants": variants,
        "seeds": list(seeds), "episodes_per_seed": per_seed,
        "versions": {"python": "3.11", "vla-gen-bench": "0.1.0"}, "created": created,
    }  # fmt: skip
    (root / "run.json").write_text(json.dumps(run, indent=1))
    lines = []
    for name, outs in outcomes.items():
        v = get_variant(name)
        for i, ok in enumerate(outs):
            seed, ep = seeds[i // per_seed], i % per_seed
            lines.append(json.dumps({
                "variant": name, "axis": v.axis, "split": v.split, "severity": v.severity, "seed": seed,
                "episode": ep, "policy": policy, "success": bool(ok), "success_once": bool(ok), "grasped": True,
                "consecutive_grasp": True, "failure": "success" if ok else "misplaced", "steps": 80,
                "instruction": "put the cube on the plate",
            }))  # fmt: skip
    (root / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return seal(root)


def seal(root: Path) -> Path:
    """(Re-)write episodes.jsonl with its hash chain and run.json's head, as 'vgb evaluate' does."""
    from vla_gen_bench.eval.chain import FIELD, FORMAT, genesis
    from vla_gen_bench.eval.chain import seal as seal_line

    run = json.loads((root / "run.json").read_text())
    head, out, n = genesis(run), b"", 0
    for line in (root / "episodes.jsonl").read_text().splitlines():
        if line.strip():
            rec = {k: v for k, v in json.loads(line).items() if k != FIELD}
            data, head = seal_line(head, rec)
            out, n = out + data, n + 1
    (root / "episodes.jsonl").write_bytes(out)
    run["episodes_chain"] = {"format": FORMAT, "lines": n, "head": head, "unbound_lines": 0}
    (root / "run.json").write_text(json.dumps(run, indent=1))
    return root
