"""Check that SAPIEN finds a Vulkan rendering device (exit 0) or explain what to install (exit 1).

``python -m vla_gen_bench.envs.probe`` is what set-up runs; it renders one tiny frame of an empty scene in a
subprocess-safe way (no ManiSkill import, ~1 s).
"""

from __future__ import annotations

import os
import sys

HOW_TO_FIX = (
    "no usable Vulkan rendering device: on a CPU-only Debian/Ubuntu machine install Mesa's lavapipe driver >= 23 "
    "(Debian bookworm: 'apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1'; scripts/setup.sh "
    "does this for you); on a GPU machine install the NVIDIA driver's Vulkan ICD"
)


def probe() -> str:
    """Render one 8x8 frame; return the device name or raise RuntimeError with how to fix it."""
    import sapien

    try:
        scene = sapien.Scene()
        cam = scene.add_camera("probe", 8, 8, 1.0, 0.01, 10.0)
        scene.update_render()
        cam.take_picture()
        cam.get_picture("Color")
        device = sapien.render.get_device_summary() if hasattr(sapien.render, "get_device_summary") else "ok"
    except RuntimeError as e:  # SAPIEN: "failed to find a rendering device"
        raise RuntimeError(f"{HOW_TO_FIX} (SAPIEN said: {e})") from e
    return str(device)


if __name__ == "__main__":
    try:
        print(probe())
    except RuntimeError as e:
        print(e, file=sys.stderr, flush=True)
        os._exit(1)  # SAPIEN can crash while tearing down a failed renderer; the answer is already printed
