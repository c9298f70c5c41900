"""Every reference checkpoint kept in the repository (``baselines/checkpoints/<name>/``) matches its card, loads and
predicts: ``vgb evaluate --policy openvla:baselines/checkpoints/<name>`` works on a fresh clone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.parent for p in (ROOT / "baselines" / "checkpoints").glob("*/card.json"))
pytestmark = pytest.mark.skipif(
    not BUNDLES, reason="no bundled checkpoint in baselines/checkpoints/ yet (vgb model bundle writes one)"
)


@pytest.mark.parametrize("folder", BUNDLES, ids=[p.name for p in BUNDLES])
def test_bundle_matches_its_card_loads_and_predicts(folder):
    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.training.bundle import MAX_BYTES, read_card, verify_bundle

    res = verify_bundle(folder)
    card = read_card(folder)
    assert res["checkpoint_sha256"] == card["checkpoint_sha256"] and res["size_bytes"] <= MAX_BYTES
    vla = load_openvla(folder, device="cpu")
    size = vla.processor.sizes[0]
    pred = vla.predict_action(np.zeros((1, size, size, 3), np.uint8), ["put carrot on plate"])
    shape = (1, 7) if vla.chunk == 1 else (1, vla.chunk, 7)
    assert pred.actions.shape == shape and np.isfinite(pred.actions).all()
    for row in card["evals"]:  # the table is about these weights
        assert row["checkpoint_sha256"] == card["checkpoint_sha256"]


@pytest.mark.parametrize("folder", BUNDLES, ids=[p.name for p in BUNDLES])
def test_bundle_files_are_not_ignored_by_git(folder):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(ROOT)) for p in folder.iterdir() if p.is_file()]
    out = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", *files], capture_output=True,
                         text=True)  # fmt: skip
    assert out.stdout.strip() == "", f"ignored by .gitignore: {out.stdout}"
