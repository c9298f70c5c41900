"""Task families as data (no simulator): the registry, factor applicability, disjoint pools per family, the push
family's manifests, the committed hashes left alone, per-family statistics, records and leaderboard rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_gen_bench.assets import push as push_assets
from vla_gen_bench.assets.family_store import family_store
from vla_gen_bench.families import FAMILIES, Family, FamilyError, all_failure_labels, get_family
from vla_gen_bench.variants import (
    CATALOG,
    FAMILY_CATALOGS,
    SUITES,
    VARIANTS,
    Variant,
    VariantError,
    catalog_hash,
    episode,
    get_suite,
    get_variant,
    suite_hash,
)
from vla_gen_bench.variants.catalog import check_variant
from vla_gen_bench.variants.factors import ObjectPool, OverlayFactor, TablePool

# the committed values (tests/variants/test_hashes.py pins every suite; these are the ones families must not move)
PACK_HASH = "17ddd10b5bd7b635"
CATALOG_HASH = "08cc9a421bbdcef1"
DEFAULT_SUITE_HASH = "c665ea643094a875"
PUSH_ASSETS_HASH = "58dfb12d27e5e8c4"  # update only with the push family's results


def test_registry_and_did_you_mean():
    assert list(FAMILIES)[:2] == ["put_on", "push"]
    assert len({(f.env_id, f.env_kwargs) for f in FAMILIES.values()}) == len(
        FAMILIES
    )  # drawer: one env, 2 modes
    assert get_family("push").control == "push_ind" and get_family("put_on").control == "ind"
    with pytest.raises(FamilyError, match="did you mean 'push'"):
        get_family("psuh")
    for name, lines in FAMILY_CATALOGS.items():
        assert get_family(name).control in {v.name for v in lines}
        assert all(v.family == name for v in lines)


def test_put_on_hashes_and_pack_are_unchanged(store):
    """Every committed result carries these: the families must not move them."""
    assert store.pack_hash == PACK_HASH
    assert catalog_hash(store=store) == CATALOG_HASH
    assert suite_hash("default", store) == DEFAULT_SUITE_HASH
    assert tuple(v.name for v in CATALOG) == SUITES["all"]
    assert all(v.family == "put_on" and "family" not in v.definition() for v in CATALOG)
    assert get_variant("push_ind").definition()["family"] == "push"
    # the push family's own assets are hashed separately; its view of the store keeps the base pack's hash
    view = family_store("push", store)
    assert view.pack_hash == PACK_HASH and view.assets_hash == push_assets.pack_hash() == PUSH_ASSETS_HASH
    assert not set(view.ids("object")) & set(store.ids("object"))


def test_a_factor_that_does_not_apply_to_its_family_is_refused(monkeypatch):
    toy = Family("toy", "VgbToy-v1", "a toy", control="toy_ind", train_template="do {object} {receptacle}",
                 paraphrases=(), factors=("table",))  # fmt: skip
    monkeypatch.setitem(FAMILIES, "toy", toy)
    check_variant(Variant("toy_unseen_table", "vision", "test", "", table=TablePool("unseen"), family="toy"))
    with pytest.raises(VariantError, match="changes overlay, which does not apply to the toy family"):
        check_variant(
            Variant("toy_noise", "vision", "test", "", overlay=OverlayFactor("noise", 0.5), family="toy")
        )
    with pytest.raises(VariantError, match="must be named 'toy_<setting>'"):
        check_variant(Variant("noise", "vision", "test", "", table=TablePool("unseen"), family="toy"))
    with pytest.raises(VariantError, match="unknown family 'nope'"):
        check_variant(Variant("nope_x", "vision", "test", "", objects=ObjectPool("unseen"), family="nope"))


def test_every_catalog_line_passes_its_family_check():
    for v in VARIANTS:
        check_variant(v)
        assert {n for n, _ in v.changed_factors()} <= set(get_family(v.family).factors)


@pytest.mark.parametrize("family", list(FAMILY_CATALOGS))
def test_train_and_unseen_pools_are_disjoint_per_family(family, store):
    f = get_family(family)
    view = family_store(f, store)
    for kind in ("object", "receptacle"):
        train, unseen = set(view.ids(kind, "train")), set(view.ids(kind, "unseen"))
        assert train and unseen and not train & unseen, kind
        assert not {view.name(a) for a in train} & {view.name(a) for a in unseen}, kind
    assert f.train_template not in f.paraphrases and len(set(f.paraphrases)) == len(f.paraphrases) >= 10
    if family == "push":  # unseen shapes and colours are never seen in training
        for make in (push_assets.objects, push_assets.regions):
            tr = [a.params for a in make() if a.split == "train"]
            un = [a.params for a in make() if a.split == "unseen"]
            assert not {p["shape"] for p in tr} & {p["shape"] for p in un}
            assert not {p["color"] for p in tr} & {p["color"] for p in un}


def test_every_push_object_fits_inside_every_region():
    """The task can always be solved: the largest footprint radius is below the smallest region's inner radius
    (with room for the centre to be off by 2 cm)."""
    radius = max(float(np.linalg.norm(push_assets.footprint(o), axis=1).max()) for o in push_assets.objects())
    inner = min(push_assets.inner_radius(r) for r in push_assets.regions())
    assert radius + 0.02 < inner, (radius, inner)


def test_push_manifest_respects_the_family(store):
    f = get_family("push")
    view = family_store(f, store)
    for k in range(40):
        for name in ("push_ind", "push_unseen_positions", "push_reposition", "push_distractor"):
            e = episode(name, 0, k, store)
            assert e == episode(name, 0, k, store)  # a pure function of (variant, seed, episode)
            d = math.dist(e.object_xy[0], e.receptacle_xy[0])
            assert 0.10 - 1e-9 < d <= 0.20 + 1e-9, (name, k, d)
            assert e.objects[0] in view.ids("object") and e.receptacles[0] in view.ids("receptacle")
        ind = episode("push_ind", 0, k, store)
        assert ind.instruction == f.train_template.format(
            object=view.name(ind.objects[0]), receptacle=view.name(ind.receptacles[0])
        )
        assert ind.objects[0] in view.ids("object", "train") and ind.receptacles[0] in view.ids(
            "receptacle", "train"
        )
        # matched to the family's control arm: what a variant leaves alone is the control's episode
        tab = episode("push_unseen_table", 0, k, store)
        assert (tab.objects, tab.object_xy, tab.receptacle_xy) == (
            ind.objects,
            ind.object_xy,
            ind.receptacle_xy,
        )
        assert tab.table in store.ids("table", "unseen")
        obj = episode("push_unseen_objects", 0, k, store)
        assert obj.objects[0] in view.ids("object", "unseen") and obj.object_xy == ind.object_xy
        para = episode("push_unseen_instructions", 0, k, store)
        assert para.instruction != ind.instruction and para.objects == ind.objects


def test_skills_suite_has_every_family_with_its_control():
    skills = get_suite("skills")
    fams = {v.family for v in skills}
    assert fams == set(FAMILY_CATALOGS)
    for fam in fams:
        members = [v for v in skills if v.family == fam]
        assert get_family(fam).control in {v.name for v in members}
        if fam != "put_on":
            assert {v.axis for v in members} == {"in-distribution", "vision", "semantics", "execution"}


def test_the_paper_profile_refuses_another_family(tmp_path):
    from vla_gen_bench.eval.evaluate import EvalConfigError, Evaluate, check_protocol

    cfg = Evaluate(policy="scripted", out=tmp_path / "r", suite="ind,push_ind", episodes=1, seeds=(0,),
                   profile="rl4vla")  # fmt: skip
    with pytest.raises(EvalConfigError, match="has one family \\(put_on"):
        check_protocol(cfg)
    check_protocol(
        Evaluate(policy="scripted", out=tmp_path / "r", suite="ind,push_ind", episodes=1, seeds=(0,))
    )


def _rec(variant, seed, ep, success, family_labels=("success", "timeout"), axis=None):
    v = get_variant(variant)
    return {"variant": variant, "axis": axis or v.axis, "seed": seed, "episode": ep, "success": success,
            "success_once": success, "grasped": False, "failure": family_labels[0 if success else 1],
            "instruction": "x"}  # fmt: skip


def test_statistics_pair_each_variant_with_its_family_control():
    """Hand-computed: put_on ind 4/4, unseen_table 2/4; push_ind 2/4, push_unseen_table 4/4."""
    from vla_gen_bench.eval.stats import mover_mean, summarize, summarize_family

    recs = [_rec("ind", 0, k, True) for k in range(4)]
    recs += [_rec("unseen_table", 0, k, k < 2) for k in range(4)]
    recs += [_rec("push_ind", 0, k, k < 2) for k in range(4)]
    recs += [_rec("push_unseen_table", 0, k, True) for k in range(4)]
    s = summarize(recs, "ind")
    assert set(s.families) == {"put_on", "push"}
    assert s.variant("unseen_table").paired.diff == pytest.approx(-0.5)  # against ind
    assert s.variant("push_unseen_table").paired.diff == pytest.approx(0.5)  # against push_ind, not ind
    assert s.variant("push_ind").is_control and s.variant("push_ind").family == "push"
    assert s.families["push"].control == "push_ind"
    # per family: exactly the one-family summary; overall: the MOVER mean of the families' axis scores
    alone = summarize_family([r for r in recs if r["variant"].startswith("push")], "push_ind", family="push")
    assert s.families["push"].axis("vision").score == alone.axis("vision").score == 1.0
    vis = s.axis("vision")
    want = mover_mean([(p.axis("vision").score, p.axis("vision").ci_low, p.axis("vision").ci_high)
                       for p in s.families.values()])  # fmt: skip
    assert (vis.score, vis.ci_low, vis.ci_high) == pytest.approx(want)
    assert vis.score == pytest.approx(0.75) and vis.diff_vs_control == pytest.approx(0.0)
    # one family: no families breakdown, the summary of before
    one = summarize([r for r in recs if not r["variant"].startswith("push")], "ind")
    assert one.families == {} and one.axis("vision").diff_vs_control == pytest.approx(-0.5)
    assert set(s.variant("push_ind").failures) == set(get_family("push").failure_labels)


def test_records_and_leaderboard_rows_know_the_family_labels_and_column():
    from vla_gen_bench.leaderboard.validate import check_row

    assert set(get_family("push").failure_labels) <= set(all_failure_labels())
    assert (
        all_failure_labels()[: len(get_family("put_on").failure_labels)]
        == get_family("put_on").failure_labels
    )
    row = {"policy": "p", "policy_hash": "0123456789abcdef", "source": "run", "suite": "push",
           "suite_hash": "0123456789abcdef", "catalog_hash": "0123456789abcdef",
           "asset_pack_hash": "0123456789abcdef", "vgb_version": "0.1.0", "variant": "push_ind",
           "axis": "in-distribution", "split": "train", "n": "10", "successes": "7", "rate": "0.700000",
           "ci_low": "0.396778", "ci_high": "0.892209", "paired_n": "", "paired_drop": "", "paired_drop_low": "",
           "paired_drop_high": "", "date": "2026-12-07", "submitter": "me", "notes": "", "family": "push"}  # fmt: skip
    assert check_row(row, 2, "lb.csv") == []
    assert any("is of the push family" in p for p in check_row({**row, "family": ""}, 2, "lb.csv"))
    assert any("must be one of" in p for p in check_row({**row, "family": "pushh"}, 2, "lb.csv"))
    put_on = {**row, "variant": "ind", "family": ""}
    assert check_row(put_on, 3, "lb.csv") == []  # empty = put_on: the reported rows of before stay valid
    assert any("is of the put_on family" in p for p in check_row({**put_on, "family": "push"}, 3, "lb.csv"))


def test_the_push_success_geometry():
    """The footprint test the env uses (every outline point inside the region's convex outline)."""
    square = np.asarray(push_assets.region_polygon("square"))  # 11 cm, axis-aligned
    cube = next(o for o in push_assets.objects() if o.name == "red cube")
    pts = push_assets.footprint(cube)  # 4 cm cube
    assert push_assets.signed_inside(pts, square).min() == pytest.approx(0.055 - 0.02)
    assert push_assets.signed_inside(pts + [0.04, 0.0], square).min() == pytest.approx(-0.005)
    assert push_assets.signed_inside(pts + [0.10, 0.0], square).min() < -0.05
    turned = push_assets.rotate_xy(pts, (math.cos(math.pi / 8), 0.0, 0.0, math.sin(math.pi / 8)))  # 45 deg
    assert np.linalg.norm(turned, axis=1).max() == pytest.approx(0.02 * math.sqrt(2))
    assert push_assets.signed_inside(turned, square).min() == pytest.approx(0.055 - 0.02 * math.sqrt(2))


def test_training_episodes_of_the_push_family_are_checked_against_its_pools(store):
    from vla_gen_bench.variants import TrainingPoolError, check_training_spec

    check_training_spec(episode("push_ind", 0, 0, store), store, family="push")
    for name, what in (("push_unseen_objects", "not in the training pool"),
                       ("push_unseen_instructions", "does not use the training template"),
                       ("push_reposition", "repositioning is a test-time perturbation")):  # fmt: skip
        with pytest.raises(TrainingPoolError, match=what):
            check_training_spec(episode(name, 0, 0, store), store, family="push")
    with pytest.raises(TrainingPoolError):  # a push episode is no put_on training episode
        check_training_spec(episode("push_ind", 0, 0, store), store)
