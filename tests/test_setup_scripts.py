"""The set-up script's mirror derivation: it must follow the machine's own apt sources, in either format."""

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "backports-uri.sh"


def derive(etc: Path, codename="bookworm"):
    return subprocess.run([str(SCRIPT), codename, str(etc)], capture_output=True, text=True)


def test_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert derive(tmp_path).stdout.strip() == "http://mirror.example/debian"


def test_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n"
    )
    assert derive(tmp_path).stdout.strip() == "http://other.example/debian"


@pytest.mark.parametrize("codename", ["trixie"])
def test_no_matching_source_is_an_error(tmp_path, codename):
    (tmp_path / "sources.list").write_text("deb http://x.example/debian bookworm main\n")
    r = derive(tmp_path, codename)
    assert r.returncode == 1 and "no apt source for 'trixie'" in r.stderr
