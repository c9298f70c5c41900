"""No test can hang CI: each has a timeout, and a test that runs past it fails by name while the suite goes on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_suite_runs_every_test_under_a_timeout():
    ini = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1].split("\n[")[0]
    assert 60 <= float(re.search(r"^timeout = (\d+)", ini, re.M).group(1)) <= 1800
    assert "timeout --signal=INT" in (ROOT / "Makefile").read_text()  # and the whole run is bounded too


def test_a_hanging_test_fails_by_name_and_the_next_one_still_runs(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import threading\n"
        "def test_waits_forever():\n"
        "    threading.Event().wait()\n"  # a lock wait, like the pool's old deadlock
        "def test_after():\n"
        "    pass\n"
    )
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                          str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-o", "timeout=2",
                          str(tmp_path / "test_hang.py")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED" in out.stdout and "test_waits_forever" in out.stdout and "Timeout" in out.stdout
    assert "1 failed, 1 passed" in out.stdout
