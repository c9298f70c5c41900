"""A folder's lock held by another process, for tests of refusals (``vla_gen_bench.eval.lock``)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLD = """
import sys, time
from vla_gen_bench.eval.lock import run_lock
with run_lock(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared"):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def held(folder: Path, what: str = "test holder", shared: bool = False) -> Iterator[subprocess.Popen]:
    """A subprocess holding ``folder``'s lock (exclusive unless ``shared``) for the ``with`` block."""
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), what, "shared" if shared else "exclusive"],
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held", "the lock holder did not start"
        yield p
    finally:
        p.kill()
        p.wait()
