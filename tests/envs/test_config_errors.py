"""Bad configuration gives one clear error each (no simulator needed)."""

import pytest

from vla_gen_bench.envs.put_on_receptacle import camera_profile
from vla_gen_bench.envs.robots import resolve_robot


@pytest.mark.parametrize("size", [(0, 224), (224, 10), (5000, 224), (224.5, 224)])
def test_invalid_camera_size(size):
    with pytest.raises(ValueError, match="invalid camera size"):
        camera_profile("default", size)


def test_unknown_camera_profile():
    with pytest.raises(ValueError, match="unknown camera profile 'papr'; allowed"):
        camera_profile("papr")


def test_camera_size_override_keeps_the_view():
    cam = camera_profile("default", (128, 96))
    assert (cam.width, cam.height) == (128, 96) and cam.eye == camera_profile("default").eye


def test_unknown_robot_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'panda_stock'"):
        resolve_robot("panda_stok")


def test_widowx_without_assets_names_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download_asset widowx250s"):
        resolve_robot("widowx250s")
