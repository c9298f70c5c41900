"""The commands end to end: render the simulated table, generate a pack with tiny models, evaluate with it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from tests.assets.helpers import DEFAULT_VIEW

pytestmark = [pytest.mark.slow, pytest.mark.sim]


def test_default_view_is_the_env_camera():
    from vla_gen_bench.envs.table_render import view_spec

    assert view_spec("default") == DEFAULT_VIEW
    fast, paper = view_spec("fast"), view_spec("paper")
    assert (fast["fov_y"], fast["eye"]) == (DEFAULT_VIEW["fov_y"], DEFAULT_VIEW["eye"]) and fast[
        "width"
    ] == 128
    assert (paper["width"], paper["height"]) == (640, 480) and paper["fov_y"] == pytest.approx(
        2 * math.atan(240 / 623.588)
    )


def test_generate_tables_command_makes_a_pack_the_env_uses(tmp_path, tiny_sd, monkeypatch):
    from vla_gen_bench.assets.commands import GenerateTables, generate_tables
    from vla_gen_bench.assets.packs import load_pack
    from vla_gen_bench.assets.sdgen import GateConfig, SDConfig
    from vla_gen_bench.envs import make_env, table_render

    root = tmp_path / "packs" / "tiny"
    sd = SDConfig(base_model=str(tiny_sd["base"]), canny_model=str(tiny_sd["canny"]), depth_model=str(tiny_sd["depth"]),
                  steps=2, resolution=64)  # fmt: skip
    cfg = GenerateTables(
        pack="tiny", out=root, n_train=2, n_unseen=1, seed=3, sd=sd, gates=GateConfig(edge_min=-1.0)
    )
    assert generate_tables(cfg, table_render) == 0

    # the render: the table fills most of the view, with depth, and its far edge gives the edge control
    with np.load(root / "control" / "render.npz") as z:
        rgb, depth, mask = z["rgb"], z["depth"], z["table_mask"]
        assert json.loads(str(z["view"]))["width"] == 64
    assert (
        rgb.shape == (64, 64, 3)
        and mask.mean() > 0.8
        and (depth[mask] > 0.2).all()
        and (depth[~mask] == 0).all()
    )
    canny = np.asarray(Image.open(root / "control" / "canny.png"))[..., 0] > 127
    assert canny.sum() > 20, "the table's far edge must appear in the edge control"
    ys, _ = np.nonzero(canny)
    assert ys.max() < 32, "the visible table edge is the far one, at the top of the view"

    m = json.loads((root / "manifest.json").read_text())
    assert m["view"] == {**DEFAULT_VIEW, "aligned": True} and m["counts"] == {"train": 2, "unseen": 1}
    # a second run finds everything done: no render, no model
    assert generate_tables(cfg, table_render) == 0
    assert json.loads((root / "manifest.json").read_text()) == m

    store = load_pack(root)
    env = make_env(asset_store=store)
    try:
        u = env.unwrapped
        obs, _ = env.reset(seed=0)
        table = u.episode_specs[0].table
        assert table in store.ids("table", "train")
        bg = u.table_image(table).cpu().numpy()
        assert np.array_equal(bg, store.image(table)), "the pack image is the background as is (same size)"
        img = obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy()
        same = (img == bg).all(-1)
        assert same.mean() > 0.5, "every pixel not showing the robot or an object comes from the pack's table"
    finally:
        env.close()


def test_import_tables_command(tmp_path):
    from vla_gen_bench.assets.packs import load_pack
    from vla_gen_bench.cli import main

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        img = np.zeros((480, 640, 3), np.uint8)
        img[:, :, i] = 200
        img[::40] = 255
        Image.fromarray(img).save(src / f"t{i}.png")
    root = tmp_path / "pack"
    args = ["assets", "import-tables", "--pack", "photos", "--from", str(src), "--out", str(root)]
    assert main([*args, "--unseen", "t2.png"]) == 0  # through the CLI, which wires in the simulator's view
    s = load_pack(root)
    assert s.ids("table", "unseen") == ["img_t2"] and s.image("img_t0").shape == (224, 224, 3)
    assert main(args) == 2  # exists: needs --overwrite
