"""A full disk (or an output that cannot be written) mid-run: one line naming the path and the free space, exit 1,
``episodes.jsonl`` keeps whole chained lines only, and no partial video ever exists under its final name.

The runs here use :class:`NoSimBackend` in place of the simulator workers (the write paths are the real ones:
``evaluate``'s loop, ``records``, ``write_video``). One test fills a real (tiny tmpfs) disk in a user namespace
where the machine allows it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vla_gen_bench.eval import evaluate as ev
from vla_gen_bench.eval import records
from vla_gen_bench.eval.chain import genesis, verify
from vla_gen_bench.eval.evaluate import EPISODES, RUN_JSON, Evaluate, evaluate_command
from vla_gen_bench.eval.records import EpisodeRecord, append
from vla_gen_bench.eval.runner import write_video

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- a run without a simulator
def noise(n: int = 40, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Frames that do not compress (a video of them is large)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


class NoSimBackend:
    """Stands in for ``evaluate._Local``: every item becomes a record (success on even episodes) with no simulator;
    episodes in ``video_at`` get a video of noise written into the run folder by the real ``write_video``, as an
    in-process worker does. While the file ``hold`` exists, the next episode waits (a run kept busy)."""

    def __init__(self, cfg, out_dir, videos, policy=None, video_at=(), hold: str | None = None):
        self.cfg, self.out_dir, self.video_at, self.hold = cfg, Path(out_dir), set(video_at), hold
        self.info = [{"spec": {"kind": "no-sim"}, "metadata": {}}]

    def run(self, batches):
        from vla_gen_bench.variants import get_variant

        for batch in batches:
            out = []
            for it in batch:
                while self.hold and os.path.exists(self.hold):
                    time.sleep(0.05)
                v = get_variant(it.variant)
                ok = it.episode % 2 == 0
                rec = EpisodeRecord(variant=v.name, axis=v.axis, split=v.split, severity=v.severity, seed=it.seed,
                                    episode=it.episode, policy=self.cfg.policy, success=ok, success_once=ok,
                                    grasped=ok, failure="success" if ok else "never_grasped",
                                    instruction="put the cube on the plate", steps=80)  # fmt: skip
                if it.episode in self.video_at:
                    rel = Path("videos") / f"{v.name}_s{it.seed}_e{it.episode}.mp4"
                    (self.out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                    write_video(noise(seed=it.episode), self.out_dir / rel)
                    rec = replace(rec, video=str(rel))
                out.append((rec, None))
            yield out

    def close(self) -> None:
        pass


def config(out: Path, episodes: int = 4) -> Evaluate:
    return Evaluate(policy="scripted", out=out, suite="ind", episodes=episodes, check=False, report=False)


def use_no_sim(monkeypatch, **kw) -> None:
    monkeypatch.setattr(
        ev, "_Local", lambda cfg, out, videos, policy=None, render=None: NoSimBackend(cfg, out, videos, **kw)
    )


def main(out: str, episodes: int | str, video_at: str = "", hold: str = "") -> int:
    """``evaluate_command`` with :class:`NoSimBackend`, for tests that need a second process (or a namespace)."""
    at = [int(x) for x in video_at.split(",") if x]
    ev._Local = lambda cfg, o, videos, policy=None, render=None: NoSimBackend(
        cfg, o, videos, video_at=at, hold=hold or None
    )
    return evaluate_command(config(Path(out), int(episodes)))


def sealed(run: Path) -> int:
    """The number of lines of ``episodes.jsonl``, after checking each is whole and chained from run.json."""
    raw = (run / EPISODES).read_bytes()
    assert raw.endswith(b"\n"), "a torn last line was left"
    lines = raw.decode().splitlines()
    assert all(json.loads(x)["variant"] == "ind" for x in lines)
    chk = verify(lines, genesis(json.loads((run / RUN_JSON).read_text())))
    assert chk.broken is None and chk.lines == len(lines), chk
    return len(lines)


def one_line(err: str) -> str:
    """The refusal a failed run ends with, which must be a single line (rich's soft wrap keeps it one)."""
    last = [x for x in err.strip().splitlines() if x.strip()][-1]
    assert "Traceback" not in err and "Broken pipe" not in err and "ffmpeg version" not in err, err
    return last


# ---------------------------------------------------------------------------------------------- write_video
def test_write_video_is_whole_or_absent(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(noise(8), path)
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data, "a complete mp4 (its index written)"
    assert os.listdir(tmp_path) == ["v.mp4"], "no temporary file left"

    def frames_then_crash():
        yield from noise(5)
        raise RuntimeError("the renderer died")

    with pytest.raises(RuntimeError, match="the renderer died"):
        write_video(frames_then_crash(), tmp_path / "w.mp4")
    with pytest.raises(ValueError, match="differ in shape"):
        write_video(noise(3) + noise(1, size=32), tmp_path / "w.mp4")
    with pytest.raises(OSError, match=r"width not divisible by 2") as e:  # ffmpeg itself fails
        write_video([np.zeros((63, 63, 3), np.uint8)] * 3, tmp_path / "w.mp4")
    assert e.value.filename == str(tmp_path / "w.mp4") and "\n" not in str(e.value)
    # a failed rewrite (a resumed run) keeps the whole video that was there
    with pytest.raises(RuntimeError):
        write_video(frames_then_crash(), path)
    assert path.read_bytes() == data
    assert os.listdir(tmp_path) == ["v.mp4"], "nothing partial under the final name, no temporary file"


def test_write_video_failing_in_ffmpeg_is_one_oserror_naming_the_errno():
    from vla_gen_bench.eval.runner import _ffmpeg_error

    log = ("[out#0/mp4 @ 0x1] Error writing trailer: No space left on device\n"
           "[out#0/mp4 @ 0x1] Error closing file: No space left on device\nConversion failed!\n")  # fmt: skip
    e = _ffmpeg_error(log, 228, Path("/r/videos/a.mp4"))
    assert (e.errno, e.filename) == (errno.ENOSPC, "/r/videos/a.mp4")
    assert "Error closing file: No space left on device" in str(e) and "Conversion failed" not in str(e)
    assert _ffmpeg_error("", -9, Path("a.mp4")).errno == errno.EIO


# ---------------------------------------------------------------------------------------------- episodes.jsonl
def rec(k: int) -> EpisodeRecord:
    return EpisodeRecord(variant="ind", axis="in-distribution", split="train", seed=0, episode=k, policy="scripted",
                         success=True, success_once=True, grasped=True, failure="success",
                         instruction="put the cube on the plate")  # fmt: skip


class FailingOs:
    """``os`` as ``records`` sees it, with ``write`` failing the way a full disk does: a short write, or ENOSPC."""

    def __init__(self, mode: str):
        self.mode = mode

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.mode == "short":
            return os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("mode", ["short", "enospc"])
def test_append_keeps_whole_lines_only(tmp_path, monkeypatch, mode):
    path = tmp_path / EPISODES
    head = append(path, rec(0), genesis({"policy_id": "p"}))
    before = path.read_bytes()
    monkeypatch.setattr(records, "os", FailingOs(mode))
    with pytest.raises(OSError) as e:
        append(path, rec(1), head)
    assert e.value.errno == errno.ENOSPC
    assert path.read_bytes() == before, "the part of the line that was written is cut off again"
    monkeypatch.undo()
    append(path, rec(1), head)  # the chain goes on from the last whole line
    assert verify(path.read_text().splitlines(), genesis({"policy_id": "p"})).verified


def test_run_json_is_replaced_whole_or_kept(tmp_path, monkeypatch):
    first = records.RunInfo(policy="random", policy_id="p", suite="ind", suite_hash="s", catalog_hash="c",
                            asset_pack_hash="a", control="ind", variants={"ind": {}}, seeds=(0,), episodes_per_seed=1,
                            versions={}, created="2026-01-01")  # fmt: skip
    records.write_run(tmp_path, first)

    def disk_full(fd):  # the new file's data cannot be flushed to disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(records.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left") as e:
        records.write_run(tmp_path, replace(first, episodes_per_seed=2))
    monkeypatch.undo()
    assert e.value.filename == str(tmp_path / RUN_JSON), "the error names run.json, not the temporary file"
    assert records.read_run(tmp_path) == first
    assert os.listdir(tmp_path) == [RUN_JSON], "the temporary file is removed"


# ---------------------------------------------------------------------------------------------- vgb evaluate
def test_disk_full_mid_run_is_one_line_and_the_run_resumes_sealed(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    use_no_sim(monkeypatch)
    real, calls = records.append, []

    def append_until_full(path, record, prev):  # the third episode's line does not fit
        calls.append(record.episode)
        if len(calls) == 3:
            monkeypatch.setattr(records, "os", FailingOs("short"))
        try:
            return real(path, record, prev)
        finally:
            monkeypatch.setattr(records, "os", os)

    monkeypatch.setattr(records, "append", append_until_full)
    assert evaluate_command(config(out)) == 1
    msg = one_line(capsys.readouterr().err)
    assert msg.startswith(f"cannot write {out / EPISODES}: No space left on device"), msg
    assert re.search(r"\(\d+(\.\d)? (B|KB|MB|GB|TB) free on the disk of .*\); free some space or choose another "
                     r"--out\.", msg), msg  # fmt: skip
    assert "2 finished episode(s) are kept" in msg and "re-run the same command to resume" in msg, msg
    assert sealed(out) == 2
    monkeypatch.setattr(records, "append", real)
    assert evaluate_command(config(out)) == 0  # space again: the same command finishes the run
    assert sealed(out) == 4
    assert json.loads((out / RUN_JSON).read_text())["episodes_chain"]["lines"] == 4


FAKE_FFMPEG = """#!/bin/sh
# ffmpeg on a disk that fills up: part of the output written, then its error messages, a failing exit
for last; do :; done
head -c 3000 > "$last"
i=0; while [ $i -lt 15 ]; do echo "[libx264 @ 0x1] frame I:1 noise line $i" >&2; i=$((i+1)); done
echo "[out#0/mp4 @ 0x1] Error closing file: No space left on device" >&2
exit 228
"""


def test_a_video_that_cannot_be_written_stops_the_run_and_leaves_no_file(tmp_path, monkeypatch, capfd):
    import imageio_ffmpeg

    fake = tmp_path / "ffmpeg"
    fake.write_text(FAKE_FFMPEG)
    fake.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "run"
    use_no_sim(monkeypatch, video_at=(1,))
    assert evaluate_command(config(out)) == 1
    err = capfd.readouterr().err  # the terminal: ffmpeg's own lines must not reach it
    assert "noise line" not in err, err
    msg = one_line(err)
    assert msg.startswith(f"cannot write {out / 'videos' / 'ind_s0_e1.mp4'}: No space left on device (ffmpeg exit "
                          f"status 228: [out#0/mp4 @ 0x1] Error closing file: No space left on device)"), msg  # fmt: skip
    assert "1 finished episode(s) are kept" in msg, msg
    assert sealed(out) == 1
    assert os.listdir(out / "videos") == [], "the partly written video is removed"


def test_a_worker_process_that_cannot_write_is_one_line_without_its_traceback(tmp_path, monkeypatch, capsys):
    from vla_gen_bench.eval.pool import PoolError

    def worker_failed(cfg, console):
        raise PoolError(f"OSError: [Errno 28] No space left on device (ffmpeg exit status 228): "
                        f"'{cfg.out}/videos/ind_s0_e3.mp4'", trace="Traceback (most recent call last):\n  ...")  # fmt: skip

    monkeypatch.setattr(ev, "evaluate", worker_failed)
    (tmp_path / "run").mkdir()
    assert evaluate_command(config(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"cannot write {tmp_path / 'run'}/videos/ind_s0_e3.mp4: No space left on device"), (
        err
    )
    assert "free on the disk of" in err and "No episode had finished yet" in err


# ---------------------------------------------------------------------------------------------- a real full disk
REAL_DISK = r"""
import errno, json, os, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from tests.eval.test_disk_full import main, rec
from vla_gen_bench.eval.records import append
from vla_gen_bench.eval.chain import genesis

mnt, run, got = Path(sys.argv[1]), Path(sys.argv[1]) / "run", {}
print("=== run", file=sys.stderr, flush=True)
got["rc"] = main(str(run), 3, video_at="1")  # the video of episode 1 does not fit on the disk
got["after"] = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
got["kept"], got["kept_run"] = (run / "episodes.jsonl").read_text(), (run / "run.json").read_text()
print("=== resume", file=sys.stderr, flush=True)
got["rc2"] = main(str(run), 3)  # without videos the rest fits
got["final"], got["final_run"] = (run / "episodes.jsonl").read_text(), (run / "run.json").read_text()
# a few lines, then fill the disk: the lines that still fit the file's last page go in, the next does not
path, head, n = mnt / "lines.jsonl", genesis({"policy_id": "p"}), 0
for n in range(3):
    head = append(path, rec(n), head)
n = 3
with open(mnt / "filler", "wb", buffering=0) as f:
    try:
        while True:
            f.write(b"x" * 512)
    except OSError:
        pass
try:
    while n < 1000:
        head = append(path, rec(n), head)
        n += 1
except OSError as e:
    got.update(appended=n, errno=e.errno, lines=path.read_text() if path.exists() else "")
print(json.dumps(got))
"""


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    try:
        p = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {d}"],
                           capture_output=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("no unshare here: a tiny disk cannot be made without root")
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here ({p.stderr.decode().strip()})")


def test_a_real_full_disk(tmp_path, can_mount):
    """A 96 KiB tmpfs (user namespace): a video that does not fit, then lines that do not fit."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    (tmp_path / "real_disk.py").write_text(REAL_DISK)
    p = subprocess.run(["unshare", "-Urm", "sh", "-c", 'mount -t tmpfs -o size=96k tmpfs "$1" && exec "$2" "$3" "$1" '
                        '"$4"', "sh", str(mnt), sys.executable, str(tmp_path / "real_disk.py"), str(ROOT)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    first = p.stderr.split("=== run")[1].split("=== resume")[0]
    assert got["rc"] == 1, first
    msg = one_line(first)
    assert msg.startswith(f"cannot write {mnt}/run/videos/ind_s0_e1.mp4: No space left on device (ffmpeg"), (
        msg
    )
    assert "free on the disk of" in msg and "1 finished episode(s) are kept" in msg, msg
    ours = [x for x in first.strip().splitlines() if not x.startswith("render device: ")]
    assert len(ours) <= 3, "ffmpeg's messages reach the terminal: " + first
    # no video under any name, the kept line whole and sealed
    assert not [x for x in got["after"] if x.endswith(".mp4")], got["after"]
    kept = got["kept"].splitlines()
    assert len(kept) == 1 and verify(kept, genesis(json.loads(got["kept_run"]))).verified
    # resumed with space for what is left: the whole run, sealed
    assert got["rc2"] == 0, p.stderr
    final = got["final"].splitlines()
    assert len(final) == 3 and final[0] == kept[0]
    assert verify(final, genesis(json.loads(got["final_run"]))).verified
    # appending on a full disk: a real ENOSPC, and the file holds whole chained lines only
    assert got["errno"] == errno.ENOSPC, got
    assert got["lines"].endswith("\n") and len(got["lines"].splitlines()) == got["appended"] >= 3, got
    assert verify(got["lines"].splitlines(), genesis({"policy_id": "p"})).verified
