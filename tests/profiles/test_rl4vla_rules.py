"""RL4VLA's reset and success rules (env ``rules="rl4vla"``, set by both rl4vla profiles), on constructed states of
the synthetic RL4VLA folder: the drop heights, the drop-and-settle before step 0 (objects rest tilted, the plate on
the table), and success measured at the model origins rather than the bounding-box centres."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.profiles.rl4vla_folder import BOX_ORIGIN_OFFSET
from vla_gen_bench.envs.rl4vla import RL4VLA_TABLE_TOP_Z, spawn_heights
from vla_gen_bench.variants import episode

ZERO = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)
BOX = "obj_001_carrot_simpler"  # a box whose origin is BOX_ORIGIN_OFFSET in +x of its bbox centre
PLATE = "rec_001_plate_simpler"  # a disc of radius 5.5 cm: xy tolerance 5.5 + 1 = 6.5 cm


def test_spawn_heights_are_the_papers_per_variant_family():
    up = lambda *zs: [round(z - RL4VLA_TABLE_TOP_Z, 6) for z in zs]  # noqa: E731
    assert spawn_heights(1, 1, False) == (up(0.95), up(0.95)) == ([0.080468], [0.080468])
    assert spawn_heights(2, 1, False) == (up(0.95, 1.0), up(0.92))  # MultiCarrot
    assert spawn_heights(1, 2, False) == (up(1.0), up(0.92, 0.96))  # MultiPlate
    assert spawn_heights(1, 1, True) == (up(0.95), up(0.92))  # PositionChangeTo
    assert spawn_heights(2, 2, False) == (up(1.0, 1.0), up(0.92, 0.96))  # no RL4VLA env: extras like the last


def test_our_table_top_is_rl4vlas_relative_to_the_robot_base():
    """RL4VLA's base stands at z = 0.870 over a table top at 0.869532 (where SIMPLER rests its plate): ours stands
    as high over our table top (z = 0), so every height the drop uses is the paper's to the micrometre."""
    from vla_gen_bench.envs.robots import WIDOWX_BASE_POSE

    assert RL4VLA_TABLE_TOP_Z == 0.869532
    assert WIDOWX_BASE_POSE[2] + RL4VLA_TABLE_TOP_Z == pytest.approx(0.870, abs=1e-9)


def test_the_table_collides_as_a_triangle_mesh_under_rl4vla_and_as_a_box_under_vgb(
    profile_env, vgb_rules_env
):
    """RL4VLA's arena is a non-convex triangle mesh, and PhysX's contacts with one differ from a box's (an object
    dropped at reset rests 0.4 deg off RL4VLA's on a box, 0.1 deg on a mesh): the rl4vla rules build the same top as
    a triangle mesh; the vgb rules keep the box."""
    import sapien

    def shapes(env):
        env.reset(seed=0)
        table = env.unwrapped.table._objs[0].find_component_by_type(sapien.physx.PhysxRigidStaticComponent)
        return table.collision_shapes

    (mesh,) = shapes(profile_env)
    assert isinstance(mesh, sapien.physx.PhysxCollisionShapeTriangleMesh)
    top = float(np.asarray(mesh.get_vertices())[:, 2].max() * mesh.get_scale()[2])
    assert top == pytest.approx(0.0, abs=1e-6)  # the table top, z = 0 as the box's
    (box,) = shapes(vgb_rules_env)
    assert isinstance(box, sapien.physx.PhysxCollisionShapeBox)


def test_profiles_set_the_rules_and_vgb_keeps_its_env_kwargs():
    from vla_gen_bench.eval.profiles import get_profile

    assert (
        get_profile("rl4vla").env_kwargs()["rules"]
        == get_profile("rl4vla-paper").env_kwargs()["rules"]
        == "rl4vla"
    )
    assert "rules" not in get_profile("vgb").env_kwargs()  # the vgb env is built exactly as before


def test_unknown_rules_are_refused(rl4vla_store):
    from vla_gen_bench.envs import make_env

    with pytest.raises(ValueError, match="unknown rules 'paper'; allowed: vgb, rl4vla"):
        make_env(asset_store=rl4vla_store, rules="paper")


def test_spawn_z_puts_the_model_origin_at_the_drop_height_above_the_mesh_lowest_point(
    profile_env, rl4vla_store
):
    from vla_gen_bench.assets.rl4vla import lowest_point

    u = profile_env.unwrapped
    box = rl4vla_store.shape(BOX)
    assert lowest_point(box) == pytest.approx(0.0, abs=1e-6)  # the bbox bottom is the mesh's lowest point
    assert u._origin_z(BOX, 0.0805) == pytest.approx(0.0805 - box.mesh_offset[2])  # origin 8.05 cm up
    # a drop height below the mesh's half height would put the mesh into the table: its lowest point clears it
    assert u._origin_z(BOX, 0.0) == pytest.approx(0.001)


def _rim_spec(store, centre_dx: float, yaw: float = 0.0):
    """The box with its bbox centre ``centre_dx`` from the plate centre along x, at ``yaw``. A
    ``distractor_receptacle`` episode, so that RL4VLA's heights there (MultiPlate: object 1.0, plate 0.92) let the
    plate land before the box."""
    spec = episode("distractor_receptacle", 0, 0, store)
    other = next(r for r in [*spec.receptacles[1:], *store.ids("receptacle")] if r != PLATE)
    rx, ry = spec.receptacle_xy[0]
    origin_dx = centre_dx + BOX_ORIGIN_OFFSET * np.cos(
        yaw
    )  # the bbox centre is BOX_ORIGIN_OFFSET in -x of it
    return replace(spec, objects=(BOX,), receptacles=(PLATE, other), object_yaw=(yaw,),
                   object_xy=((rx + origin_dx, ry),))  # fmt: skip


@pytest.fixture(scope="module")
def vgb_rules_env(rl4vla_store):
    """The profile's env with the vgb rules (bbox centres, no drop): the same state judged the other way."""
    from vla_gen_bench.envs import make_env
    from vla_gen_bench.eval.profiles import get_profile

    kw = get_profile("rl4vla").env_kwargs(robot="panda")
    kw.pop("rules")
    e = make_env(asset_store=rl4vla_store, **kw)
    yield e
    e.close()


def test_reset_drops_and_settles_the_objects_with_the_robot_parked_meanwhile(profile_env, rl4vla_store):
    """Dropped from RL4VLA's heights over the plate rim, the box comes to rest turned over before step 0 (not at
    its spawn rotation); the plate rests on the table; the success test's extents are the settled pose's."""
    from mani_skill.utils.geometry.rotation_conversions import quaternion_to_matrix

    profile_env.reset(seed=0, options={"episode": _rim_spec(rl4vla_store, -0.062)})
    u = profile_env.unwrapped
    obj, plate = u.objects[u.object_ids.index(BOX)], u.receptacles[u.receptacle_ids.index(PLATE)]
    assert float(obj.linear_velocity[0].norm()) < 0.01 and float(obj.angular_velocity[0].norm()) < 0.1
    up = quaternion_to_matrix(obj.pose.q[:1])[0, :, 2]
    tilt = float(np.degrees(np.arccos(min(1.0, float(up[2])))))
    assert tilt > 3.0, f"the box dropped over the plate rim should rest tilted (tilt {tilt:.2f} deg)"
    # the plate fell onto the table: its lowest point on the table top, not 0.5 mm above it
    assert float(plate.pose.p[0, 2]) == pytest.approx(0.0, abs=5e-4)
    # the robot is back at its base (it waited 1 m up during the drop)
    assert np.allclose(u.agent.robot.pose.p[0].cpu().numpy(), u.robot_spec.base_pose[:3], atol=1e-6)
    # the success test's extents: the bbox rotated by the settled pose (3-D), not by the spawn yaw
    half = u._obj_local[u.object_ids.index(BOX)][1]
    R = quaternion_to_matrix(obj.pose.q[:1])[0].abs()
    assert np.allclose(u._h_obj[0].cpu().numpy(), (R @ half).numpy(), atol=1e-6)
    assert float(u._h_obj[0, 2]) > float(half[2]) + 1e-3  # turned over: taller than the upright box


def _judge(env, spec, centre_dx: float) -> tuple[bool, float]:
    """Reset ``spec`` (the box away from the plate), then set the box flat on the plate at its settled rotation with
    its bbox centre ``centre_dx`` from the plate centre (yaw pi: the origin 2 cm farther out); success after 3 steps,
    and the origin's distance from the plate's."""
    import torch
    from mani_skill.utils.structs import Pose

    env.reset(seed=0, options={"episode": spec})
    u = env.unwrapped
    obj, plate = u.objects[u.object_ids.index(BOX)], u.receptacles[u.receptacle_ids.index(PLATE)]
    raw = obj.pose.raw_pose.clone()
    half_z = float(u._obj_local[u.object_ids.index(BOX)][1][2])
    top = float(plate.pose.p[0, 2]) + 2 * float(u._rec_local[u.receptacle_ids.index(PLATE)][1][2])
    raw[0, :3] = plate.pose.p[0] + torch.tensor([centre_dx - BOX_ORIGIN_OFFSET, 0.0, 0.0])
    raw[0, 2] = top + 0.0005  # the box's actor frame is its bottom
    raw[0, 3:] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # yaw pi
    obj.set_pose(Pose.create(raw))
    info = None
    for _ in range(3):
        *_, info = env.step(ZERO)
    assert half_z > 0 and float(obj.pose.p[0, 2]) == pytest.approx(top, abs=2e-3), (
        "the box should lie on the plate"
    )
    return bool(info["success"][0]), float((obj.pose.p[0, :2] - plate.pose.p[0, :2]).norm())


def test_success_is_measured_at_the_origins_under_rl4vla_and_at_bbox_centres_under_vgb(
    profile_env, vgb_rules_env, rl4vla_store
):
    """The box flat on the plate, overhanging the rim (bbox centre 5.0 cm from the plate centre, 5 mm inside the
    rim), its origin 7.0 cm out: RL4VLA tests the origins (7.0 > 5.5 + 1 cm: not placed), vgb the bbox centres."""
    spec = _rim_spec(rl4vla_store, -0.12)  # away from the plate at reset, then set down on it
    placed, d_origin = _judge(profile_env, spec, -0.050)
    assert d_origin == pytest.approx(0.070, abs=0.002)
    assert not placed, "RL4VLA measures at the origin, 7 cm from the plate centre: beyond 6.5 cm"
    placed, d_origin = _judge(vgb_rules_env, spec, -0.050)
    assert d_origin == pytest.approx(0.070, abs=0.002)
    assert placed, "vgb measures at the bbox centre, 5 cm from the plate centre: on the plate"
    placed, _ = _judge(
        profile_env, spec, -0.040
    )  # 1 cm further in, the origin at 6 cm: placed under rl4vla too
    assert placed
