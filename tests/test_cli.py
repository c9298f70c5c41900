"""The command line: usage, errors, and a real end-to-end run of the demo commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vla_gen_bench.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("assets build", "assets list", "render", "run-episode", "run-episodes", "summarize"):
        assert cmd in out


def test_unknown_command_suggests_the_closest(capsys):
    assert main(["rendr"]) == 2
    assert "did you mean 'render'" in capsys.readouterr().err


def test_unknown_subcommand_is_an_error(capsys):
    assert main(["assets", "buidl"]) == 2


def test_importing_the_package_does_no_heavy_work():
    code = ("import sys, vla_gen_bench, vla_gen_bench.cli, vla_gen_bench.assets, vla_gen_bench.policies.registry;"
            "heavy = [m for m in ('torch', 'mani_skill', 'sapien', 'transformers', 'diffusers') if m in sys.modules];"
            "print(','.join(heavy))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "" and out.stderr == ""


def test_summarize_computes_rates_from_the_file(tmp_path, capsys):
    rows = [{"policy": "p", "seed": i, "success_at_end": i < 3, "ever_grasped": i < 4,
             "failure": "success" if i < 3 else "dropped"} for i in range(4)]  # fmt: skip
    f = tmp_path / "e.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["summarize", str(f), "--out", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr().out
    assert "| 4 | 0.75 | [0.30, 0.95] | 1.00 | dropped: 1 |" in out
    assert (tmp_path / "r.md").exists()


@pytest.mark.sim
@pytest.mark.slow
def test_run_episodes_writes_jsonl_and_resumes(tmp_path):
    out = tmp_path / "eps.jsonl"
    cmd = [sys.executable, "-m", "vla_gen_bench.cli", "run-episodes", "--policy", "random", "--episodes", "2",
           "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    first = out.read_text().splitlines()
    assert [json.loads(x)["seed"] for x in first] == [0, 1]
    cmd[cmd.index("2")] = "3"
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 1, 2], "finished seeds are skipped, only seed 2 is new"
    assert rows[0]["steps"] == 80 and rows[0]["failure"] in ("never_grasped", "wrong_object", "dropped", "misplaced", "timeout", "success")
