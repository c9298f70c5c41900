"""Where vla-gen-bench keeps derived files (low-poly robot meshes, built assets, table images).

All paths derive from ``$VGB_CACHE`` (default ``~/.cache/vla_gen_bench``) so that tests and CI can redirect them.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of the derived-file cache (created on demand)."""
    root = Path(os.environ.get("VGB_CACHE", Path.home() / ".cache" / "vla_gen_bench")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def repo_root() -> Path:
    """The source checkout (data folders such as ``asset_pipeline/`` live beside the package)."""
    return Path(__file__).resolve().parent.parent
