"""The stack family as data (no simulator): its record and catalog lines, suites, disjoint pools of pieces and
bases, every piece placeable on every base, its manifests (pure, within the pair range, paired with the control)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_gen_bench.assets import stack as SA
from vla_gen_bench.assets.family_store import family_assets_hash, family_store
from vla_gen_bench.families import STACK_LABELS, get_family
from vla_gen_bench.variants import FAMILY_CATALOGS, SUITES, episode, get_variant

STACK_ASSETS_HASH = (
    "ae09a00499f0eaad"  # update only with the stack family's results (baselines/results/oracle-stack)
)
SETTINGS = ("ind", "unseen_table", "dyn_texture_strong", "dyn_noise_strong", "unseen_objects", "unseen_bases",
            "unseen_instructions", "distractor", "distractor_base", "unseen_positions", "unseen_robot_pose",
            "reposition")  # fmt: skip


def test_the_family_record_catalog_and_suites():
    f = get_family("stack")
    assert f.env_id == "VgbStack-v1" and f.control == "stack_ind" and f.assets == "stack"
    assert f.failure_labels == STACK_LABELS and f.failure_labels[0] == "success"
    assert [v.name for v in FAMILY_CATALOGS["stack"]] == [f"stack_{s}" for s in SETTINGS]
    assert SUITES["stack"] == tuple(f"stack_{s}" for s in SETTINGS)
    assert set(SUITES["stack"]) <= set(SUITES["skills"]) and not set(SUITES["stack"]) & set(SUITES["default"])
    assert get_variant("stack_reposition").control == "stack_ind"
    assert family_assets_hash(f) == SA.pack_hash() == STACK_ASSETS_HASH


@pytest.mark.parametrize("make", [SA.objects, SA.bases])
def test_unseen_pieces_and_bases_have_shapes_and_colours_never_seen_in_training(make):
    train = [a.params for a in make() if a.split == "train"]
    unseen = [a.params for a in make() if a.split == "unseen"]
    assert (len(train), len(unseen)) == ((6, 5) if make is SA.objects else (4, 4))
    assert not {p["shape"] for p in train} & {p["shape"] for p in unseen}
    assert not {p["color"] for p in train} & {p["color"] for p in unseen}


def test_piece_and_base_sizes_and_every_piece_fits_on_every_base():
    """Pieces are graspable (3.6-5.6 cm across, the narrower side at most 4.6 cm for the Panda's 8 cm opening);
    bases have flat tops 6-9 cm across, 3-5 cm tall, and a top outline that is the collision shape's top."""
    for p in SA.objects():
        lo, hi = p.bounds
        size = hi - lo
        assert 0.035 <= size[:2].max() <= 0.056 + 1e-6 and size[:2].min() <= 0.046, p.id
        assert 0.03 <= size[2] <= 0.05, p.id
    for b in SA.bases():
        lo, hi = b.bounds
        poly = np.asarray(SA.top_polygon(b.params["shape"]))
        assert np.allclose([lo[:2], hi[:2]], [poly.min(0), poly.max(0)], atol=1e-6), b.id
        assert 0.06 <= (hi - lo)[:2].min() and (hi - lo)[:2].max() <= 0.09, b.id
        assert 0.03 <= hi[2] <= 0.05 and b.density > max(p.density for p in SA.objects()), b.id
    for p in SA.objects():
        for b in SA.bases():
            assert SA.fits(p, b), (p.id, b.id)
    # the check can fail: a piece wider than its base
    big = SA.ShapeAsset("x", SA.OBJECT_KIND, "x", "train", SA._box(0.05, 0.05, 0.04, (1, 1, 1)))
    assert not SA.fits(big, SA.bases()[0])


def test_stack_manifests_are_pure_within_the_pair_range_and_paired_with_the_control(store):
    f = get_family("stack")
    view = family_store(f, store)
    lo, hi = f.pair_range
    for k in range(30):
        ind = episode("stack_ind", 0, k, store)
        assert ind == episode("stack_ind", 0, k, store)
        assert ind.objects[0] in view.ids("object", "train") and ind.receptacles[0] in view.ids(
            "receptacle", "train"
        )
        assert ind.instruction == f.train_template.format(object=view.name(ind.objects[0]),
                                                          receptacle=view.name(ind.receptacles[0]))  # fmt: skip
        for name in ("stack_ind", "stack_unseen_positions", "stack_reposition", "stack_distractor_base"):
            e = episode(name, 0, k, store)
            assert lo - 1e-9 < math.dist(e.object_xy[0], e.receptacle_xy[0]) <= hi + 1e-9, (name, k)
        bases = episode("stack_unseen_bases", 0, k, store)
        assert bases.receptacles[0] in view.ids("receptacle", "unseen") and bases.objects == ind.objects
        assert bases.object_xy == ind.object_xy and bases.receptacle_xy == ind.receptacle_xy
        pieces = episode("stack_unseen_objects", 0, k, store)
        assert pieces.objects[0] in view.ids("object", "unseen") and pieces.receptacles == ind.receptacles
        para = episode("stack_unseen_instructions", 0, k, store)
        assert para.instruction != ind.instruction and para.objects == ind.objects
        dis = episode("stack_distractor_base", 0, k, store)
        assert len(dis.receptacles) == 2 and dis.receptacles[1] in view.ids("receptacle", "unseen")
