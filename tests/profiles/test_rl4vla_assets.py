"""The RL4VLA-layout asset source: the paper's splits, mesh geometry, content hash, and errors that say what to fetch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vla_gen_bench.assets.rl4vla import ENV_VAR, REPO_SUBDIR, find_root, load_rl4vla
from vla_gen_bench.assets.store import AssetError


def test_splits_follow_the_paper(rl4vla_store):
    s = rl4vla_store
    assert (len(s.ids("object", "train")), len(s.ids("object", "unseen"))) == (16, 9)
    assert (len(s.ids("receptacle", "train")), len(s.ids("receptacle", "unseen"))) == (1, 16)
    assert (len(s.ids("table", "train")), len(s.ids("table", "unseen"))) == (16, 5)
    assert len(s.ids("overlay")) == 16
    assert (
        s.name(s.ids("object", "train")[0]) == "carrot"
        and s.name(s.ids("object", "unseen")[0]) == "travel cup"
    )
    assert [s.name(r) for r in s.ids("receptacle", "train")] == ["plate"]
    # overlay pool = textures of table entries 2-17 (RL4VLA idx 1-16)
    assert [s.entry(o).params["rl4vla"] for o in s.ids("overlay")] == [f"{i:03d}.png" for i in range(2, 18)]


def test_mesh_assets_rest_on_their_frame_and_use_model_db_fields(rl4vla_store, rl4vla_dir):
    s = rl4vla_store
    db = json.loads((rl4vla_dir / "more_carrot" / "model_db.json").read_text())
    for oid in s.ids("object"):
        a = s.shape(oid)
        key = s.entry(oid).params["rl4vla"]
        lo, hi = a.bounds
        assert lo[2] == pytest.approx(0.0) and hi[2] > 0
        assert np.allclose(hi - lo, np.subtract(db[key]["bbox"]["max"], db[key]["bbox"]["min"]))
        assert a.density == db[key]["density"] and a.collision_file.name == "collision.obj"
    third = s.shape(s.ids("object")[2])
    assert third.visual_file.name == "textured.obj"  # .obj before .dae before .glb, as RL4VLA loads them


def test_pack_hash_is_the_folder_content_hash_and_tracks_every_file(rl4vla_dir, tmp_path):
    a = load_rl4vla(rl4vla_dir)
    assert a.pack_hash == a.source["content_hash"] and len(a.pack_hash) == 16
    assert load_rl4vla(rl4vla_dir).pack_hash == a.pack_hash
    copy = shutil.copytree(rl4vla_dir, tmp_path / "carrot")
    assert load_rl4vla(copy).pack_hash == a.pack_hash  # content, not location
    coll = next((copy / "more_plate").glob("*/collision.obj"))
    coll.write_text(coll.read_text() + "\n# edited\n")
    assert load_rl4vla(copy).pack_hash != a.pack_hash
    assert a.verify() == []


def test_root_can_be_the_clone_or_the_env_var(rl4vla_dir, tmp_path, monkeypatch):
    clone = tmp_path / "RL4VLA"
    (clone / REPO_SUBDIR).parent.mkdir(parents=True)
    (clone / REPO_SUBDIR).symlink_to(rl4vla_dir, target_is_directory=True)
    assert find_root(clone) == clone / REPO_SUBDIR
    monkeypatch.setenv(ENV_VAR, str(rl4vla_dir))
    assert find_root(None) == rl4vla_dir
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(AssetError, match="git lfs"):
        find_root(None)
    with pytest.raises(AssetError, match="not in RL4VLA's layout"):
        find_root(tmp_path)


def test_missing_and_lfs_pointer_files_are_named(rl4vla_dir, tmp_path):
    copy = shutil.copytree(rl4vla_dir, tmp_path / "carrot")
    glb = next(p for p in sorted((copy / "more_carrot").glob("*/textured.glb")) if "003_" not in str(p))
    glb.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    (copy / "more_table" / "imgs" / "020_table 20_1.png").unlink()
    shutil.rmtree(next((copy / "more_plate").glob("005_*")))
    with pytest.raises(AssetError) as e:
        load_rl4vla(copy)
    msg = str(e.value)
    assert "git-lfs pointer" in msg and "git lfs pull" in msg
    assert "020_table 20_1.png" in msg and "005_" in msg and "collision.obj" in msg
    assert "github.com/gen-robot/RL4VLA" in msg


def test_too_few_items_for_the_paper_splits(rl4vla_dir, tmp_path):
    copy = shutil.copytree(rl4vla_dir, tmp_path / "carrot")
    db_path = copy / "more_carrot" / "model_db.json"
    db = json.loads(db_path.read_text())
    db_path.write_text(json.dumps(dict(list(db.items())[:16])))
    with pytest.raises(AssetError, match="16 train \\+ at least 1 unseen"):
        load_rl4vla(copy)
