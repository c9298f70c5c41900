import json

import numpy as np
import pytest

from vla_gen_bench.assets import procedural
from vla_gen_bench.assets.store import AssetError, AssetStore


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return AssetStore.build_procedural(tmp_path_factory.mktemp("pack"))


def test_counts_meet_the_catalog_minimums(pack):
    assert len(pack.ids("object", "train")) >= 16 and len(pack.ids("object", "unseen")) >= 9
    assert pack.ids("receptacle", "train") == ["rec_plate"] and len(pack.ids("receptacle", "unseen")) >= 16
    assert len(pack.ids("table", "train")) >= 16 and len(pack.ids("table", "unseen")) >= 5
    assert len(pack.ids("overlay")) >= 16


@pytest.mark.parametrize("kind", ["object", "receptacle", "table"])
def test_train_and_unseen_pools_are_disjoint(pack, kind):
    train, unseen = pack.ids(kind, "train"), pack.ids(kind, "unseen")
    assert not set(train) & set(unseen)
    names_train = {pack.name(i) for i in train}
    names_unseen = {pack.name(i) for i in unseen}
    assert not names_train & names_unseen, "an unseen asset must not share a name with a training asset"
    assert len(names_train | names_unseen) == len(train) + len(unseen), "names must be unique"


def test_unseen_objects_use_shapes_absent_from_training(pack):
    shapes = lambda split: {pack.entry(i).params["shape"] for i in pack.ids("object", split)}  # noqa: E731
    assert not shapes("train") & shapes("unseen")


def test_unseen_tables_use_material_families_absent_from_training(pack):
    fam = lambda split: {pack.entry(i).params["family"] for i in pack.ids("table", split)}  # noqa: E731
    assert not fam("train") & fam("unseen")


def test_build_is_deterministic(pack, tmp_path):
    again = AssetStore.build_procedural(tmp_path / "again")
    assert again.pack_hash == pack.pack_hash
    for i in pack.ids("table")[:3]:
        assert np.array_equal(again.image(i), pack.image(i))


def test_objects_fit_the_panda_gripper(pack):
    for i in pack.ids("object"):
        shape = pack.shape(i)
        x, y, yaw = shape.grasp_pose
        lo, hi = shape.bounds
        width = (hi - lo)[0] if abs(np.cos(yaw)) > 0.5 else (hi - lo)[1]
        assert width <= 0.075, f"{i} is {width:.3f} m across its grasp axis; the Panda opens 0.08 m"
        assert lo[2] == pytest.approx(0.0, abs=1e-6), f"{i}: object frame origin must be at its bottom"
        assert 0.02 <= hi[2] <= 0.09


def test_unknown_asset_id_suggests_the_closest(pack):
    with pytest.raises(AssetError, match="did you mean 'obj_red_cube'"):
        pack.entry("obj_red_cub")
    with pytest.raises(AssetError, match="unknown asset kind"):
        pack.ids("objects")
    with pytest.raises(AssetError, match="unknown asset pool 'test'"):
        pack.ids("object", "test")


def test_verify_detects_a_tampered_texture(pack, tmp_path):
    store = AssetStore.build_procedural(tmp_path / "p")
    assert store.verify() == []
    tid = store.ids("table")[0]
    from PIL import Image

    img = store.image(tid).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(store.root / store.entry(tid).file)
    problems = store.verify()
    assert len(problems) == 1 and tid in problems[0]


def test_malformed_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(AssetError, match="malformed asset pack manifest"):
        AssetStore.load(tmp_path)


def test_pack_built_by_older_code_is_rebuilt(tmp_path):
    store = AssetStore.procedural(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["code"] = "stale"
    manifest["entries"] = manifest["entries"][:3]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    again = AssetStore.procedural(tmp_path)
    assert again.pack_hash == store.pack_hash


def test_every_texture_family_renders():
    for spec in procedural.tables() + procedural.overlays():
        img = procedural.render_texture(spec, 32)
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert img.std() > 0.5 or spec.family == "plastic", f"{spec.id} renders flat"
