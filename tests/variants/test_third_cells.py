"""Third cells (distractor object / receptacle, reposition target): the benchmark's manifests stay as they were,
and the rl4vla profiles draw RL4VLA's 2,104 triples, uniformly."""

from __future__ import annotations

import numpy as np
import pytest

from vla_gen_bench.episode import GRID_N, MIN_PAIR_DIST, cell_pairs, grid_cells
from vla_gen_bench.variants import get_variant, manifest, manifest_hash
from vla_gen_bench.variants.factors import FAR, Draft, rl4vla_triples

# Manifests (seeds 0-2, 64 episodes) of every variant with a third cell under the vgb profile, as committed before
# the rl4vla profiles got RL4VLA's triples. If one changes, the benchmark's episodes changed: results folders would
# no longer re-derive. Update a value only for a deliberate, versioned change of the catalog.
VGB_MANIFESTS = {
    "multi_object_seen": "85d9730e526cd60e",
    "multi_object_unseen": "ffb4dadcaea95f7d",
    "distractor_receptacle": "c8fd859f3df9bc05",
    "multi_receptacle_unseen": "7c017f204852dcad",
    "reposition": "5e19df5f67a9c727",
    "reposition_step1": "4eba8bcc2a55b586",
    "reposition_step20": "04da5d527e2d13d6",
}
DISTANCES = {
    "object": (FAR, MIN_PAIR_DIST),
    "receptacle": (MIN_PAIR_DIST, FAR),
}  # (from object, from receptacle)


@pytest.mark.parametrize("name", sorted(VGB_MANIFESTS))
def test_vgb_manifests_are_unchanged(name, store):
    assert manifest_hash(manifest(name, (0, 1, 2), 64, store)) == VGB_MANIFESTS[name]


def test_rl4vla_triples_are_the_papers_2104_and_ours_1896(store):
    ij = np.array([(i, j) for i in range(GRID_N) for j in range(GRID_N)])  # integer cell coordinates
    for kind, dist in DISTANCES.items():
        pairs, ok = rl4vla_triples(*dist)
        assert np.array_equal(pairs, cell_pairs(grid_cells()))  # rows line up with the base draw's pairs
        assert ok.sum() == 2104, kind
        # the exact test of the vgb profile
        assert get_variant("multi_object_seen").positions.count(store, dist) == 1896 * 4  # x 4 yaws
        # the 208 extra triples are cells exactly 15 cm (5 pitches) from the cell that must be farther than 15 cm
        far_from = 0 if dist[0] == FAR else 1
        rows, third = np.nonzero(ok)
        d2 = ((ij[pairs[rows, far_from]] - ij[third]) ** 2).sum(1)
        assert (d2 == 25).sum() == 2104 - 1896 and (d2 >= 25).all()


def test_rl4vla_third_cells_are_uniform_over_triples_and_mostly_matched():
    """Base pairs uniform over the 784 pairs (as the manifests draw them) -> every one of the 2,104 triples equally
    likely (chi-square), while the control arm's pair is kept in ~61 % of draws."""
    cells = grid_cells()
    pairs, ok = rl4vla_triples(*DISTANCES["object"])
    rows, thirds = np.nonzero(ok)
    index = {
        (int(pairs[r, 0]), int(pairs[r, 1]), int(c)): n
        for n, (r, c) in enumerate(zip(rows, thirds, strict=True))
    }
    rng = np.random.default_rng(7)
    draws = 20 * len(index)
    counts = np.zeros(len(index))
    kept = 0
    for _ in range(draws):
        i, j = pairs[rng.integers(len(pairs))]
        d = Draft(cells=cells, obj_cell=int(i), rec_cell=int(j), yaw=0.0, objects=["o"], receptacles=["r"],
                  table="t", third_cells="rl4vla")  # fmt: skip
        c = d.pick_third_cell(rng, *DISTANCES["object"])
        counts[index[(d.obj_cell, d.rec_cell, c)]] += 1  # KeyError = a triple outside RL4VLA's set
        kept += d.meta["matched"] == "cells"
    expected = draws / len(index)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = len(index) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), f"not uniform over triples: chi2 {chi2:.0f} for {dof} dof"
    assert kept / draws == pytest.approx(0.6095, abs=0.02)


@pytest.mark.parametrize("profile", ["rl4vla", "rl4vla-paper"])
def test_rl4vla_profiles_draw_their_episodes_from_the_papers_triples(profile, store):
    from vla_gen_bench.eval.profiles import get_profile

    cells = grid_cells()
    cell = lambda xy: int(np.argmin(np.linalg.norm(cells - np.asarray(xy), axis=1)))  # noqa: E731
    p = get_profile(profile)
    at_15cm = 0
    for name in ("multi_object_seen", "multi_object_unseen", "distractor_receptacle", "reposition"):
        kind = "receptacle" if name == "distractor_receptacle" else "object"
        pairs, ok = rl4vla_triples(*DISTANCES[kind])
        rows = {(int(a), int(b)): r for r, (a, b) in enumerate(pairs)}
        for k in range(60):
            s = p.episode(name, 0, k, store)
            if len(s.objects) == 1 and name.startswith("multi_object"):
                continue  # the duplicate-target quirk of rl4vla-paper: no distractor left
            i, j = cell(s.object_xy[0]), cell(s.receptacle_xy[0])
            third = (
                s.reposition.xy
                if s.reposition
                else (s.receptacle_xy if kind == "receptacle" else s.object_xy)[1]
            )
            c = cell(third)
            assert ok[rows[(i, j)], c], f"{profile} {name} ep {k}: ({i}, {j}, {c}) is not an RL4VLA triple"
            far = i if kind == "object" else j
            at_15cm += bool(np.isclose(np.linalg.norm(cells[far] - cells[c]), FAR))
    assert at_15cm > 0  # the cells the benchmark's exact test leaves out do occur
