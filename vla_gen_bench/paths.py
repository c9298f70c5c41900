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


def cache_dir_hint() -> str:
    """How to point the cache elsewhere (for messages about a cache that cannot be written)."""
    where = os.environ.get("VGB_CACHE") or f"{Path.home() / '.cache' / 'vla_gen_bench'} (under HOME)"
    return f"the cache is {where}: set VGB_CACHE to a writable folder, e.g. VGB_CACHE=/tmp/vgb-cache"


def repo_root() -> Path:
    """The source checkout (data folders such as ``asset_pipeline/`` live beside the package)."""
    return Path(__file__).resolve().parent.parent
