import json
import math

import numpy as np
import pytest

from vla_gen_bench.episode import EpisodeSpec, Overlay, Reposition, cell_pairs, grid_cells, sample_ind


def test_training_grid_matches_the_paper():
    cells = grid_cells()
    assert cells.shape == (36, 2)
    assert np.allclose(np.diff(np.unique(cells[:, 0])), 0.03)  # 3 cm pitch
    assert len(cell_pairs(cells)) == 784  # RL4VLA §2.4: ordered distinct pairs farther apart than 7 cm


def test_outer_ring_has_28_cells_outside_the_grid():
    ring = grid_cells(ring=1)
    assert ring.shape == (28, 2)
    inner = grid_cells()
    assert not any(np.allclose(r, c) for r in ring for c in inner)


def test_spec_json_round_trip():
    spec = EpisodeSpec(objects=("obj_red_cube", "obj_blue_cube"), receptacles=("rec_plate",), table="table_oak_wood_table",
                       object_xy=((0.1, 0.2), (0.3, 0.4)), object_yaw=(0.0, math.pi / 4), receptacle_xy=((0.0, 0.0),),
                       instruction="put red cube on plate", overlay=Overlay("noise", "overlay_04_noise", 0.3),
                       reposition=Reposition(5, (0.1, -0.1)))  # fmt: skip
    assert EpisodeSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    "kw,msg",
    [(dict(object_xy=()), "one entry per object"), (dict(qpos_offset=(0.0,) * 6), "7 arm-joint"),
     (dict(objects=()), "at least one object")],
)  # fmt: skip
def test_malformed_specs_are_refused(kw, msg):
    base = dict(objects=("obj_red_cube",), receptacles=("rec_plate",), table="t", object_xy=((0, 0),),
                object_yaw=(0.0,), receptacle_xy=((0.1, 0),), instruction="x")  # fmt: skip
    base.update(kw)
    with pytest.raises(ValueError, match=msg):
        EpisodeSpec(**base)


def test_overlay_alpha_is_validated():
    with pytest.raises(ValueError, match="alpha"):
        Overlay("texture", "overlay_00_stripes", 1.5)


def test_ind_sampling_draws_only_training_pools(store):
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = sample_ind(rng, store)
        assert store.entry(s.objects[0]).split == "train" and s.receptacles == ("rec_plate",)
        assert store.entry(s.table).split == "train"
        assert s.instruction == f"put {store.name(s.objects[0])} on plate"
        assert math.dist(s.object_xy[0], s.receptacle_xy[0]) > 0.07
