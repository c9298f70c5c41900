"""The catalog and suite hashes are pinned: renaming code (fields, classes, modules) must not move them, or every
committed results folder and leaderboard row would stop matching the catalog it was run on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_gen_bench.variants import catalog_hash, suite_hash

ROOT = Path(__file__).resolve().parents[2]
# With the built-in procedural pack (pack hash 17ddd10b5bd7b635). Update a value only for a deliberate, versioned
# change of the catalog or of the manifest code, together with the results folders it invalidates.
PACK_HASH = "17ddd10b5bd7b635"
CATALOG_HASH = "08cc9a421bbdcef1"
SUITE_HASHES = {
    "all": "08cc9a421bbdcef1",
    "default": "c665ea643094a875",
    "smoke": "82be180d4c7c3ebe",
    "sweep": "8e617036e7073582",
    "vision": "613b7dc4dbb74e32",
    "semantics": "d475f56f902f9866",
    "execution": "f43c546802fb093e",
    "ind": "c727e0df66f4f401",
}
RUNS = sorted(
    p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "baselines" / "results").rglob("run.json")
)


def test_the_store_is_the_one_the_hashes_were_taken_with(store):
    assert store.pack_hash == PACK_HASH


def test_catalog_hash_is_pinned(store):
    assert catalog_hash(store=store) == CATALOG_HASH


@pytest.mark.parametrize("suite", sorted(SUITE_HASHES))
def test_suite_hash_is_pinned(suite, store):
    assert suite_hash(suite, store) == SUITE_HASHES[suite]


@pytest.mark.parametrize("folder", RUNS)
def test_every_committed_run_matches_the_catalog_of_today(folder, store):
    """A committed run on the procedural pack names its suite and the hashes it ran with: they re-derive."""
    cfg = json.loads((ROOT / folder / "run.json").read_text())
    if cfg["asset_pack_hash"] != store.pack_hash:
        pytest.skip(f"run on another asset pack ({cfg['asset_pack_hash']})")
    assert suite_hash(cfg["suite"], store) == cfg["suite_hash"]
    assert catalog_hash(store=store) == cfg["catalog_hash"]
