"""Table packs: verification of malformed packs, loading by name, camera checks, the importer, and the store."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.assets.helpers import DEFAULT_VIEW
from vla_gen_bench.assets import packs
from vla_gen_bench.assets.store import AssetError, AssetStore


def _photo(seed: int, w: int = 640, h: int = 480) -> np.ndarray:
    """A distinct 'photograph': a smooth two-colour gradient with a few stripes."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w)[None, :, None] * np.linspace(0.6, 1, h)[:, None, None]
    img = a * (1 - t) + b * t
    img[:, :: int(rng.integers(20, 60))] *= 0.7
    return img.astype(np.uint8)


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "rl4vla_tables"
    (src / "unseen").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_photo(i)).save(src / f"table_{i}.png")
    for i in range(4, 6):
        Image.fromarray(_photo(i)).save(src / "unseen" / f"stone_{i}.jpg", quality=95)
    (src / "notes.txt").write_text("not an image")
    return src


@pytest.fixture
def imported(tmp_path, photos):
    root = tmp_path / "packs" / "rl4vla"
    return root, packs.import_tables(photos, root, "rl4vla", DEFAULT_VIEW, unseen="unseen/*")


# ---------------------------------------------------------------------------- importer
def test_importer_makes_a_pack_at_the_camera_size(imported, photos, store):
    root, m = imported
    assert m["source"] == "import" and m["counts"] == {"train": 4, "unseen": 2}
    assert m["view"]["aligned"] is False and m["view"]["width"] == 224
    e = m["entries"][0]
    assert e["id"] == "img_table_0" and e["params"]["original"] == "table_0.png"
    assert e["params"]["original_size"] == [640, 480] and e["params"]["view"]["fit"] == "crop"
    s = packs.load_pack(root, base=store)
    assert s.ids("table", "unseen") == ["img_stone_4", "img_stone_5"]
    img = s.image("img_table_0")
    assert img.shape == (224, 224, 3)
    # crop: the centre 480x480 of the photograph, resized
    ref = np.asarray(Image.fromarray(_photo(0)[:, 80:560]).resize((224, 224), Image.LANCZOS))
    assert np.abs(img.astype(int) - ref).max() <= 1


def test_importer_is_deterministic_and_refuses_to_clobber(imported, photos, tmp_path):
    root, m = imported
    again = packs.import_tables(photos, tmp_path / "again", "rl4vla", DEFAULT_VIEW, unseen="unseen/*")
    assert again == m
    with pytest.raises(AssetError, match="--overwrite"):
        packs.import_tables(photos, root, "rl4vla", DEFAULT_VIEW)
    stretched = packs.import_tables(photos, root, "rl4vla", DEFAULT_VIEW, fit="stretch", overwrite=True)
    assert stretched["pack_hash"] != m["pack_hash"] and stretched["counts"] == {"train": 6, "unseen": 0}


def test_importer_errors(photos, tmp_path):
    with pytest.raises(AssetError, match="matches none"):
        packs.import_tables(photos, tmp_path / "a", "a", DEFAULT_VIEW, unseen="*marble*")
    with pytest.raises(AssetError, match="matches every image"):
        packs.import_tables(photos, tmp_path / "b", "b", DEFAULT_VIEW, unseen="*")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="no images"):
        packs.import_tables(tmp_path / "empty", tmp_path / "c", "c", DEFAULT_VIEW)
    shutil.copy(photos / "table_1.png", photos / "unseen" / "copy_of_1.png")
    with pytest.raises(AssetError, match="near-duplicate of img_table_1.*leak"):
        packs.import_tables(photos, tmp_path / "d", "d", DEFAULT_VIEW, unseen="unseen/*")


def test_imported_duplicates_within_a_split_are_warnings(photos, tmp_path):
    shutil.copy(photos / "table_1.png", photos / "table_9.png")
    m = packs.import_tables(photos, tmp_path / "p", "p", DEFAULT_VIEW, unseen="unseen/*")
    assert any("table_9.png is a near-duplicate of img_table_1" in w for w in m["warnings"])


# ---------------------------------------------------------------------------- malformed packs
def test_missing_image_is_a_clear_error(imported, store):
    root, m = imported
    (root / m["entries"][1]["file"]).unlink()
    with pytest.raises(
        AssetError, match=r"not intact:\n  img_table_1: image file missing: .*img_table_1.png"
    ):
        packs.load_pack(root, base=store)


def test_altered_image_is_a_clear_error(imported, store):
    root, m = imported
    path = root / m["entries"][0]["file"]
    img = np.array(Image.open(path))
    img[0, 0] ^= 1
    Image.fromarray(img).save(path)
    with pytest.raises(AssetError, match=r"img_table_0: image sha256 \w+\.\.\. does not match the manifest"):
        packs.load_pack(root, base=store)
    assert packs.load_pack(root, base=store, verify=False).ids("table")  # explicit opt-out still loads


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(pack_hash="0" * 16), "does not match the content .* manifest was edited"),
        (lambda m: m["entries"][0].update(split="test"), "unknown split 'test'"),
        (lambda m: m["entries"][0].update(kind="object"), "a table pack holds only tables"),
        (lambda m: m["entries"][0]["params"].pop("view"), r"params\['view'\] is missing"),
        (lambda m: m["entries"][0].update(file="../../etc/passwd"), "must be a path inside the pack"),
        (lambda m: m["entries"][0].update(colour="red"), "unexpected keyword argument 'colour'"),
        (lambda m: m.update(format="something-else"), "not a table pack manifest"),
        (lambda m: m.update(version=99), "version 99 is not supported"),
        (lambda m: m.pop("view"), r"missing \['view'\]"),
        (lambda m: [e.update(split="unseen") for e in m["entries"]], "no train tables"),
    ],
)
def test_malformed_manifests_are_clear_errors(imported, store, edit, message):
    root, _ = imported
    m = json.loads((root / "manifest.json").read_text())
    edit(m)
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(AssetError, match=message):
        packs.load_pack(root, base=store)


def test_unparseable_manifest_and_unknown_names(imported, store, monkeypatch, tmp_path):
    root, _ = imported
    monkeypatch.setenv("VGB_CACHE", str(root.parent.parent))  # packs_dir() = <tmp>/assets/packs
    target = packs.packs_dir() / "rl4vla"
    shutil.copytree(root, target)
    assert packs.list_packs() == ["rl4vla"]
    assert packs.load_pack("rl4vla", base=store).table_pack["name"] == "rl4vla"
    with pytest.raises(AssetError, match="unknown table pack 'rl4vlb'.*did you mean 'rl4vla'"):
        packs.load_pack("rl4vlb", base=store)
    (target / "manifest.json").write_text("{nope")
    with pytest.raises(AssetError, match="malformed table pack manifest"):
        packs.load_pack("rl4vla", base=store)
    with pytest.raises(AssetError, match="invalid pack name"):
        packs.validate_name("../escape")
    with pytest.raises(AssetError, match="is not a table pack"):
        packs.load_pack(tmp_path, base=store)


# ---------------------------------------------------------------------------- store and camera
def test_a_table_pack_replaces_every_procedural_table(imported, store):
    root, m = imported
    s = packs.load_pack(root, base=store)
    assert not set(s.ids("table")) & set(store.ids("table"))
    assert all(s.entry(i).source == "import" for i in s.ids("table"))
    assert s.ids("receptacle") == store.ids("receptacle")
    assert np.array_equal(s.image(s.ids("overlay")[0]), store.image(store.ids("overlay")[0]))
    assert s.path("img_table_0") == root / "tables" / "img_table_0.png"
    assert s.path(store.ids("overlay")[0]) == store.path(store.ids("overlay")[0])
    assert store.table_pack is None and s.table_pack["source"] == "import"
    with pytest.raises(AssetError, match="has no tables"):
        AssetStore.with_tables(store, [], root, {"name": "empty"})
    with pytest.raises(AssetError, match="clashes"):
        clash = packs.read_manifest(root)["entries"][0]
        AssetStore.with_tables(
            store, [type(clash)(**{**clash.__dict__, "id": store.ids("object")[0]})], root, {}
        )


def test_check_view_refuses_another_frustum(tmp_path, store):
    root = tmp_path / "p"
    (root / "tables").mkdir(parents=True)
    img = np.zeros((224, 224, 3), np.uint8)
    Image.fromarray(img).save(root / "tables" / "a.png")
    view = {**DEFAULT_VIEW, "aligned": True}
    e = packs.table_entry("sd_a", "train", "sd-controlnet", "a", {"view": view}, 0,
                          hashlib.sha256(img.tobytes()).hexdigest(), "x", "tables/a.png")  # fmt: skip
    packs.write_manifest(root, "p", "sd-controlnet", view, [e])
    s = packs.load_pack(root, base=store)
    packs.check_view(s, {**DEFAULT_VIEW, "width": 128, "height": 128})  # the 'fast' camera: same frustum
    with pytest.raises(AssetError, match="does not line up.*field of view"):
        packs.check_view(s, {**DEFAULT_VIEW, "fov_y": math.radians(60)})
    with pytest.raises(AssetError, match="aspect 224x224 vs 640x480"):
        packs.check_view(s, {**DEFAULT_VIEW, "width": 640, "height": 480})
    packs.check_view(store, {**DEFAULT_VIEW, "width": 640, "height": 480})  # no table pack: nothing to check
