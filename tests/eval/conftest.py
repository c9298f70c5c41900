"""Synthetic run directories (no simulator): run.json + episodes.jsonl as the runner writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

VARIANTS = {
    "ind": {
        "axis": "in-distribution",
        "split": "train",
        "severity": None,
        "description": "training distribution",
    },
    "unseen_table": {
        "axis": "vision",
        "split": "unseen",
        "severity": None,
        "description": "16 unseen tables",
    },
    "overlay_noise": {
        "axis": "vision",
        "split": "unseen",
        "severity": 0.3,
        "description": "noise overlay a=0.3",
    },
    "unseen_object": {
        "axis": "semantics",
        "split": "unseen",
        "severity": None,
        "description": "9 unseen objects",
    },
    "reposition": {
        "axis": "execution",
        "split": "unseen",
        "severity": 5,
        "description": "object moved at step 5",
    },
}
# success per episode index 0..9; ind vs unseen_table gives the 2x2 table a=3, b=1, c=4, d=2
OUTCOMES = {
    "ind": [1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "unseen_table": [1, 1, 1, 0, 0, 0, 0, 1, 0, 0],
    "overlay_noise": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    "unseen_object": [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
    "reposition": [0, 0, 1, 1, 0, 0, 0, 0, 0, 0],
}


def record(variant: str, k: int, success: bool, policy: str = "scripted", **over) -> dict:
    meta = VARIANTS[variant]
    failure = "success" if success else ("dropped" if k % 2 else "never_grasped")
    r = {
        "variant": variant, "axis": meta["axis"], "split": meta["split"], "severity": meta["severity"],
        "episode": k, "seed": 1000 + k, "success": bool(success), "success_once": bool(success),
        "grasped": failure in ("success", "dropped"), "consecutive_grasp": failure in ("success", "dropped"),
        "failure": failure, "steps": 80, "wall_s": 2.5,
        "instruction": f"put the {'red cube' if k % 3 else 'green ball'} on the {'plate' if variant != 'unseen_object' else 'tray'}",
        "policy": policy,
    }  # fmt: skip
    r.update(over)
    return r


def write_run(
    d: Path, records: list[dict], policy: str = "scripted", lines: list[str] | None = None, **cfg
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    config = {
        "policy": policy, "policy_id": "p" * 16, "suite": "default", "suite_hash": "s" * 8,
        "catalog_hash": "c" * 8, "asset_pack_hash": "a" * 8, "control": "ind", "variants": VARIANTS, "seeds": [0],
        "episodes_per_seed": 10,
        "versions": {"vla_gen_bench": "0.1.0", "mani_skill": "3.0.1"}, "created": "2025-01-01T00:00:00",
    }  # fmt: skip
    config.update(cfg)
    (d / "run.json").write_text(json.dumps(config))
    body = [json.dumps(r) for r in records] + (lines or [])
    (d / "episodes.jsonl").write_text("\n".join(body) + "\n")
    return d


def standard_records(policy: str = "scripted", outcomes: dict | None = None) -> list[dict]:
    outcomes = outcomes or OUTCOMES
    return [record(v, k, bool(s), policy) for v, seq in outcomes.items() for k, s in enumerate(seq)]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path / "run", standard_records())
