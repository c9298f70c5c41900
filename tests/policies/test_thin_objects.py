"""Long, thin objects: the grasp is planned from the collision pieces, and the oracle holds them on both robots.

The objects live in a test-only pack (a synthetic RL4VLA-layout folder whose two unseen objects are replaced by a rod
and a spoon-like shape), so the built-in procedural pack, its catalog hash and the suite hashes stay as they are.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from tests.profiles.rl4vla_folder import _write_item, write_rl4vla_folder
from vla_gen_bench.assets.grasp import plan_grasp


def _rod():
    """A 10 cm rod, 1.8 cm thick, lying along y (one convex piece)."""
    import trimesh

    m = trimesh.creation.cylinder(radius=0.009, height=0.10, sections=24)
    m.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, (1, 0, 0)))
    return [m]


def _spoon():
    """An 11 cm spoon along y: a 1.4 cm wide handle (-0.02 < y < 0.045) and a 4.6 cm wide, flat bowl at y < -0.02;
    the bowl holds most of the volume, so the centre of mass is near the neck."""
    import trimesh

    handle = trimesh.creation.box((0.014, 0.065, 0.010))
    handle.apply_translation((0.0, 0.0125, 0.0))
    bowl = trimesh.creation.cylinder(radius=0.023, height=0.007, sections=24)
    bowl.apply_translation((0.0, -0.043, -0.0015))
    return [handle, bowl]


def _bottom_up(pieces):
    lo = min(float(p.bounds[0][2]) for p in pieces)
    return [np.asarray(p.vertices) - (0, 0, lo) for p in pieces]


def test_rod_is_grasped_at_its_middle_across_its_axis_at_half_height():
    g = plan_grasp(_bottom_up(_rod()))
    assert abs(g.x) < 0.004 and abs(g.y) < 0.006
    assert abs(math.sin(g.yaw)) < 0.05  # fingers close along x, across the rod (its axis is y)
    assert g.z == pytest.approx(0.009, abs=0.002)  # the rod's widest level: its axis
    assert g.width == pytest.approx(0.018, abs=0.002)


def test_spoon_is_grasped_on_its_handle_clear_of_the_bowl():
    g = plan_grasp(_bottom_up(_spoon()))
    assert abs(math.sin(g.yaw)) < 0.05  # across the handle
    assert abs(g.x) < 0.003
    assert -0.02 + 0.015 < g.y < 0.045 - 0.005  # on the handle, the pads (1.5 cm either side) off the bowl
    assert g.width == pytest.approx(0.014, abs=0.002)
    assert 0.0 < g.z < 0.010  # within the handle's height


def test_bounding_box_centre_would_be_wrong_for_the_spoon():
    """The reason for planning from the pieces: the box centre of a spoon lies where the bowl meets the handle."""
    pts = np.concatenate(_bottom_up(_spoon()))
    centre_y = (pts[:, 1].min() + pts[:, 1].max()) / 2
    assert -0.02 - 0.005 < centre_y < -0.02 + 0.015  # at the neck: a pad there rests on the bowl
    assert plan_grasp(_bottom_up(_spoon())).y > centre_y + 0.008


@pytest.fixture(scope="module")
def thin_store(tmp_path_factory):
    """A synthetic RL4VLA-layout pack whose unseen objects 22 and 23 are the rod and the spoon."""
    from vla_gen_bench.assets.rl4vla import load_rl4vla

    root = write_rl4vla_folder(tmp_path_factory.mktemp("thin") / "carrot")
    db_path = root / "more_carrot" / "model_db.json"
    db = json.loads(db_path.read_text())
    for key, name, pieces in (
        ("022_champagne glass_1", "rod", _rod()),
        ("023_kitchen spoon_1", "spoon", _spoon()),
    ):
        import trimesh

        entry = _write_item(
            root / "more_carrot" / key, pieces, trimesh.util.concatenate(pieces), [120, 120, 200]
        )
        db[key] = {"name": name, **entry, "scales": [1.0], "density": 600.0}
    db_path.write_text(json.dumps(db, indent=2))
    return load_rl4vla(root)


def test_pack_assets_carry_the_planned_grasp(thin_store):
    by_name = {thin_store.name(i): thin_store.shape(i) for i in thin_store.ids("object")}
    rod, spoon = by_name["rod"], by_name["spoon"]
    assert rod.grasp_height == pytest.approx(0.009, abs=0.002)
    lo, hi = spoon.bounds
    assert spoon.grasp_pose[1] > (lo[1] + hi[1]) / 2 + 0.008  # on the handle, not at the bounding-box centre
    assert spoon.split == rod.split == "unseen"


def _widowx_missing() -> str | None:
    from vla_gen_bench.envs.robots import check_widowx_assets

    try:
        check_widowx_assets()
    except FileNotFoundError as e:
        return f"WidowX-250S files not installed ({str(e).split(';')[0]}); see docs/paper_profile.md"
    return None


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize(
    "robot",
    [
        "panda",
        pytest.param(
            "widowx250s",
            # open (issue 21): measured with the WidowX files, rod 2/3 and spoon 0/3 never grasped (1.4-1.8 cm wide
            # sections close without a grasp the paper's test accepts); the Panda holds all six
            marks=pytest.mark.xfail(
                reason="WidowX-250S does not yet grasp 1.4-1.8 cm thin objects", strict=False
            ),
        ),
    ],
)
def test_oracle_picks_and_places_thin_objects(thin_store, robot):
    if robot == "widowx250s" and (why := _widowx_missing()):
        pytest.skip(why)
    from vla_gen_bench.envs.profiles import get_profile
    from vla_gen_bench.eval.runner import make_env, run_episode
    from vla_gen_bench.policies.scripted import ScriptedPolicy

    prof = get_profile("rl4vla")
    env = make_env(asset_store=thin_store, **prof.env_kwargs(robot=robot, camera="fast"))
    by_name = {thin_store.name(i): i for i in thin_store.ids("object")}
    failures = []
    try:
        for name in ("rod", "spoon"):
            for k in range(3):  # yaws 0, 45 and 90 degrees among them
                spec = prof.episode("ind", 0, k, thin_store)
                spec = dataclasses.replace(spec, objects=(by_name[name], *spec.objects[1:]))
                r = run_episode(env, ScriptedPolicy(), seed=k, episode=spec)
                if not r.success_at_end:
                    failures.append((name, k, spec.object_yaw[0], r.failure))
    finally:
        env.close()
    assert not failures, f"oracle failed on thin objects with {robot}: {failures}"
