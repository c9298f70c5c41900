import json
import math

import numpy as np
import pytest

from vla_gen_bench.episode import EpisodeSpec, Overlay, Reposition, cell_pairs, grid_cells


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


def test_the_envs_own_draw_is_the_control_arms_manifest(store):
    """A reset without an episode (``Variant.sample`` from the env's episode RNG, a numpy RandomState per env) takes
    episode 0 of the control arm's manifest for a drawn seed: training pools only, the training template."""
    from vla_gen_bench.variants import CONTROL, check_training_spec, episode, get_variant

    ind, rng = get_variant(CONTROL), np.random.RandomState(0)
    objects = set()
    for _ in range(50):
        seed = np.random.RandomState()
        seed.set_state(rng.get_state())
        s = ind.sample(rng, store)
        assert s == episode(CONTROL, seed.randint(2**31), 0, store)
        check_training_spec(s, store)
        assert s.receptacles == ("rec_plate",) and s.instruction == f"put {store.name(s.objects[0])} on plate"
        assert math.dist(s.object_xy[0], s.receptacle_xy[0]) > 0.07
        objects.add(s.objects[0])
    assert len(objects) > 1, "the draws vary"
