"""Trivial picklable workers for tests/eval/test_pool.py (imported by the pool's spawned processes)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class Echo:
    """Runs small commands: ``("value", x)``, ``("sleep", s, x)``, ``("raise", text)``, ``("kill_once", marker, x)``
    (SIGKILLs itself while the marker file exists, removing it first), ``("kill",)``, ``("unpicklable",)``,
    ``("big", nbytes, x)`` (a result of ``nbytes`` bytes, so large that writing it fills the pipe)."""

    def __init__(self, tag: str, index: int) -> None:
        self.tag, self.index = tag, index

    def setup(self) -> dict:
        return {
            "tag": self.tag,
            "index": self.index,
            "pid": os.getpid(),
            "omp": os.environ.get("OMP_NUM_THREADS"),
        }

    def run(self, task):
        kind, *args = task
        if kind == "value":
            return (self.index, args[0])
        if kind == "sleep":
            time.sleep(args[0])
            return (self.index, args[1])
        if kind == "raise":
            _fail(args[0])
        if kind == "kill_once":
            marker = Path(args[0])
            try:
                marker.unlink()  # atomic: of two workers, one wins
            except FileNotFoundError:
                return (self.index, args[1])
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "big":
            return (self.index, args[1], bytes([args[1] % 256]) * args[0])
        if kind == "unpicklable":
            return lambda: None
        raise AssertionError(kind)

    def close(self) -> None:
        pass


def _fail(text: str):
    raise ValueError(text)


class FailsSetup(Echo):
    def setup(self) -> dict:
        raise OSError("no simulator here")
