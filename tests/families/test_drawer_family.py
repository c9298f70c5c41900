"""The drawer families in the catalog (``drawer_open``, ``drawer_close``): registry, factor applicability, disjoint
pools through the family's view of the store, manifests (determinism, pairing with the control arm, what each line
changes), suites, and (slow) the oracle through ``vgb evaluate``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from vla_gen_bench.assets import cabinets as CB
from vla_gen_bench.assets.family_store import family_assets_hash, family_store
from vla_gen_bench.families import DRAWER_LABELS, FAMILIES, get_family
from vla_gen_bench.variants import FAMILY_CATALOGS, SUITES, VariantError, episode, get_suite, get_variant
from vla_gen_bench.variants.catalog import PUSHBACK_STEP, check_variant
from vla_gen_bench.variants.factors import Distractor

MODES = ("open", "close")
DRAWER_LINES = [v.name for m in MODES for v in FAMILY_CATALOGS[f"drawer_{m}"]]
SETTINGS = ("ind", "unseen_table", "dyn_noise_strong", "unseen_handles", "unseen_cabinets", "unseen_instructions",
            "distractor", "unseen_positions", "unseen_robot_pose", "pushed_back")  # fmt: skip


def _in_box(front, xs, ys) -> bool:
    return xs[0] <= front[0] <= xs[1] and ys[0] <= front[1] <= ys[1]


def _front(spec) -> tuple[float, float]:
    """The drawer front's centre from the cabinet's centre (inverse of cabinets.cabinet_centre)."""
    (cx, cy), yaw = spec.receptacle_xy[0], spec.receptacle_yaw[0]
    depth = CB.get_cabinet(spec.receptacles[0]).depth
    return (cx - np.cos(yaw) * depth / 2, cy - np.sin(yaw) * depth / 2)


@pytest.mark.parametrize("mode", MODES)
def test_one_family_per_mode_on_the_drawer_env(mode):
    f = get_family(f"drawer_{mode}")
    assert f.env_id == "VgbDrawer-v1" and dict(f.env_kwargs) == {"mode": mode} and f.layout == "cabinet"
    assert f.control == f"drawer_{mode}_ind" and get_variant(f.control).family == f.name
    assert f.failure_labels == DRAWER_LABELS and f.train_template.startswith(mode)
    assert {v.name for v in FAMILY_CATALOGS[f.name]} == {f"drawer_{mode}_{s}" for s in SETTINGS}
    assert family_assets_hash(f) == CB.pack_hash()


def test_labels_and_pushback_step_are_the_envs():
    from vla_gen_bench.envs.drawer import DRAWER_FAILURE_LABELS

    assert DRAWER_LABELS == DRAWER_FAILURE_LABELS
    assert PUSHBACK_STEP == CB.PUSHBACK_STEP


def test_every_drawer_line_takes_only_its_familys_factors():
    for name in DRAWER_LINES:
        check_variant(get_variant(name))  # raises if a factor does not apply
    v = get_variant("drawer_open_distractor")
    bad = replace(v, distractor=Distractor("receptacle", "unseen"))
    with pytest.raises(VariantError, match="object distractors only"):
        episode(bad, 0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_handles_and_cabinets_are_disjoint_pools_in_the_familys_view(mode, store):
    view = family_store(f"drawer_{mode}", store)
    assert view.ids("object", "train") == CB.handle_ids("train")
    assert view.ids("object", "unseen") == CB.handle_ids("unseen")
    assert view.ids("receptacle", "train") == CB.cabinet_ids("train")
    assert view.ids("receptacle", "unseen") == CB.cabinet_ids("unseen")
    for kind in ("object", "receptacle"):
        train, unseen = view.ids(kind, "train"), view.ids(kind, "unseen")
        assert not set(train) & set(unseen)
        assert not {view.name(a) for a in train} & {view.name(a) for a in unseen}
    assert view.ids("table", "train") == store.ids("table", "train") and view.pack_hash == store.pack_hash
    assert view.entry("cab_red_narrow").split == "unseen" and view.name("handle_ring") == "ring pull"


@pytest.mark.parametrize("name", DRAWER_LINES)
def test_manifest_is_deterministic_and_paired_with_the_control(name, store):
    v = get_variant(name)
    control = get_variant(v.control)
    changed = {n for n, _ in v.changed_factors()}
    for k in range(4):
        spec = episode(v, 0, k, store)
        assert spec == episode(v, 0, k, store) and spec.meta["matched"] == "layout"
        ctl = episode(control, 0, k, store)
        if "objects" not in changed:
            assert spec.objects[0] == ctl.objects[0]
        if "receptacles" not in changed:
            assert spec.receptacles == ctl.receptacles
        if not changed & {"positions", "receptacles"}:
            assert spec.receptacle_xy == ctl.receptacle_xy and spec.receptacle_yaw == ctl.receptacle_yaw
        if "table" not in changed:
            assert spec.table == ctl.table
        if not changed & {
            "instructions",
            "receptacles",
            "objects",
        }:  # the instruction names cabinet and handle
            assert spec.instruction == ctl.instruction
    assert episode(v, 0, 0, store) != episode(v, 1, 0, store)


@pytest.mark.parametrize("mode", MODES)
def test_each_line_changes_what_it_says(mode, store):
    line = lambda s, k: episode(f"drawer_{mode}_{s}", 0, k, store)  # noqa: E731
    for k in range(8):
        ind = line("ind", k)
        assert ind.objects[0] in CB.handle_ids("train") and ind.receptacles[0] in CB.cabinet_ids("train")
        assert _in_box(_front(ind), CB.TRAIN_FRONT_X, CB.TRAIN_FRONT_Y)
        assert ind.instruction == CB.drawer_instruction(mode, ind.receptacles[0], ind.objects[0],
                                                        CB.TEMPLATES[(mode, "train")][0])  # fmt: skip
        assert (
            ind.overlay is None
            and ind.reposition is None
            and not any(ind.qpos_offset)
            and len(ind.objects) == 1
        )
        assert line("unseen_table", k).table in store.ids("table", "unseen")
        assert line("dyn_noise_strong", k).overlay.kind == "noise"
        assert line("unseen_handles", k).objects[0] in CB.handle_ids("unseen")
        cab = line("unseen_cabinets", k)
        assert cab.receptacles[0] in CB.cabinet_ids("unseen")
        assert np.allclose(
            _front(cab), _front(ind)
        )  # same front position, the cabinet's centre moves with depth
        assert line("unseen_instructions", k).instruction != ind.instruction
        d = line("distractor", k)
        assert len(d.objects) == 2 and d.objects[1] in store.ids("object", "train")
        assert (
            np.linalg.norm(np.subtract(d.object_xy[1], d.receptacle_xy[0]))
            > CB.get_cabinet(d.receptacles[0]).width / 2
        )
        front = _front(line("unseen_positions", k))
        assert not _in_box(front, CB.TRAIN_FRONT_X, CB.TRAIN_FRONT_Y)
        r = line("unseen_robot_pose", k)
        assert any(r.qpos_offset)
        assert CB.hand_clear_of_cabinet(r.qpos_offset, CB.get_cabinet(r.receptacles[0]), r.receptacle_xy[0],
                                        r.receptacle_yaw[0])  # fmt: skip
        assert line("pushed_back", k).reposition.at_step == PUSHBACK_STEP


def _pixels(cam, points) -> np.ndarray:
    """(n, 2) pixel (u, v) of world ``points`` (n, 3) in the policy camera ``cam`` (a look-at pinhole with a
    vertical field of view and the principal point at the image centre, as ManiSkill builds it; checked against
    the simulator's own camera matrices in tests/families/test_drawer.py)."""
    eye, target = np.asarray(cam.eye), np.asarray(cam.target)
    fwd = (target - eye) / np.linalg.norm(target - eye)
    left = np.cross([0.0, 0.0, 1.0], fwd)
    left /= np.linalg.norm(left)
    up = np.cross(fwd, left)
    d = np.asarray(points, dtype=float) - eye
    f = cam.height / 2 / np.tan(cam.fov_y / 2)
    x, y, z = d @ fwd, d @ left, d @ up
    return np.stack([cam.width / 2 - f * y / x, cam.height / 2 - f * z / x], -1)


def _in_frame(spec, mode: str) -> dict[str, np.ndarray]:
    """World points that must be in view at the first frame: the drawer front's centre and the handle's grip (the
    drawer closed for open, fully out for close) and the distractors' centres."""
    cab, handle = CB.get_cabinet(spec.receptacles[0]), CB.get_handle(spec.objects[0])
    (cx, cy), yaw = spec.receptacle_xy[0], spec.receptacle_yaw[0]
    out = cab.travel if mode == "close" else 0.0
    c, s = np.cos(yaw), np.sin(yaw)
    world = lambda p: (cx + c * (p[0] - out) - s * p[1], cy + s * (p[0] - out) + c * p[1], p[2])  # noqa: E731
    return {
        "front": np.array([world((-cab.depth / 2, 0.0, cab.height / 2))]),
        "handle": np.array([world(CB.grip_point(cab, handle))]),
        "distractor": np.array([(x, y, 0.03) for x, y in spec.object_xy[1:]]).reshape(-1, 3),
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("camera", ["fast", "default"])
def test_cabinet_handle_and_distractor_are_in_the_policy_cameras_view(mode, camera, store):
    """For the control arm's (and the distractor line's) first 16 episodes, the drawer front's centre, the handle
    and the distractor project inside the policy camera's image with a margin, and the camera's lines of sight to
    the front and the handle pass clear of the hand and wrist at rest: a policy that learns from images sees
    what it must act on."""
    from vla_gen_bench.envs.cameras import CAMERAS

    cam = CAMERAS[camera]
    margin = 0.08 * cam.width
    hand = CB.hand_points((0.0,) * 7)
    lo, hi = hand.min(0) - 0.01, hand.max(0) + np.array([0.01, 0.01, 0.15])  # the wrist stands above the hand
    along = np.linspace(0.0, 1.0, 200)[:, None]
    for line in (f"drawer_{mode}_ind", f"drawer_{mode}_distractor"):
        for k in range(16):
            spec = episode(line, 0, k, store)
            pts = _in_frame(spec, mode)
            assert len(pts["distractor"]) == (line.endswith("distractor"))
            for name, p in pts.items():
                uv = _pixels(cam, p)
                inside = (uv >= margin).all() and (uv[:, 0] <= cam.width - margin).all()
                assert inside and (uv[:, 1] <= cam.height - margin).all(), (line, k, name, uv.round(1))
            for name in ("front", "handle"):
                ray = np.asarray(cam.eye) + along * (pts[name][0] - np.asarray(cam.eye))  # (200, 3)
                hit = ((ray > lo) & (ray < hi)).all(1)
                assert not hit.any(), (line, k, name, "behind the hand")


def test_drawer_suites():
    drawer = [v.name for v in get_suite("drawer")]
    assert drawer == DRAWER_LINES and drawer[0] == "drawer_open_ind" and "drawer_close_ind" in drawer
    assert SUITES["drawer_open"][0] == "drawer_open_ind" and SUITES["drawer_close"][0] == "drawer_close_ind"
    skills = SUITES["skills"]
    assert set(DRAWER_LINES) <= set(skills)
    assert not set(DRAWER_LINES) & set(SUITES["default"]) and "drawer_open" not in {
        get_variant(n).family for n in SUITES["all"]
    }
    assert set(FAMILIES) >= {"drawer_open", "drawer_close"}


@pytest.mark.slow
def test_the_oracle_opens_and_closes_through_evaluate(tmp_path):
    """``vgb evaluate --policy scripted --suite drawer_open_ind,drawer_close_ind --episodes 2``: each mode's env is
    built, the oracle succeeds on every episode, and run.json records each line's family and control."""
    from vla_gen_bench.cli import main

    out = tmp_path / "run"
    rc = main(["evaluate", "--policy", "scripted", "--suite", "drawer_open_ind,drawer_close_ind", "--episodes", "2",
               "--videos", "0", "--out", str(out)])  # fmt: skip
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    for mode in MODES:
        rec = run["variants"][f"drawer_{mode}_ind"]
        assert rec["family"] == f"drawer_{mode}" and rec["family_assets_hash"] == CB.pack_hash()
    recs = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["success"] and r["failure"] == "success" for r in recs), recs
    assert {r["instruction"].split()[0] for r in recs} == {"open", "close"}
