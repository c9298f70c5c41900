import math

import numpy as np
import pytest
import torch

from vla_gen_bench.envs import compose as C


def _look_down_camera(h=48, w=64, z=1.0, f=40.0):
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    # OpenCV camera looking straight down from (0, 0, z): x_cam = +x_world, y_cam = -y_world, z_cam = -z_world
    cam2world = np.eye(4)
    cam2world[:3, :3] = np.diag([1.0, -1.0, -1.0])
    cam2world[2, 3] = z
    return K, cam2world


def test_table_view_projects_the_plane_exactly():
    K, c2w = _look_down_camera()
    tex = np.zeros((100, 100, 3), np.uint8)
    tex[:50] = 200  # world x in [0, tile/2) mod tile is bright
    img = C.table_view(tex, K, c2w, 64, 48, tile_m=0.2, table_rect=(-1, 1, -1, 1))
    # the pixel column at u = w/2 + f * x / z sees world x; x = 0.05 is bright, x = 0.15 is dark
    assert img[24, int(32 + 40 * 0.05)].tolist() == [200] * 3
    assert img[24, int(32 + 40 * 0.15)].tolist() == [0] * 3


def test_table_view_outside_the_table_is_backdrop():
    K, c2w = _look_down_camera()
    img = C.table_view(
        np.full((8, 8, 3), 9, np.uint8), K, c2w, 64, 48, 0.2, (-0.1, 0.1, -0.1, 0.1), backdrop=(1, 2, 3)
    )
    assert img[0, 0].tolist() == [1, 2, 3] and img[24, 32].tolist() == [9, 9, 9]


def test_foreground_pixels_are_unchanged_by_a_background_swap():
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 255, (2, 16, 16, 3), generator=g, dtype=torch.uint8)
    seg = torch.randint(0, 5, (2, 16, 16, 1), generator=g, dtype=torch.int16)
    fg_ids = torch.tensor([1, 3], dtype=torch.int16)
    a, fg = C.compose(rgb, seg, fg_ids, torch.zeros_like(rgb))
    b, _ = C.compose(rgb, seg, fg_ids, torch.full_like(rgb, 255))
    assert torch.equal(a[fg], b[fg]) and torch.equal(a[fg], rgb[fg])
    assert (a[~fg] == 0).all() and (b[~fg] == 255).all()


def test_dynamic_texture_touches_only_the_foreground():
    img = torch.full((1, 20, 20, 3), 100, dtype=torch.uint8)
    fg = torch.zeros(1, 20, 20, dtype=torch.bool)
    fg[0, 5:10, 6:12] = True
    tex = torch.full((1, 8, 8, 3), 200, dtype=torch.uint8)
    out = C.dynamic_texture(img, fg, tex, torch.tensor([0.5]))
    assert (out[0][fg[0]] == 150).all()
    assert torch.equal(out[0][~fg[0]], img[0][~fg[0]])
    assert torch.equal(C.dynamic_texture(img, fg, tex, torch.tensor([0.0])), img)


def test_dynamic_noise_blends_the_whole_frame_and_follows_the_foreground():
    img = torch.zeros((1, 10, 10, 3), dtype=torch.uint8)
    tex = torch.zeros((1, 10, 10, 3), dtype=torch.uint8)
    tex[0, :, :5] = 255  # left half bright
    fg = torch.zeros(1, 10, 10, dtype=torch.bool)
    fg[0, 0:2, 0:2] = True  # box centre near the top-left: window starts in the bright half
    a = C.dynamic_noise(img, fg, tex, torch.tensor([0.3]))
    fg2 = torch.zeros_like(fg)
    fg2[0, 0:2, 8:10] = True  # box centre on the right: window starts in the dark half
    b = C.dynamic_noise(img, fg2, tex, torch.tensor([0.3]))
    assert a.float().mean() > b.float().mean()
    assert int(a.max()) == round(0.3 * 255)


@pytest.mark.parametrize("yaw", [0.0, math.pi / 4, math.pi / 2])
def test_yawed_half_extents(yaw):
    from vla_gen_bench.envs.put_on_receptacle import _yawed_half

    h = _yawed_half(torch.tensor([0.03, 0.01, 0.02]), yaw)
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    assert h.tolist() == pytest.approx([0.03 * c + 0.01 * s, 0.03 * s + 0.01 * c, 0.02])
