"""Which Vulkan device SAPIEN renders the cameras with: the GPU when it has a Vulkan driver, else Mesa's lavapipe
(a CPU rasteriser, "llvmpipe" in SAPIEN's device list).

ManiSkill 3.0.1 takes a render backend string (``cpu``, ``cuda``, ``cuda:<i>``); given ``cuda`` on a machine whose
GPU has CUDA but no Vulkan driver it silently renders with lavapipe, and given ``cpu`` SAPIEN picks its best render
device, which is the GPU when there is one. :func:`resolve_render_device` chooses the backend and says which device
renders, so a run can record it; ``cpu`` is made to mean lavapipe by showing the Vulkan loader only lavapipe's
driver (``VK_ICD_FILENAMES``) while the env starts Vulkan (:func:`vulkan_drivers`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from dataclasses import dataclass
from typing import Any

from vla_gen_bench.options import RENDER_DEVICE_CHOICES, RenderDeviceError, check_render_device  # noqa: F401

CPU_RASTERISERS = ("llvmpipe", "lavapipe", "swiftshader")
"""Vulkan device names (lower case prefixes) of software rasterisers."""
LAVAPIPE_ICDS = ("/usr/share/vulkan/icd.d/lvp_icd*.json", "/etc/vulkan/icd.d/lvp_icd*.json")
VULKAN_DRIVER_VARS = (
    "VK_ICD_FILENAMES",
    "VK_DRIVER_FILES",
)  # the Vulkan loader's driver list (old, new name)


@dataclass(frozen=True)
class RenderDevice:
    """The render device of a run: what was asked, ManiSkill's ``render_backend`` for it, and the device used."""

    requested: str
    """The ``--render-device`` value (auto, cpu, cuda, cuda:<i>)."""
    backend: str
    """What ManiSkill's ``gym.make(render_backend=...)`` gets: ``cuda:<i>`` or ``cpu``."""
    name: str
    """The Vulkan device's name as SAPIEN reports it (``llvmpipe (LLVM 15.0.6, 256 bits)``, ``NVIDIA H100 ...``)."""
    cpu_rasteriser: bool
    """True when the device renders on the CPU (lavapipe / llvmpipe, SwiftShader)."""
    note: str | None = None
    """One line saying why ``auto`` fell back to lavapipe (None when it did not)."""

    def to_dict(self) -> dict[str, Any]:
        """run.json's ``render_device``."""
        return {"requested": self.requested, "name": self.name, "cpu_rasteriser": self.cpu_rasteriser,
                "backend": self.backend}  # fmt: skip


def is_cpu_rasteriser(name: str) -> bool:
    return name.strip().lower().startswith(CPU_RASTERISERS)


def vulkan_devices() -> list[dict[str, Any]]:
    """The Vulkan devices this process sees, from ``sapien.render.get_device_summary()``: name, render (whether
    SAPIEN can render with it), cuda_id (-1: none), present, ray_trace."""
    import sapien.render

    out = []
    for block in re.split(r"^(?=GPU: )", sapien.render.get_device_summary(), flags=re.M):
        m = re.match(r"GPU: (.*)", block)
        if m:
            num = {k: int(v) for k, v in re.findall(r"(\w+):?\s+(-?\d+)\s*$", block, flags=re.M)}
            out.append({"name": m.group(1).strip(), "render": num.get("Supported") == 1,
                        "cuda_id": num.get("cudaId", -1), "present": num.get("Present") == 1,
                        "ray_trace": num.get("rayTrace") == 1})  # fmt: skip
    return out


def best_render_device(devices: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The device SAPIEN renders with when given ``cpu`` (its findBestRenderDevice: CUDA, then a display, then a
    hardware GPU, then ray tracing)."""
    ok = [d for d in devices if d["render"]]
    key = lambda d: (d["cuda_id"] >= 0, d["present"], not is_cpu_rasteriser(d["name"]), d["ray_trace"])  # noqa: E731
    return max(ok, key=key) if ok else None


@contextlib.contextmanager
def vulkan_drivers(requested: str):
    """For ``--render-device cpu``: the Vulkan loader sees lavapipe's driver alone inside this block (the
    environment is restored after it). It acts only where this process starts Vulkan inside the block; a process
    that already started it keeps its devices (:func:`render_device_used` notices)."""
    found = sorted(p for pattern in LAVAPIPE_ICDS for p in glob.glob(pattern)) if requested == "cpu" else []
    if not found:
        yield
        return
    saved = {k: os.environ.get(k) for k in VULKAN_DRIVER_VARS}
    os.environ.update({k: found[0] for k in VULKAN_DRIVER_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _no_lavapipe(devices: list[dict[str, Any]]) -> RenderDeviceError:
    seen = ", ".join(d["name"] for d in devices) or "no Vulkan device at all"
    return RenderDeviceError(f"no lavapipe Vulkan device to render with on the CPU (this process sees: {seen}); "
                             f"install Mesa's Vulkan drivers (apt install mesa-vulkan-drivers)")  # fmt: skip


def resolve_render_device(requested: str = "auto") -> RenderDevice:
    """The render device for ``--render-device requested``; RenderDeviceError when it cannot be had.

    ``auto``: the first CUDA GPU SAPIEN can render with, else lavapipe (with a one-line ``note`` saying why);
    ``cpu``: lavapipe; ``cuda`` / ``cuda:<i>``: that GPU, which must have a Vulkan driver.
    """
    check_render_device(requested)
    import sapien

    with vulkan_drivers(requested):
        devices = vulkan_devices()
    if requested in ("auto", "cuda") or requested.startswith("cuda:"):
        try:
            dev = sapien.Device("cuda" if requested == "auto" else requested)
        except RuntimeError:
            dev = None
        if dev is not None and dev.can_render():
            return RenderDevice(requested, f"cuda:{dev.cuda_id}", dev.name, is_cpu_rasteriser(dev.name))
        if dev is None:
            why = "no CUDA GPU" if requested == "auto" else f"no CUDA device {requested!r}"
        else:
            why = (f"CUDA GPU {dev.name!r} has no Vulkan driver: install the NVIDIA driver's Vulkan ICD "
                   f"(nvidia_icd.json; in a container NVIDIA_DRIVER_CAPABILITIES=all)")  # fmt: skip
        if requested != "auto":
            seen = ", ".join(d["name"] + (f" (cuda:{d['cuda_id']})" if d["cuda_id"] >= 0 else "")
                             for d in devices if d["render"]) or "none"  # fmt: skip
            raise RenderDeviceError(f"--render-device {requested}: {why}; render devices here: {seen}; use "
                                    f"--render-device auto or cpu")  # fmt: skip
    best = best_render_device(devices)
    if best is None or not is_cpu_rasteriser(best["name"]):
        if requested == "auto" and best is not None:  # a Vulkan GPU without CUDA (SAPIEN's pick for "cpu")
            return RenderDevice(requested, "cpu", best["name"], False)
        if best is None:
            raise _no_lavapipe(devices)
        raise RenderDeviceError(f"--render-device cpu: this process sees {best['name']!r} and no lavapipe driver "
                                f"file ({' or '.join(LAVAPIPE_ICDS)}), or started Vulkan before; install Mesa's "
                                f"Vulkan drivers (apt install mesa-vulkan-drivers) or run in a new process")  # fmt: skip
    note = None
    if requested == "auto":
        note = (
            f"render device: lavapipe on the CPU ({best['name']}), as there is {why}"
            if why.startswith("no ")
            else f"render device: lavapipe on the CPU ({best['name']}): {why}"
        )
    return RenderDevice(requested, "cpu", best["name"], True, note)


def render_device_used(env, expected: RenderDevice) -> RenderDevice:
    """The device ``env`` (made with ``render_backend=expected.backend`` inside ``vulkan_drivers(expected.requested)``
    in this process) renders with, as SAPIEN reports it here; RuntimeError when it is not the one resolved (a
    process that had started Vulkan with other drivers)."""
    dev = env.unwrapped.backend.render_device
    if dev is not None and dev.can_render():
        name = dev.name
    else:  # "cpu": SAPIEN renders with its best render device
        with vulkan_drivers(expected.requested):
            best = best_render_device(vulkan_devices())
        if best is None:
            raise RuntimeError("SAPIEN reports no Vulkan device to render with in this process")
        name = best["name"]
    if name != expected.name:
        raise RuntimeError(f"the env renders with {name!r}, not the {expected.name!r} chosen for --render-device "
                           f"{expected.requested}; start the command in a new process")  # fmt: skip
    return expected
