"""The command line: usage, errors, and a real end-to-end run of the demo commands."""

from __future__ import annotations

import subprocess
import sys

from vla_gen_bench.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in (
        "assets build",
        "assets list",
        "evaluate",
        "list",
        "describe",
        "cards",
        "render",
        "run-episode",
    ):
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


def test_describe_and_list(capsys):
    assert main(["list", "--suite", "default"]) == 0
    out = capsys.readouterr().out
    assert "unseen_positions" in out and "PositionChangeTo-v1" in out
    assert main(["describe", "unseen_instructions", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "instructions" in out and "16,056,320" in out


def test_describe_unknown_variant_is_one_clear_line(capsys):
    assert main(["describe", "unseen_tabel"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'unseen_table'" in err and "Traceback" not in err


def test_cards_check_detects_stale_cards(tmp_path, capsys):
    assert main(["cards", "--out", str(tmp_path)]) == 0
    assert main(["cards", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "reposition.md").write_text("edited by hand")
    assert main(["cards", "--out", str(tmp_path), "--check"]) == 1
    assert "reposition.md" in capsys.readouterr().err


def test_repeated_key_value_flags_accumulate():
    """`--set a=1 --set b=2` keeps both (tyro's default for a tuple would keep only the last flag)."""
    import tyro

    from vla_gen_bench.eval.evaluate import Evaluate
    from vla_gen_bench.policies.serve import Serve
    from vla_gen_bench.training.commands import TrainSFT
    from vla_gen_bench.training.rl_commands import TrainPPO

    assert tyro.cli(TrainSFT, args=["--set", "lr=1", "--set", "seed=2"]).set == ("lr=1", "seed=2")
    assert tyro.cli(TrainPPO, args=["--set", "lr=1", "--set", "seed=2"]).set == ("lr=1", "seed=2")
    for cls, required in ((Evaluate, ["--out", "x"]), (Serve, [])):
        args = ["--policy", "scripted", *required, "--policy-arg", "a=1", "--policy-arg", "b=2"]
        assert tyro.cli(cls, args=args).policy_arg == ("a=1", "b=2")


def test_assets_list_by_pool_and_the_deprecated_split_alias(capsys, store):
    assert main(["assets", "list", "--kind", "table", "--pool", "unseen"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == len(store.ids("table", "unseen")) and all(" unseen " in r for r in rows)
    assert main(["assets", "list", "--kind", "table", "--split", "unseen"]) == 0  # the old flag still works
    assert capsys.readouterr().out.splitlines() == rows
