"""Compatibility steps for third-party libraries; each runs only when called, never at package import.

:func:`ensure_torchvision` exists because of one machine kind (DESIGN.md §10): the only CPU torch there is a local
``+cpu`` wheel, while the only torchvision wheels are CUDA builds whose compiled ops (``_C.so``) cannot load against
it. torchvision then fails at import with ``operator torchvision::nms does not exist``: its ``_meta_registrations``
module registers fake kernels for ``nms``/``qnms`` unconditionally, and registering a kernel for an operator without
a schema is an error. timm, transformers (Llama, image processors) and diffusers import torchvision, so they break
too. None of them needs the compiled ops (nms, roi_align, image decoding); they need ``torchvision.transforms``.

The fix defines the missing operator *schemas* (no kernels) with ``torch.library`` and imports torchvision again.
torchvision then imports with ``torchvision.extension._has_ops() == False``, exactly as it does when its extension
is simply absent, and calling a compiled op raises torchvision's own "Couldn't load custom C++ ops" error. Where
torchvision imports normally (matching wheels, GPU machines) the function only imports it and changes nothing.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any, Literal

# Schemas of the ops whose fake kernels torchvision registers without checking that its extension loaded
# (torchvision/_meta_registrations.py: ``@torch.library.register_fake("torchvision::nms")`` and ``qnms``).
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_MISSING_OP = re.compile(r"operator torchvision::(\w+) does not exist")

_library: Any = None  # the torch.library.Library holding our schemas; must stay alive (GC would drop them)
_status: str | None = None

TorchvisionStatus = Literal["native", "shimmed", "absent"]


def _drop_partial_import() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def _define_schema(op: str) -> None:
    global _library
    import torch

    if op not in _SCHEMAS:
        raise RuntimeError(
            f"torchvision failed to import because operator torchvision::{op} is missing, and vla_gen_bench's "
            f"compatibility step only knows {sorted(_SCHEMAS)}. Install a torchvision built for torch "
            f"{torch.__version__} (see DESIGN.md §10 / scripts/setup.sh)."
        )
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
    _library.define(_SCHEMAS[op])


def ensure_torchvision() -> TorchvisionStatus:
    """Make ``import torchvision`` (and so timm / transformers / diffusers) work; idempotent.

    Returns:
        ``"native"`` when torchvision imported as is, ``"shimmed"`` when its compiled ops could not load and the
        missing schemas were defined so that it imports without them, ``"absent"`` when torchvision is not
        installed (nothing is done; libraries that need it raise their own ImportError).

    Raises:
        RuntimeError: torchvision fails to import for a reason this step does not handle (the original error
            is chained).
    """
    global _status
    if _status is not None and "torchvision" in sys.modules:
        return _status  # type: ignore[return-value]
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        _status = "absent"
        return "absent"
    shimmed = False
    for _ in range(len(_SCHEMAS) + 1):
        try:
            import torchvision  # noqa: F401
        except RuntimeError as e:
            m = _MISSING_OP.search(str(e))
            if m is None:
                raise
            _drop_partial_import()
            try:
                _define_schema(m.group(1))
            except RuntimeError as define_error:
                raise define_error from e
            shimmed = True
            continue
        _status = "shimmed" if shimmed else "native"
        return _status  # type: ignore[return-value]
    raise RuntimeError("torchvision still fails to import after defining its missing operator schemas")
