"""Profiles as data: selection, quirk switches, the paper's camera geometry; the catalog never changes."""

from __future__ import annotations

import json
import math

import pytest

from vla_gen_bench.envs.rl4vla import RL4VLA_CAMERA_POSE, _qrot
from vla_gen_bench.eval.profiles import PAPER_QUIRKS, PROFILES, ProfileError, Quirks, get_profile
from vla_gen_bench.options import PolicyOptions, ProfileOptions
from vla_gen_bench.variants import CATALOG, catalog_hash, episode


def test_named_profiles_and_defaults():
    assert get_profile("vgb").env_kwargs() == {"robot": "panda", "camera": "default", "sim_freq": 100,
                                               "lighting": "default"}  # fmt: skip
    p = get_profile("rl4vla")
    assert p.env_kwargs() == {
        "robot": "widowx250s",
        "camera": "rl4vla",
        "sim_freq": 500,
        "lighting": "rl4vla",
        "rules": "rl4vla",
    }
    assert p.env_kwargs(robot="panda")["robot"] == "panda"
    # the paper's protocol, but none of its bugs or unmatched draws
    assert p.quirks == Quirks(eval_temperature=0.6)
    assert get_profile("rl4vla-paper").quirks == PAPER_QUIRKS
    for name in ("rl4vla", "rl4vla-paper"):
        q = get_profile(name)
        assert (q.episodes, q.seeds, q.quirks.eval_temperature) == (64, (0, 1, 2), 0.6)
        assert (q.reposition, q.third_cells, q.to_dict()["shader"]) == ("drop", "rl4vla", "default")
    v = get_profile("vgb")
    assert (v.episodes, v.seeds, v.reposition, v.third_cells, v.to_dict()["shader"]) == (8, (0,), "place", "vgb",
                                                                                         "minimal")  # fmt: skip


def test_quirks_from_the_profile_string():
    p = get_profile("rl4vla:eval_temperature=0.6, random_episodes=true")
    assert p.quirks.eval_temperature == 0.6 and p.quirks.random_episodes and not p.quirks.duplicate_target
    assert p.robot == "widowx250s" and p.name.startswith("rl4vla:")
    assert get_profile("rl4vla:success=once").quirks.success == "once"
    p = get_profile("rl4vla-paper:reposition=place,third_cells=vgb")
    assert (p.reposition, p.third_cells, p.quirks) == ("place", "vgb", PAPER_QUIRKS)


@pytest.mark.parametrize(
    "spec, match",
    [("rl4vl", "did you mean 'rl4vla'"), ("rl4vla:temperature=0.6", "did you mean 'eval_temperature'"),
     ("rl4vla:random_episodes=maybe", "true/false"), ("rl4vla:eval_temperature=-1", ">= 0"),
     ("rl4vla:success=sometimes", "'at_end' or 'once'"), ("rl4vla:reposition=teleport", "place, drop"),
     ("rl4vla:third_cell=vgb", "did you mean 'third_cells'")],
)  # fmt: skip
def test_bad_profile_strings_say_what_is_allowed(spec, match):
    with pytest.raises(ProfileError, match=match):
        get_profile(spec)


def test_temperature_quirk_applies_to_openvla_only_and_never_overrides_the_user():
    none, greedy = PolicyOptions(), PolicyOptions(temperature=0)
    p = get_profile("rl4vla-paper")
    assert p.policy_options("openvla:/ckpt", none).temperature == 0.6
    assert p.policy_options("openvla:/ckpt", greedy).temperature == 0.0
    assert p.policy_options("scripted", none) == none
    assert get_profile("rl4vla").policy_options("openvla:/ckpt", none).kwargs() == {"temperature": 0.6}
    assert get_profile("rl4vla:eval_temperature=0").policy_options("openvla:/ckpt", none) == none


def test_typed_profile_options_give_run_json_string_and_read_back():
    """--profile rl4vla --profile.random-episodes True is the typed spelling of rl4vla:random_episodes=true; run.json
    records the canonical string, which get_profile reads back to the same profile."""
    typed = get_profile("rl4vla", ProfileOptions(random_episodes=True, reposition="place"))
    assert typed.name == "rl4vla:random_episodes=true,reposition=place"
    assert get_profile(typed.name) == typed == get_profile("rl4vla:reposition=place, random_episodes=true")
    assert (typed.quirks.random_episodes, typed.reposition, typed.robot) == (True, "place", "widowx250s")
    assert get_profile("rl4vla:success=once", ProfileOptions(success="at_end")).quirks.success == "at_end"
    assert get_profile("vgb", ProfileOptions()) is PROFILES["vgb"]


def test_success_quirk():
    assert get_profile("rl4vla").success(False, True) is False
    assert get_profile("rl4vla:success=once").success(False, True) is True


def test_fixed_manifests_by_default_random_draws_as_a_switch(store):
    ours, paper = get_profile("rl4vla"), get_profile("rl4vla:random_episodes=true")
    for name in ("ind", "unseen_table", "unseen_objects"):
        assert ours.episode(name, 0, 3, store) == episode(name, 0, 3, store)
    # variants without a third cell are the benchmark's manifests under every profile
    assert get_profile("rl4vla:third_cells=vgb").episode("multi_object_seen", 0, 3, store) == episode(
        "multi_object_seen", 0, 3, store
    )
    a = [paper.episode("unseen_table", 0, k, store) for k in range(8)]
    assert a == [paper.episode("unseen_table", 0, k, store) for k in range(8)]  # deterministic (resumable)
    ctrl = [paper.episode("ind", 0, k, store) for k in range(8)]
    # no longer matched to the control arm: the base draws differ
    assert (
        sum(x.object_xy == c.object_xy and x.objects == c.objects for x, c in zip(a, ctrl, strict=True)) < 4
    )
    assert all(x.meta["matched"] == "none" and x.meta["seed"] == 0 for x in a)


def test_duplicate_target_quirk_only_in_the_unseen_multi_object_variant(store):
    on = get_profile("rl4vla:duplicate_target=true")
    n = 400
    single = [on.episode("multi_object_unseen", 0, k, store) for k in range(n)]
    dup = [s for s in single if len(s.objects) == 1]
    rate = 1 / (len(store.ids("object", "unseen")) - 1)
    assert abs(len(dup) / n - rate) < 0.06 and dup
    for s in dup:
        full = episode("multi_object_unseen", 0, s.meta["episode"], store, third_cells="rl4vla")
        assert (
            s.objects == full.objects[:1] and s.object_xy == full.object_xy[1:2]
        )  # target at the distractor cell
    assert all(len(on.episode("multi_object_seen", 0, k, store).objects) == 2 for k in range(50))
    assert all(
        len(get_profile("rl4vla").episode("multi_object_unseen", 0, k, store).objects) == 2 for k in range(50)
    )


def test_profiles_never_change_the_catalog(store):
    before = catalog_hash(store=store)
    for name in PROFILES:
        get_profile(name).episode("reposition", 0, 0, store)
    assert catalog_hash(store=store) == before and len(CATALOG) == len({v.name for v in CATALOG})


def test_paper_camera_looks_down_43_5_degrees_at_the_workspace():
    from vla_gen_bench.episode import GRID_CENTER

    p, q = RL4VLA_CAMERA_POSE[:3], RL4VLA_CAMERA_POSE[3:]
    fwd = _qrot(q, (1.0, 0.0, 0.0))
    assert math.degrees(math.asin(-fwd[2])) == pytest.approx(43.5, abs=0.2)
    t = -p[2] / fwd[2]
    hit = (p[0] + t * fwd[0], p[1] + t * fwd[1])
    assert math.dist(hit, GRID_CENTER) < 0.05  # the optical axis meets the table inside the 15 cm grid


def test_the_papers_protocol_is_the_rl4vla_default_and_run_json_says_so(rl4vla_store, store, tmp_path):
    from vla_gen_bench.eval.evaluate import Evaluate, plan, run_config

    cfg = Evaluate(policy="openvla:/ckpt", out=tmp_path, suite="ind,reposition", profile="rl4vla")
    run = json.loads(json.dumps(run_config(cfg, rl4vla_store, {}).to_dict(), default=str))
    assert (run["episodes_per_seed"], run["seeds"], run["policy_args"]["temperature"]) == (64, [0, 1, 2], 0.6)
    assert run["defaults_from_profile"] == ["episodes", "seeds", "temperature"]
    ps = run["profile_settings"]
    assert (ps["episodes"], ps["seeds"], ps["quirks"]["eval_temperature"]) == (64, [0, 1, 2], 0.6)
    assert (ps["shader"], ps["reposition"], ps["third_cells"]) == ("default", "drop", "rl4vla")
    assert ps["rules"] == "rl4vla"  # RL4VLA's reset and success test
    fast = Evaluate(policy="random", out=tmp_path, suite="ind", profile="rl4vla", camera="fast")
    assert run_config(fast, rl4vla_store, {}).profile_settings["shader"] == "minimal"  # the camera in use
    assert len(plan(cfg, rl4vla_store)) == 2 * 3 * 64
    mine = Evaluate(policy="openvla:/ckpt", out=tmp_path, suite="ind", profile="rl4vla-paper", episodes=2,
                    seeds=(5,), policy_options=PolicyOptions(temperature=0))  # fmt: skip
    run = run_config(mine, rl4vla_store, {}).to_dict()
    assert (run["episodes_per_seed"], run["seeds"], run["policy_args"]["temperature"]) == (2, [5], 0)
    assert run["defaults_from_profile"] == [] and len(plan(mine, rl4vla_store)) == 2
    ours = Evaluate(policy="random", out=tmp_path, suite="ind")  # vgb keeps its own defaults
    run = run_config(ours, store, {}).to_dict()
    assert (run["episodes_per_seed"], run["seeds"], run["profile_settings"]) == (8, [0], None)
    vgb = get_profile("vgb")
    assert (vgb.episodes, vgb.seeds) == (8, (0,))  # what evaluate.protocol assumes without importing profiles


def test_paper_reposition_travels_with_the_episode_and_round_trips(store):
    from vla_gen_bench.episode import EpisodeSpec

    spec = get_profile("rl4vla-paper").episode("reposition", 0, 0, store)
    assert (spec.reposition.drop, spec.reposition.settle_s) == (0.1305, 0.1)
    stored = json.loads(json.dumps(spec.to_dict()))  # as JSON keeps it
    assert EpisodeSpec.from_dict(stored) == spec
    assert get_profile("rl4vla:reposition=place").episode("reposition", 0, 0, store).reposition.drop is None
    ours = episode("reposition", 0, 0, store).to_dict()["reposition"]
    assert set(ours) == {"at_step", "xy"}  # the vgb profile's episodes serialise (and hash) as before
