"""One writer per run folder.

``vgb evaluate``, ``vgb report`` and ``vgb leaderboard add`` take the folder's lock (``<folder>/.vgb.lock``) for as
long as they write there (or, for readers, read there). The lock is an advisory ``flock`` on that file: the kernel
drops it when its process ends, however it ends (SIGKILL, out of memory), so a stale lock left by a killed process is
taken over by the next command without anyone deleting a file. The file itself stays and, while a writer holds it,
says who that is (a writer empties it when it lets go).

Locks are re-entrant within one process (``vgb evaluate`` writes its report while it holds the run's lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".vgb.lock"

_held: dict[str, tuple[int, int, bool]] = {}  # resolved folder -> (fd, depth, exclusive)


class RunLockedError(RuntimeError):
    """Another process holds the folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _holder(path: Path) -> str:
    """Who holds the lock, as the last writer recorded it ("another process" when a reader holds it, or the record
    is of a writer on this machine that is gone)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return "another process"
    if info.get("host") == socket.gethostname() and not _alive(info["pid"]):
        return "another process"  # a writer killed earlier left its name; a reader holds the lock now
    return f"process {info['pid']} ({info.get('command', '?')}, on {info.get('host', '?')} since {info.get('since', '?')})"


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file ``fd`` has open (a lock taken on a lock file another process removed
    in between guards nothing: the next process would create and lock a new one)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


@contextlib.contextmanager
def run_lock(folder: Path | str, what: str, *, shared: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block.

    Args:
        folder: the run (or submission) folder; it must exist.
        what: what this process does there, for the message another process prints ("vgb evaluate").
        shared: a reader's lock: many readers at once, none while a writer holds it. A reader of a folder it cannot
            write (a read-only copy of a run) reads without a lock when none was ever taken there.

    Raises:
        RunLockedError: another process holds the lock (the message names it and says what to do).
        OSError: the lock file cannot be created (an unwritable folder); writers must not go on.
    """
    import fcntl

    folder = Path(folder)
    key = str(folder.resolve())
    if key in _held:  # re-entrant: this process holds it already (a shared hold does not upgrade)
        fd, depth, exclusive = _held[key]
        if not shared and not exclusive:
            raise RunLockedError(f"{folder} is held shared by this process; cannot write there now")
        _held[key] = (fd, depth + 1, exclusive)
        try:
            yield
        finally:
            fd, depth, exclusive = _held[key]
            _held[key] = (fd, depth - 1, exclusive)
        return
    path = folder / LOCK_NAME
    for _ in range(10):  # a lock file removed between our open and our flock: open the new one
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if not shared:
                raise
            fd = -1 if not path.exists() else os.open(path, os.O_RDONLY)
        if fd < 0:  # a read-only folder nobody ever locked: nobody writes there
            yield
            return
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"{folder} is in use by {_holder(path)}; wait for it to finish, or give another folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)
    else:  # pragma: no cover - another process keeps removing the file
        raise RunLockedError(f"{path} keeps being removed by another process; wait for it to finish")
    try:
        if not shared:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": what,
                    "argv": sys.argv[1:], "since": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
            with contextlib.suppress(OSError):  # who holds it is for messages only
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[key] = (fd, 1, not shared)
        try:
            yield
        finally:
            del _held[key]
            if not shared:  # nobody holds it as a writer now: a reader that takes it must not be named as us
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def remove_lock_file(folder: Path | str) -> None:
    """Remove ``folder``'s lock file, which this process must hold as a writer (a run that leaves no folder behind
    removes the file it made). Taken-over locks stay safe: :func:`run_lock` re-checks the file after locking."""
    key = str(Path(folder).resolve())
    if key not in _held or not _held[key][2]:
        raise RuntimeError(f"{folder}: only the writer holding its lock may remove the lock file")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(folder) / LOCK_NAME)
