"""One writer per run folder (:mod:`vla_gen_bench.eval.lock`): a second ``vgb evaluate`` on a folder in use is
refused in one line naming the other process and writes nothing; a killed holder's lock is taken over; readers
share; a reader of a read-only copy needs no lock file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vla_gen_bench.eval.evaluate import EPISODES, RUN_JSON, Evaluate, evaluate_command
from vla_gen_bench.eval.lock import LOCK_NAME, RunLockedError, remove_lock_file, run_lock

from .test_disk_full import sealed

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys
from vla_gen_bench.eval.lock import run_lock
with run_lock(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared"):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


class Holder:
    """Another process holding ``folder``'s lock until :meth:`release` or :meth:`kill`."""

    def __init__(self, folder: Path, what: str = "vgb evaluate", shared: bool = False):
        self.p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), what, "shared" if shared else "x"],
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.p.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.p.stdin.close()
        assert self.p.wait(30) == 0

    def kill(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(30)


def another_process_can_lock(folder: Path, shared: bool = False) -> bool:
    code = ("import sys; from vla_gen_bench.eval.lock import RunLockedError, run_lock\ntry:\n"
            "    with run_lock(sys.argv[1], 'probe', shared=sys.argv[2] == 'shared'): pass\n"
            "except RunLockedError:\n    sys.exit(3)")  # fmt: skip
    rc = subprocess.run(
        [sys.executable, "-c", code, str(folder), "shared" if shared else "x"], cwd=ROOT
    ).returncode
    assert rc in (0, 3), rc
    return rc == 0


def holder_info(folder: Path) -> dict:
    text = (folder / LOCK_NAME).read_text()
    return json.loads(text) if text else {}


# ---------------------------------------------------------------------------------------------- lock.py
def test_a_writer_excludes_everyone_and_is_named(tmp_path):
    h = Holder(tmp_path, "vgb evaluate")
    try:
        for shared in (False, True):
            with pytest.raises(RunLockedError) as e, run_lock(tmp_path, "vgb report", shared=shared):
                pass
            msg = str(e.value)
            assert msg.startswith(f"{tmp_path} is in use by process {h.p.pid} (vgb evaluate, on "
                                  f"{socket.gethostname()} since "), msg  # fmt: skip
            assert msg.endswith("; wait for it to finish, or give another folder") and "\n" not in msg
    finally:
        h.release()
    with run_lock(tmp_path, "vgb evaluate"):  # released: free again, and now it names this process
        assert holder_info(tmp_path)["pid"] == os.getpid()
    assert holder_info(tmp_path) == {}, "a writer that lets go leaves no name behind"


def test_readers_share_and_keep_writers_out_without_naming_an_old_writer(tmp_path):
    with run_lock(tmp_path, "vgb evaluate"):  # an earlier writer, long finished
        pass
    h = Holder(tmp_path, "vgb report", shared=True)
    try:
        with run_lock(tmp_path, "vgb report", shared=True):  # readers share
            pass
        with pytest.raises(RunLockedError, match=r"is in use by another process; wait"):
            with run_lock(tmp_path, "vgb evaluate"):
                pass
    finally:
        h.release()
    with run_lock(tmp_path, "vgb evaluate"):
        pass


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    h = Holder(tmp_path, "vgb evaluate")
    h.kill()  # no clean-up ran: the file still names the dead process
    assert holder_info(tmp_path)["pid"] == h.p.pid
    with run_lock(tmp_path, "vgb evaluate"):
        assert holder_info(tmp_path)["pid"] == os.getpid()
    # a reader after a killed writer is not reported as that writer
    h = Holder(tmp_path, "vgb evaluate")
    h.kill()
    r = Holder(tmp_path, "vgb report", shared=True)
    try:
        with pytest.raises(RunLockedError, match="in use by another process"):
            with run_lock(tmp_path, "vgb evaluate"):
                pass
    finally:
        r.release()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with run_lock(tmp_path, "vgb evaluate"):
        with run_lock(tmp_path, "vgb evaluate"), run_lock(tmp_path / ".", "vgb report", shared=True):
            pass
        # still held after the inner blocks let go
        assert not another_process_can_lock(tmp_path, shared=True)
    assert another_process_can_lock(tmp_path)
    with run_lock(tmp_path, "vgb report", shared=True):
        with pytest.raises(RunLockedError, match="held shared by this process"):
            with run_lock(tmp_path, "vgb evaluate"):
                pass
        assert another_process_can_lock(tmp_path, shared=True) and not another_process_can_lock(tmp_path)
    assert another_process_can_lock(tmp_path)


def test_only_a_holding_writer_removes_the_lock_file_and_a_removed_file_is_never_locked(
    tmp_path, monkeypatch
):
    with pytest.raises(RuntimeError, match="only the writer holding its lock"):
        remove_lock_file(tmp_path)
    with run_lock(tmp_path, "vgb evaluate"):
        remove_lock_file(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()
    # the race a removal opens: this process opens the old lock file, then (before its flock) the file is removed
    # and another process makes and locks a new one; a lock on the old, nameless file would make two writers
    import fcntl

    (tmp_path / LOCK_NAME).touch()
    real, others = fcntl.flock, []

    def flock_after_a_swap(fd, op):
        if not others:
            os.unlink(tmp_path / LOCK_NAME)
            others.append(Holder(tmp_path, "vgb evaluate"))
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_swap)
    try:
        with pytest.raises(RunLockedError) as e, run_lock(tmp_path, "vgb evaluate"):
            pass
        assert f"in use by process {others[0].p.pid} (vgb evaluate" in str(e.value)
    finally:
        others[0].release()


READ_ONLY = r"""
import json, os, sys
from pathlib import Path
from vla_gen_bench.eval.lock import LOCK_NAME, RunLockedError, run_lock
rw, ro, ro_never = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
got = {}
with run_lock(ro_never, "vgb report", shared=True):  # never locked, cannot be written: read without a lock
    got["never"] = sorted(os.listdir(ro_never))
try:
    with run_lock(ro, "vgb evaluate"):
        got["writer"] = "took it"
except OSError as e:
    got["writer"] = e.errno
with run_lock(ro, "vgb report", shared=True):  # the lock file is there: a reader takes it through a read-only fd
    got["reader"] = "shared"
with run_lock(rw, "vgb evaluate"):  # a writer of the same folder through its writable path keeps readers out
    try:
        with run_lock(ro, "vgb report", shared=True):
            got["reader_while_writer"] = "took it"
    except RunLockedError as e:
        got["reader_while_writer"] = str(e)
print(json.dumps(got))
"""


def test_a_reader_of_a_read_only_folder(tmp_path):
    """A read-only view (a bind mount, in a user namespace) of a run folder: readers read, writers are refused."""
    rw, ro, never, ro_never = (tmp_path / n for n in ("rw", "ro", "never", "ro_never"))
    for d in (rw, ro, never, ro_never):
        d.mkdir()
    with run_lock(rw, "vgb evaluate"):  # the run was written (and locked) once
        pass
    script = ('mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && mount --bind "$3" "$4" && '
              'mount -o remount,bind,ro "$4" && exec "$5" -c "$6" "$1" "$2" "$4"')  # fmt: skip
    try:
        p = subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", str(rw), str(ro), str(never),
                            str(ro_never), sys.executable, READ_ONLY], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    except OSError:
        pytest.skip("no unshare here: a read-only mount cannot be made without root")
    if p.returncode != 0 and not p.stdout and ("mount" in p.stderr or "unshare" in p.stderr):
        pytest.skip(f"cannot bind-mount read-only in a user namespace here ({p.stderr.strip()})")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    import errno

    assert got["never"] == [], "a reader creates no lock file where it cannot write"
    assert got["writer"] == errno.EROFS
    assert got["reader"] == "shared"
    assert got["reader_while_writer"].startswith(f"{tmp_path / 'ro'} is in use by process "), got


# ---------------------------------------------------------------------------------------------- vgb evaluate
def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))} | {".": (b"", folder.stat().st_mtime_ns)}  # fmt: skip


def test_a_second_evaluate_on_a_folder_in_use_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys):
    from .conftest import record, write_run

    run = write_run(
        tmp_path / "run", [record("ind", 0, True)], lines=['{"variant": "ind", "ep']
    )  # torn last line
    (run / EPISODES).write_bytes((run / EPISODES).read_bytes().rstrip(b"\n"))
    h = Holder(run, "vgb evaluate")
    try:
        before = snapshot(run)
        assert evaluate_command(Evaluate(policy="scripted", out=run, suite="ind", episodes=1)) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"refused: {run} is in use by process {h.p.pid} (vgb evaluate, on "), err
        assert snapshot(run) == before, (
            "the refused run read past the lock or wrote (the torn line is not cut)"
        )
    finally:
        h.release()


def test_a_folder_holding_only_a_lock_file_is_accepted_and_a_refused_run_leaves_no_folder(tmp_path, capsys):
    from vla_gen_bench.eval.evaluate import check_out_dir

    d = tmp_path / "run"
    d.mkdir()
    with run_lock(d, "vgb evaluate"):  # an earlier refused run that was killed before removing its lock file
        pass
    assert check_out_dir(d) is False
    # refused after the lock was taken (no CUDA for --num-envs 2): the folder it made goes, lock file and all
    new = tmp_path / "new"
    assert evaluate_command(Evaluate(policy="scripted", out=new, suite="ind", episodes=1, num_envs=2)) == 2
    assert "--num-envs > 1 needs" in capsys.readouterr().err
    assert not new.exists()


def test_two_runs_on_one_folder_one_refused_the_other_completes_sealed(tmp_path, capsys):
    """Two concurrent ``vgb evaluate`` (the first in another process, kept busy at its first episode): the second
    is refused, the first completes and its hash chain verifies."""
    out, busy = tmp_path / "run", tmp_path / "busy"
    busy.touch()
    first = subprocess.Popen([sys.executable, "-c", "import sys; from tests.eval.test_disk_full import main; "
                              "sys.exit(main(*sys.argv[1:3], hold=sys.argv[3]))", str(out), "3", str(busy)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (out / RUN_JSON).exists():  # the first is in its run loop, holding the lock
            assert first.poll() is None and time.time() < deadline, (
                first.stderr.read() if first.poll() else "slow"
            )
            time.sleep(0.05)
        assert evaluate_command(Evaluate(policy="scripted", out=out, suite="ind", episodes=3)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"refused: {out} is in use by process {first.pid} (vgb evaluate"), err
    finally:
        busy.unlink()
    assert first.wait(120) == 0, first.stderr.read()
    assert sealed(out) == 3
    assert json.loads((out / RUN_JSON).read_text())["episodes_chain"]["lines"] == 3
    assert holder_info(out) == {}


@pytest.mark.sim
@pytest.mark.slow
def test_two_real_vgb_evaluate_on_one_out(tmp_path):
    """The issue's case end to end: two ``vgb evaluate`` processes on one --out, the second started while the
    first is running."""
    from vla_gen_bench.eval.records import read_run
    from vla_gen_bench.leaderboard.derive import verify_run

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vla_gen_bench.cli", "evaluate", "--policy", "scripted", "--suite", "ind",
           "--episodes", "2", "--camera", "fast", "--videos", "0", "--no-report", "--out", str(out)]  # fmt: skip
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((out / LOCK_NAME).exists() and holder_info(out).get("pid") == first.pid):
        assert first.poll() is None and time.time() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.wait(600) == 0, first.stderr.read()
    assert second.returncode == 2, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"is in use by process {first.pid} (vgb evaluate" in second.stderr
    lines = (out / EPISODES).read_text().splitlines()
    assert sorted(json.loads(x)["episode"] for x in lines) == [0, 1], "every episode written once"
    assert verify_run(out, read_run(out)) == "verified"
