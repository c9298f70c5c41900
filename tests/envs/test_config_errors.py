"""Bad configuration gives one clear error each (no simulator needed)."""

import pytest

from vla_gen_bench.envs.cameras import camera_spec
from vla_gen_bench.envs.robots import resolve_robot


@pytest.mark.parametrize("size", [(0, 224), (224, 10), (5000, 224), (224.5, 224)])
def test_invalid_camera_size(size):
    with pytest.raises(ValueError, match="invalid camera size"):
        camera_spec("default", size)


def test_unknown_camera():
    with pytest.raises(ValueError, match="unknown camera 'papr'; allowed"):
        camera_spec("papr")


def test_camera_size_override_keeps_the_view():
    cam = camera_spec("default", (128, 96))
    assert (cam.width, cam.height) == (128, 96) and cam.eye == camera_spec("default").eye


def test_unknown_robot_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'panda_stock'"):
        resolve_robot("panda_stok")


def test_widowx_without_assets_names_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download_asset widowx250s"):
        resolve_robot("widowx250s")


def test_no_vulkan_device_names_what_to_install():
    import os
    import subprocess
    import sys

    code = ("import os, sys\nfrom vla_gen_bench.envs import make_env\ntry:\n    make_env()\n"
            "except RuntimeError as e:\n    print(e, flush=True)\nos._exit(0)\n")  # fmt: skip
    env = dict(os.environ, VK_ICD_FILENAMES="/nonexistent/icd.json")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "no usable Vulkan rendering device" in out.stdout and "mesa-vulkan-drivers" in out.stdout
