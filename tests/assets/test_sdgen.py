"""Prompts, condition images, sizes and seeds, and the quality gates of the SD + ControlNet table generator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.assets.helpers import synthetic_render, textured_table
from vla_gen_bench.assets import sdgen
from vla_gen_bench.assets.store import AssetError
from vla_gen_bench.paths import repo_root

PROMPTS = repo_root() / "asset_pipeline" / "prompts.toml"


# ---------------------------------------------------------------------------- prompts
def test_curated_prompts_cover_the_default_pack_with_disjoint_splits():
    p = sdgen.load_prompts(PROMPTS)
    assert len(p.train) >= 16 and len(p.unseen) >= 5  # --n-train 16 --n-unseen 5 uses every prompt once
    assert not {x.family for x in p.train} & {x.family for x in p.unseen}
    ids = [x.id for x in p.train + p.unseen]
    assert len(set(ids)) == len(ids)
    texts = [p.text(x) for x in p.train + p.unseen]
    assert len(set(texts)) == len(texts) and all(x.prompt in p.text(x) for x in p.train)
    assert p.negative and all(x.negative == p.negative for x in p.train)


def _write(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "p.toml"
    f.write_text(body)
    return f


GOOD = """
template = "{prompt}, photo"
negative = "text"
[[train]]
id = "oak"
family = "wood"
prompt = "oak table"
[[unseen]]
id = "marble"
family = "marble"
prompt = "marble table"
"""


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace('family = "marble"', 'family = "wood"'), "appear in both train and unseen"),
        (lambda s: s.replace('id = "marble"', 'id = "oak"'), "duplicate id 'oak'"),
        (lambda s: s.replace('prompt = "marble table"', 'prompt = "Oak  table"'), "duplicate prompt"),
        (
            lambda s: s.replace('family = "wood"', 'family = "wood"\ncolour = "red"'),
            r"unknown keys \['colour'\]",
        ),
        (lambda s: s.replace('"{prompt}, photo"', '"photo"'), "must contain '{prompt}'"),
        (lambda s: s.replace('id = "oak"', 'id = "Oak Tree"'), "lower-case"),
        (lambda s: s.split("[[unseen]]")[0], r"at least one \[\[unseen\]\]"),
        (lambda s: "seed = 3\n" + s, "unknown top-level keys"),
        (lambda s: s.replace("[[train]]", "[[train]"), "not valid TOML"),
    ],
)
def test_malformed_prompt_files_are_clear_errors(tmp_path, edit, message):
    assert sdgen.load_prompts(_write(tmp_path, GOOD)).train[0].name == "oak table"
    with pytest.raises(AssetError, match=message):
        sdgen.load_prompts(_write(tmp_path, edit(GOOD)))


def test_slots_cycle_through_prompts_with_unique_ids():
    p = sdgen.load_prompts(PROMPTS)
    slots = sdgen.plan_slots(p, n_train=len(p.train) + 2, n_unseen=1)
    ids = [s["id"] for s in slots]
    assert len(set(ids)) == len(ids)
    assert ids[len(p.train)] == f"sd_{p.train[0].id}_2" and slots[-1]["split"] == "unseen"


# ---------------------------------------------------------------------------- sizes and seeds
@pytest.mark.parametrize("view, res, want", [((224, 224), 512, (512, 512)), ((640, 480), 512, (768, 576)),
                                            ((128, 128), 512, (512, 512)), ((224, 224), 64, (64, 64))])  # fmt: skip
def test_generation_size_of_the_cameras(view, res, want):
    assert sdgen.generation_size(*view, res) == want


@settings(max_examples=200, deadline=None)
@given(st.integers(16, 2048), st.integers(16, 2048), st.sampled_from([64, 256, 512, 768]))
def test_generation_size_keeps_the_exact_aspect_ratio(w, h, res):
    gw, gh = sdgen.generation_size(w, h, res)
    assert gw * h == gh * w, "the frustum must be the camera's, or the table would not line up after resizing"
    assert gw % 8 == 0 and gh % 8 == 0 and min(gw, gh) >= res


def test_slot_seeds_are_deterministic_and_distinct():
    seeds = {sdgen.slot_seed(0, s, i, a) for s in ("train", "unseen") for i in range(20) for a in range(4)}
    assert len(seeds) == 160
    assert (
        sdgen.slot_seed(3, "train", 1, 0)
        == sdgen.slot_seed(3, "train", 1, 0)
        != sdgen.slot_seed(4, "train", 1, 0)
    )


# ---------------------------------------------------------------------------- conditions
def test_control_images_follow_the_render():
    rgb, depth, mask = synthetic_render(64)
    c = sdgen.control_images(rgb, depth)
    assert c["canny"].shape == c["depth"].shape == (64, 64, 3) and c["canny"].dtype == np.uint8
    edges = c["canny"][..., 0] > 127
    # edges lie on the table outline, nowhere inside the table or the backdrop
    assert edges.sum() > 60 and not (edges & _erode(mask, 3)).any() and not (edges & _erode(~mask, 3)).any()
    d = c["depth"][..., 0].astype(int)
    assert (d[~mask] == 0).all() and (d[mask] >= 25).all()
    assert d[60, 32] > d[15, 32], "near (bottom) must be brighter than far (top), as MiDaS-style depth maps"


def test_canny_edges_stay_at_the_image_pixels():
    import cv2

    rgb = textured_table(synthetic_render(128)[2])
    assert np.array_equal(sdgen.canny_edges(rgb), cv2.Canny(rgb, 100, 200) > 0), (
        "no resampling at 64-multiples"
    )
    odd = rgb[:100, :72]  # padded internally to 128x128: same edges away from the padded border
    e = sdgen.canny_edges(odd)
    assert e.shape == (100, 72) and np.array_equal(e[2:-2, 2:-2], (cv2.Canny(odd, 100, 200) > 0)[2:-2, 2:-2])


def _erode(mask, r):
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0


# ---------------------------------------------------------------------------- gates
def test_edge_gate_accepts_aligned_and_rejects_misaligned_images():
    rgb, depth, mask = synthetic_render(64)
    edges = sdgen.control_images(rgb, depth)["canny"][..., 0] > 127
    gate = sdgen.GateConfig()
    aligned = sdgen.edge_score(textured_table(mask), edges)
    assert aligned >= 0.9
    for shift in (6, -8):
        moved = textured_table(synthetic_render(64, shift=shift)[2])
        assert sdgen.edge_score(moved, edges) < gate.edge_min, (
            f"a table shifted by {shift} px must be rejected"
        )
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert sdgen.edge_score(noise, edges) < gate.edge_min, "edges everywhere must not count as alignment"
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert sdgen.edge_score(flat, edges) == 0.0
    assert sdgen.edge_score(flat, np.zeros_like(edges)) == 1.0  # no control edges: nothing to check


def test_duplicate_gate_separates_copies_from_different_tables():
    mask = synthetic_render(64)[2]
    oak = textured_table(mask, seed=0)
    noisy_copy = np.clip(
        oak.astype(int) + np.random.default_rng(1).integers(-6, 7, oak.shape), 0, 255
    ).astype(np.uint8)
    marble = textured_table(mask, seed=2, base=(225, 225, 220))
    gate = sdgen.GateConfig()
    assert sdgen.image_distance(oak, oak) == 0.0
    assert sdgen.image_distance(oak, noisy_copy) <= gate.dup_max
    assert sdgen.image_distance(oak, marble) > gate.dup_max
    d, who = sdgen.nearest(noisy_copy, {"oak": sdgen.thumbnail(oak), "marble": sdgen.thumbnail(marble)})
    assert who == "oak" and d <= gate.dup_max
    assert sdgen.nearest(oak, {}) == (math.inf, None)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.5))
def test_edge_score_is_bounded(seed, density):
    rng = np.random.default_rng(seed)
    img = (rng.random((32, 32, 3)) < density).astype(np.uint8) * 255
    edges = rng.random((32, 32)) < 0.05
    assert -1.0 <= sdgen.edge_score(img, edges) <= 1.0
