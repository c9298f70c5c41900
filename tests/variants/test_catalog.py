"""The catalog, suites and manifests as data (no simulator): determinism, matching, pool disjointness, and that
each axis changes exactly what it claims."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from vla_gen_bench.episode import TRAIN_TEMPLATE, YAWS, cell_pairs, grid_cells
from vla_gen_bench.variants import (
    CATALOG,
    CONTROL,
    SUITES,
    TrainingPoolError,
    VariantError,
    catalog_hash,
    check_training_spec,
    episode,
    get_suite,
    get_variant,
    manifest,
    manifest_hash,
)
from vla_gen_bench.variants.catalog import Variant
from vla_gen_bench.variants.factors import PARAPHRASES, UNSEEN_YAWS, RobotInit

NAMES = [v.name for v in CATALOG]
K = 12  # episodes per check


def spec_dict(s) -> dict:
    d = s.to_dict()
    d.pop("meta")
    return d


def diff_fields(a, b) -> set[str]:
    da, db = spec_dict(a), spec_dict(b)
    return {k for k in da if da[k] != db[k]}


@pytest.mark.parametrize("name", NAMES)
def test_manifest_is_deterministic_and_round_trips(name, store):
    a = manifest(name, [0, 3], 4, store)
    b = manifest(name, [0, 3], 4, store)
    assert [e.spec for e in a] == [e.spec for e in b]
    assert manifest_hash(a) == manifest_hash(b)
    assert [(e.seed, e.episode) for e in a] == [(s, k) for s in (0, 3) for k in range(4)]
    for e in a:
        assert type(e.spec).from_dict(e.spec.to_dict()) == e.spec
    # different seeds give different episodes
    assert manifest_hash(manifest(name, [1], 4, store)) != manifest_hash(manifest(name, [0], 4, store))


# what each variant may change relative to the control arm's episode k (spec fields; meta excluded)
ALLOWED = {
    "unseen_table": {"table"},
    "unseen_objects": {"objects", "instruction"},
    "unseen_receptacles": {"receptacles", "instruction"},
    "unseen_instructions": {"instruction"},
    "multi_object_seen": {"objects", "object_xy", "object_yaw"},
    "multi_object_unseen": {"objects", "object_xy", "object_yaw", "instruction"},
    "distractor_receptacle": {"receptacles", "receptacle_xy"},
    "multi_receptacle_unseen": {"receptacles", "receptacle_xy", "instruction"},
    "unseen_positions": {"object_xy", "receptacle_xy", "object_yaw"},
    "positions_ring2": {"object_xy", "receptacle_xy", "object_yaw"},
}


def allowed(v: Variant) -> set[str]:
    if v.name in ALLOWED:
        return ALLOWED[v.name]
    if v.overlay is not None:
        return {"overlay"}
    if v.robot_init is not None:
        return {"qpos_offset"}
    if v.reposition is not None:
        return {"reposition"}
    return set()


@pytest.mark.parametrize("name", NAMES)
def test_each_variant_changes_only_what_its_axes_claim(name, store):
    v = get_variant(name)
    for k in range(K):
        s, ind = episode(v, 0, k, store), episode(CONTROL, 0, k, store)
        changed = diff_fields(s, ind)
        if s.meta["matched"] != "cells":  # a third cell could not be placed next to the control's pair
            changed -= {"object_xy", "receptacle_xy"}
        assert changed <= allowed(v), f"{name} episode {k} also changed {changed - allowed(v)}"
        # matched: the target keeps the control arm's cell and yaw whenever the axis allows
        if s.meta["matched"] == "cells":
            assert s.object_xy[0] == ind.object_xy[0] and s.receptacle_xy[0] == ind.receptacle_xy[0]
        if "object_yaw" not in allowed(v) or v.distractor is not None:
            assert s.object_yaw[0] == ind.object_yaw[0]
    if v.name != CONTROL:
        assert any(diff_fields(episode(v, 0, k, store), episode(CONTROL, 0, k, store)) for k in range(K)), \
            f"{name} never differs from the control arm"  # fmt: skip


def test_unseen_instruction_changes_only_the_prompt(store):
    for k in range(K):
        s, ind = episode("unseen_instructions", 0, k, store), episode(CONTROL, 0, k, store)
        assert dataclasses.replace(s, instruction=ind.instruction, meta={}) == dataclasses.replace(
            ind, meta={}
        )
        assert s.instruction != ind.instruction
        name = store.name(s.objects[0])
        assert name in s.instruction and store.name(s.receptacles[0]) in s.instruction


def test_pools_are_disjoint(store):
    for kind in ("object", "receptacle", "table"):
        train, unseen = set(store.ids(kind, "train")), set(store.ids(kind, "unseen"))
        assert train and unseen and not train & unseen
        names = {store.name(i) for i in train}
        assert not names & {store.name(i) for i in unseen}, (
            f"{kind}: an unseen asset shares a train asset's name"
        )
    assert TRAIN_TEMPLATE not in PARAPHRASES and len(set(PARAPHRASES)) >= 16
    assert not {t.lower().replace("the ", "") for t in PARAPHRASES} & {TRAIN_TEMPLATE}
    grid = {tuple(np.round(c, 6)) for c in grid_cells()}
    for ring in (1, 2):
        assert not grid & {tuple(np.round(c, 6)) for c in grid_cells(ring=ring)}
    assert not {round(y, 6) for y in UNSEEN_YAWS} & {round(y, 6) for y in YAWS}


def test_training_check_accepts_in_distribution_and_refuses_every_test_pool(store):
    for k in range(K):
        check_training_spec(episode(CONTROL, 0, k, store), store)
    for v in CATALOG:
        uses_test_pool = v.changed_factors() and not (v.distractor is not None and v.distractor.pool == "train"
                                                   and len(v.changed_factors()) == 1)  # fmt: skip
        if not uses_test_pool:
            continue
        with pytest.raises(TrainingPoolError):
            for k in range(K):  # some episodes may happen to avoid the test pool (e.g. a zero wrist offset)
                check_training_spec(episode(v, 0, k, store), store)


def test_training_check_names_the_overlap(store):
    s = episode("unseen_objects", 0, 0, store)
    with pytest.raises(TrainingPoolError, match="not in the training pool"):
        check_training_spec(s, store)
    s = episode("unseen_robot_pose", 0, 0, store)
    with pytest.raises(TrainingPoolError, match="joint offsets"):
        check_training_spec(s, store)


def test_paper_sizes(store):
    """The spaces the paper reports: 784 training pairs, 628 outer-ring pairs, 802,816 IND configurations."""
    assert len(cell_pairs(grid_cells())) == 784
    assert len(cell_pairs(grid_cells(ring=1))) == 628
    assert get_variant(CONTROL).n_configurations(store) == 16 * 1 * 16 * 784 * 4
    assert get_variant("unseen_table").n_configurations(store) == 16 * 5 * 784 * 4
    rows = RobotInit.table()
    assert not np.any(np.all(rows == 0, axis=1))
    assert np.all(np.abs(rows[:, 1] + rows[:, 3]) <= 0.25 + 1e-9)


def test_multi_object_episodes_are_well_formed(store):
    for name in (
        "multi_object_seen",
        "multi_object_unseen",
        "distractor_receptacle",
        "multi_receptacle_unseen",
    ):
        for k in range(K):
            s = episode(name, 0, k, store)
            ids = s.objects if "object" in name else s.receptacles
            assert len(ids) == 2 and ids[0] != ids[1] and store.name(ids[0]) != store.name(ids[1])
            xy = np.array(s.object_xy + s.receptacle_xy)
            d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)[np.triu_indices(3, 1)]
            assert d.min() > 0.07 - 1e-9, f"{name} ep {k}: cells too close {d}"
            assert store.name(ids[1]) not in s.instruction  # the distractor is never named


def test_reposition_target_is_far_from_start(store):
    for k in range(K):
        s = episode("reposition", 0, k, store)
        assert s.reposition.at_step == 5
        assert math.dist(s.reposition.xy, s.object_xy[0]) > 0.15
        assert math.dist(s.reposition.xy, s.receptacle_xy[0]) > 0.07


def test_unknown_names_fail_with_did_you_mean():
    with pytest.raises(VariantError, match="did you mean 'unseen_table'"):
        get_variant("unseen_tabel")
    with pytest.raises(VariantError, match="did you mean 'default'"):
        get_suite("defualt")
    assert [v.name for v in get_suite("ind,reposition")] == ["ind", "reposition"]


def test_suites(store):
    for name, members in SUITES.items():
        assert members and all(get_variant(m) for m in members), name
        assert members[0] == get_variant(members[0]).control, f"suite {name} must start with a control arm"
        for fam in {get_variant(m).family for m in members}:  # every family in a suite brings its control arm
            assert get_variant(members[0]).control == CONTROL or fam != "put_on"
            assert any(get_variant(m).control == m and get_variant(m).family == fam for m in members), (
                name,
                fam,
            )
    default = get_suite("default")
    assert len(default) == 16 and all(v.paper for v in default)
    axes = {v.axis for v in get_suite("smoke")}
    assert axes == {"in-distribution", "vision", "semantics", "execution"}


def test_catalog_hash_is_content_derived(store):
    h = catalog_hash(store=store)
    assert h == catalog_hash(store=store)
    changed = tuple(
        dataclasses.replace(v, summary=v.summary + ".") if v.name == "reposition" else v for v in CATALOG
    )
    assert catalog_hash(changed, store) != h
    assert catalog_hash(get_suite("smoke"), store) != catalog_hash(get_suite("default"), store)


def test_variant_cards_are_current(store):
    from vla_gen_bench.paths import repo_root
    from vla_gen_bench.variants.cards import stale_cards

    stale = stale_cards(repo_root() / "tasks", store)
    assert not stale, f"tasks/ cards are stale: {stale}; regenerate with 'vgb cards'"


def test_one_word_per_vocabulary():
    """A variant's split is train / test; the asset pools its factors draw from are train / unseen (one source)."""
    from typing import get_args

    from vla_gen_bench.assets.store import POOLS
    from vla_gen_bench.leaderboard.schema import enum_values
    from vla_gen_bench.variants.catalog import Split
    from vla_gen_bench.variants.factors import Pool

    assert get_args(Pool) == POOLS == ("train", "unseen")
    assert get_args(Split) == enum_values("split") == ("train", "test")
    assert {v.split for v in CATALOG} == set(get_args(Split))
    for v in CATALOG:
        for _, factor in v.factors():
            pool = getattr(factor, "split", getattr(factor, "pool", "train"))
            assert pool in POOLS, (v.name, factor)
