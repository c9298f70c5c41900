"""The drawer family (``VgbDrawer-v1``): cabinet data, reset determinism, success on hand-set joint positions, the
push-back, the articulation's limits, and the scripted oracle (slow). Real simulation, one env per mode."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from vla_gen_bench.assets import cabinets as CB
from vla_gen_bench.episode import Reposition

PACK_HASH = "b4702f85b70841da"  # cabinets.pack_hash(); update it (and rerun the oracle) when an asset changes
ZERO = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)  # stay, gripper open
_ENVS: dict[str, object] = {}


@pytest.fixture(scope="module")
def drawer_env():
    """``make(mode)``: one shared VgbDrawer-v1 per mode for this module (each costs a render-pipeline compile)."""
    from vla_gen_bench.envs.drawer import make_drawer_env

    def make(mode: str = "open"):
        if mode not in _ENVS:
            _ENVS[mode] = make_drawer_env(mode)
        return _ENVS[mode]

    yield make
    for e in _ENVS.values():
        e.close()
    _ENVS.clear()


def episode(store, mode="open", setting="ind", seed=3, **kw):
    from vla_gen_bench.variants.factors import RobotInit

    spec = CB.drawer_episode(np.random.default_rng(seed), store, mode, setting, RobotInit.table())
    return replace(spec, **kw)


def set_joint(env, q: float):
    import torch

    u = env.unwrapped
    u.cabinet.set_qpos(torch.tensor([[q]]))
    u.cabinet.set_qvel(torch.zeros(1, 1))


# ---------------------------------------------------------------------- data (no simulator)
def test_pools_split_and_ids():
    for ids in (CB.cabinet_ids(), CB.handle_ids()):
        assert len(ids) == len(set(ids))
    assert all(i.startswith("cab_") for i in CB.cabinet_ids())
    assert all(i.startswith("handle_") for i in CB.handle_ids())
    for pool in (CB.cabinet_ids, CB.handle_ids):
        train, unseen = set(pool("train")), set(pool("unseen"))
        assert train and unseen and not train & unseen and train | unseen == set(pool())
    # unseen cabinets are unseen sizes, not only colours
    sizes = lambda split: {(c.depth, c.width, c.height) for c in CB.CABINETS if c.split == split}  # noqa: E731
    assert not sizes("train") & sizes("unseen")


def test_unknown_ids_say_what_is_allowed():
    with pytest.raises(KeyError, match="did you mean 'handle_round_knob'"):
        CB.get_handle("handle_round_knop")
    with pytest.raises(KeyError, match="cab_white_small"):
        CB.get_cabinet("cab_nope")


def test_handles_are_grippable_under_the_hand():
    """Every grip sits on the handle, out of the front, and at most HAND_CLEARANCE below every cabinet's top."""
    for h in CB.HANDLES:
        assert 0.015 < h.grip[0] <= h.reach, h.id  # out of the front, not beyond the handle's end
        assert h.grip_width < 0.07, h.id  # the Panda opens to 8 cm
        for c in CB.CABINETS:
            grip_z = CB.grip_point(c, h)[2]
            assert c.height - CB.HAND_CLEARANCE <= grip_z < c.height, (h.id, c.id)


def test_pack_hash_pins_the_assets():
    """Any change to a cabinet, a handle or the geometry changes the hash every oracle run records."""
    assert CB.pack_hash() == PACK_HASH
    changed = replace(CB.CABINETS[0], travel=0.1)
    saved = CB.CABINETS
    try:
        CB.CABINETS = (changed, *saved[1:])
        assert CB.pack_hash() != PACK_HASH
    finally:
        CB.CABINETS = saved


def test_start_poses_are_clear_of_the_cabinet(store):
    """Every setting's robot start keeps the hand out of the cabinet (forward kinematics; the offsets of
    unseen_robot_pose are drawn until they do), and the kinematics are the robots' rest pose."""
    from vla_gen_bench.envs.robots import REST_QPOS

    np.testing.assert_allclose(CB.PANDA_REST, REST_QPOS, atol=1e-6)
    for mode in ("open", "close"):
        for setting in CB.SETTINGS:
            for s in range(30):
                spec = episode(store, mode, setting, seed=s)
                cab = CB.get_cabinet(spec.receptacles[0])
                assert CB.hand_clear_of_cabinet(
                    spec.qpos_offset, cab, spec.receptacle_xy[0], spec.receptacle_yaw[0]
                )
                assert (any(spec.qpos_offset)) == (setting == "unseen_robot_pose")
    # a start inside the carcass is refused: a cabinet as tall as the hand is high, put where the hand is
    cab = replace(CB.get_cabinet("cab_white_small"), height=0.25)
    tcp = CB.tcp_position((0.0,) * 7)
    assert not CB.hand_clear_of_cabinet((0.0,) * 7, cab, (tcp[0], tcp[1] - 0.05), CB.BASE_YAW)


def test_episodes_are_deterministic_and_follow_their_setting(store):
    for mode in ("open", "close"):
        for setting in CB.SETTINGS:
            a = [episode(store, mode, setting, seed=s) for s in range(6)]
            assert a == [episode(store, mode, setting, seed=s) for s in range(6)]
            for spec in a:
                split_c = "unseen" if setting == "unseen_cabinets" else "train"
                split_h = "unseen" if setting == "unseen_handles" else "train"
                assert spec.receptacles[0] in CB.cabinet_ids(split_c)
                assert spec.objects[0] in CB.handle_ids(split_h)
                assert (len(spec.objects) == 2) == (setting == "distractor")
                assert (spec.reposition is not None) == (setting == "pushback")
                assert any(w in spec.instruction for w in ("drawer",))
                assert abs(spec.receptacle_yaw[0] - CB.BASE_YAW) <= max(CB.UNSEEN_YAW_JITTER) + 1e-9
    with pytest.raises(ValueError, match="allowed: open, close"):
        CB.drawer_episode(np.random.default_rng(0), store, "shut")
    with pytest.raises(ValueError, match="robot_offsets=RobotInit.table()"):
        CB.drawer_episode(np.random.default_rng(0), store, "open", "unseen_robot_pose")


def test_distractor_is_clear_of_the_drawer(store):
    """The distractor stands in front of the cabinet beside the drawer's path, on the robot's side (world -y, where
    the camera sees it below the hand), never in the drawer's path (the strip in front of the front)."""
    for s in range(40):
        spec = episode(store, "open", "distractor", seed=s)
        cab = CB.get_cabinet(spec.receptacles[0])
        (cx, cy), yaw = spec.receptacle_xy[0], spec.receptacle_yaw[0]
        dx, dy = np.subtract(spec.object_xy[1], (cx, cy))
        # into the cabinet frame: its x axis is the pull axis (the front at -depth/2), its y across the front
        along, across = math.cos(yaw) * dx + math.sin(yaw) * dy, -math.sin(yaw) * dx + math.cos(yaw) * dy
        assert across >= cab.width / 2 + CB.DISTRACTOR_GAP[0] - 1e-9  # beside the drawer's path
        assert along <= -cab.depth / 2 - CB.DISTRACTOR_AHEAD[0] + 1e-9  # in front of the front
        assert spec.object_xy[1][1] < cy  # on the robot's side


# ---------------------------------------------------------------------- simulation
@pytest.mark.sim
def test_constructor_refuses_what_it_cannot_do():
    from vla_gen_bench.envs.drawer import make_drawer_env

    with pytest.raises(ValueError, match="allowed: open, close"):
        make_drawer_env("ajar")
    with pytest.raises(ValueError, match="num_envs=1"):
        make_drawer_env("open", num_envs=2)


@pytest.mark.sim
def test_reset_is_deterministic_for_an_episode(drawer_env, store):
    env = drawer_env("open")
    spec = episode(store, "open", "distractor")
    states = []
    for seed in (0, 5):
        obs, info = env.reset(seed=seed, options={"episode": spec})
        for _ in range(3):
            obs, *_ = env.step(ZERO)
        p = env.unwrapped.privileged()[0]
        states.append((obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy(), p))
    (img_a, pa), (img_b, pb) = states
    np.testing.assert_array_equal(img_a, img_b)
    for k in ("handle_grip", "pull_axis", "cabinet_pose", "tcp_pose", "joint_position", "travel"):
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    assert pa["family"] == "drawer" and pa["mode"] == "open"
    assert float(pa["joint_position"]) == pytest.approx(0.0, abs=1e-6)
    assert env.unwrapped.instructions == [spec.instruction]
    # the grip point is where the spec put the cabinet: on its front, out along the pull axis
    cab = CB.get_cabinet(spec.receptacles[0])
    (cx, cy), yaw = spec.receptacle_xy[0], spec.receptacle_yaw[0]
    base = np.array([-0.615, 0.0])
    front = np.array([cx, cy]) + (cab.depth / 2) * np.array([-math.cos(yaw), -math.sin(yaw)]) - base
    out = float(np.dot(pa["handle_grip"][:2] - front, pa["pull_axis"][:2]))
    assert out == pytest.approx(CB.get_handle(spec.objects[0]).grip[0], abs=1e-4)


@pytest.mark.sim
def test_framing_projection_is_the_simulators_camera(drawer_env, store):
    """The pinhole the framing test (test_drawer_family) projects with puts world points on the pixels of the
    simulator's own policy camera (its OpenCV intrinsics and extrinsics)."""
    from tests.families.test_drawer_family import _pixels
    from vla_gen_bench.envs.cameras import POLICY_CAMERA

    env = drawer_env("open")
    env.reset(seed=0, options={"episode": episode(store, "open")})
    params = env.unwrapped.scene.sensors[POLICY_CAMERA].get_params()
    K = params["intrinsic_cv"][0].cpu().numpy()  # (3, 3)
    extr = params["extrinsic_cv"][0].cpu().numpy()  # (3, 4) world -> camera
    pts = np.array([[0.0, 0.0, 0.17], [-0.12, 0.1, 0.05], [0.05, -0.1, 0.0], [-0.3, 0.2, 0.1]])  # (4, 3)
    cam = (np.c_[pts, np.ones(len(pts))] @ extr.T) @ K.T  # (4, 3)
    np.testing.assert_allclose(_pixels(env.unwrapped.camera_spec, pts), cam[:, :2] / cam[:, 2:], atol=0.05)


@pytest.mark.sim
def test_forward_kinematics_match_the_simulated_start(drawer_env, store):
    """The start check's kinematics put the TCP where the simulator does, with and without arm offsets."""
    env = drawer_env("open")
    for s in (0, 1):
        spec = episode(store, "open", "unseen_robot_pose", seed=s)
        env.reset(seed=0, options={"episode": spec})
        tcp = env.unwrapped.agent.tcp.pose.p[0].cpu().numpy()
        np.testing.assert_allclose(tcp, CB.tcp_position(spec.qpos_offset), atol=2e-3)
    assert env.unwrapped.failure_labels[0] == "success"


@pytest.mark.sim
def test_success_and_labels_on_hand_set_joint_positions(drawer_env, store):
    from vla_gen_bench.envs.drawer import DRAWER_FAILURE_LABELS, OPEN_FRACTION

    env = drawer_env("open")
    spec = episode(store, "open")
    travel = CB.get_cabinet(spec.receptacles[0]).travel
    for q, success, label in ((0.0, False, "never_touched"), ((OPEN_FRACTION - 0.05) * travel, False, "never_touched"),
                              ((OPEN_FRACTION + 0.03) * travel, True, "success"), (travel, True, "success")):  # fmt: skip
        env.reset(seed=0, options={"episode": spec})
        set_joint(env, q)
        _, reward, _, _, info = env.step(ZERO)
        assert bool(info["success"][0]) is success, q
        assert DRAWER_FAILURE_LABELS[int(info["failure"][0])] == label, q
        assert float(info["joint_position"][0]) == pytest.approx(q, abs=2e-3)
        assert float(reward[0]) == pytest.approx(
            float(info["potential"][0]), abs=1e-6
        )  # phi_0 = 0 after reset
    # close mode: success when the drawer is in; it starts fully open
    env = drawer_env("close")
    spec = episode(store, "close")
    travel = CB.get_cabinet(spec.receptacles[0]).travel
    _, info = env.reset(seed=0, options={"episode": spec})
    assert float(info["joint_position"][0]) == pytest.approx(travel, abs=1e-4) and not bool(
        info["success"][0]
    )
    set_joint(env, 0.05 * travel)
    *_, info = env.step(ZERO)
    assert bool(info["success"][0])
    set_joint(env, 0.5 * travel)
    *_, info = env.step(ZERO)
    assert not bool(info["success"][0])
    assert DRAWER_FAILURE_LABELS[int(info["failure"][0])] == "undone"  # in once, out again at the end


@pytest.mark.sim
def test_joint_limits_and_the_drawer_stays_where_left(drawer_env, store):
    env = drawer_env("open")
    spec = episode(store, "open")
    travel = CB.get_cabinet(spec.receptacles[0]).travel
    env.reset(seed=0, options={"episode": spec})
    u = env.unwrapped
    lo, hi = u.cabinet.get_qlimits()[0, 0].tolist()
    assert (lo, hi) == pytest.approx((0.0, travel))
    set_joint(env, 0.4 * travel)
    for _ in range(5):
        *_, info = env.step(ZERO)
    assert float(info["joint_position"][0]) == pytest.approx(0.4 * travel, abs=2e-3)  # friction holds it
    # pushed hard past either end, the drawer stops at its limits
    import torch

    for v, bound in ((2.0, travel), (-2.0, 0.0)):
        set_joint(env, 0.5 * travel)
        for _ in range(3):
            u.cabinet.set_qvel(torch.tensor([[v]]))
            *_, info = env.step(ZERO)
        assert float(info["joint_position"][0]) == pytest.approx(bound, abs=5e-3)


@pytest.mark.sim
def test_push_back_returns_the_drawer_after_its_step(drawer_env, store):
    from vla_gen_bench.envs.drawer import DRAWER_FAILURE_LABELS

    env = drawer_env("open")
    spec = episode(store, "open", reposition=Reposition(3, (0.0, 0.0)))
    travel = CB.get_cabinet(spec.receptacles[0]).travel
    env.reset(seed=0, options={"episode": spec})
    set_joint(env, 0.8 * travel)
    qs = []
    for _ in range(4):
        *_, info = env.step(ZERO)
        qs.append(float(info["joint_position"][0]))
    assert qs[1] == pytest.approx(0.8 * travel, abs=2e-3)  # still open after action 2
    assert qs[2] == pytest.approx(0.0, abs=1e-3) and qs[3] == pytest.approx(
        0.0, abs=1e-3
    )  # closed after action 3
    assert bool(info["success_once"][0]) and not bool(info["success"][0])
    assert DRAWER_FAILURE_LABELS[int(info["failure"][0])] == "undone"


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "setting"), [("open", "ind"), ("open", "unseen_handles"), ("close", "pushback")]
)
def test_oracle_succeeds(drawer_env, store, mode, setting):
    from vla_gen_bench.envs.drawer import DRAWER_FAILURE_LABELS
    from vla_gen_bench.eval.runner import run_batch
    from vla_gen_bench.policies.scripted_drawer import DrawerScriptedPolicy

    env = drawer_env(mode)
    for seed in range(2):
        spec = episode(store, mode, setting, seed=seed)
        infos = []
        (res,) = run_batch(
            env, [DrawerScriptedPolicy()], [seed], [spec], on_step=lambda *a, infos=infos: infos.append(a[-1])
        )
        assert res.success, (mode, setting, seed, DRAWER_FAILURE_LABELS[int(infos[-1]["failure"][0])])
