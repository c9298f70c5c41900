"""The command line: usage, errors, and a real end-to-end run of the demo commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_every_deprecated_spelling_still_works_and_says_the_new_one(capsys):
    """One release of aliases: --policy-arg, --unnorm-key, --profile name:k=v, --set and the shortcut flags parse to
    the same typed config as the new spelling, printing one line each naming it."""
    import tyro

    from vla_gen_bench.cli import DEPRECATED, _recipe_default, upgrade
    from vla_gen_bench.eval.evaluate import Evaluate
    from vla_gen_bench.training.commands import TrainSFT, build_configs
    from vla_gen_bench.training.rl_commands import TrainPPO

    def parse(cls, command, args):
        args = upgrade(command, cls, args)
        return tyro.cli(cls, args=args, default=_recipe_default(cls, args))

    old = ["--policy", "openvla:ck", "--out", "x", "--policy-arg", "temperature=0.6", "--policy-arg", "speed=2",
           "--unnorm-key", "k", "--profile", "rl4vla:random_episodes=true"]  # fmt: skip
    new = ["--policy", "openvla:ck", "--out", "x", "--policy.temperature", "0.6", "--policy.extra", "speed=2",
           "--policy.unnorm-key", "k", "--profile", "rl4vla", "--profile.random-episodes", "True"]  # fmt: skip
    assert parse(Evaluate, "evaluate", old) == parse(Evaluate, "evaluate", new)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 4 and "use --profile rl4vla --profile.random-episodes True" in err

    old = ["--preset", "tiny", "--init", "ck", "--workers", "1", "--set", "gamma=0.5", "--rollout.temperature", "0.9",
           "--eval.temperature", "0"]  # fmt: skip
    new = ["--preset", "tiny", "--model.init", "ck", "--rollout.workers", "1", "--gamma", "0.5",
           "--rollout.policy.temperature", "0.9", "--eval.policy.temperature", "0"]  # fmt: skip
    assert parse(TrainPPO, "train-baseline ppo", old) == parse(TrainPPO, "train-baseline ppo", new)
    assert "--init is deprecated; use --model.init ck" in capsys.readouterr().err

    old = ["--data", "d", "--workers", "3", "--demos", "2000", "--set", "lr=0.5", "--eval-temperature", "0.2",
           "--dagger.temperature", "0.3"]  # fmt: skip
    new = ["--collect.out", "d", "--collect.workers", "3", "--num-demos", "2000", "--lr", "0.5",
           "--eval-policy.temperature", "0.2", "--dagger.learner-policy.temperature", "0.3"]  # fmt: skip
    cmd = parse(TrainSFT, "train-baseline sft", old)
    assert cmd == parse(TrainSFT, "train-baseline sft", new)
    _, demo, sft = build_configs(cmd)
    assert (demo.out, demo.workers, demo.episodes, sft.num_demos, sft.lr) == (Path("d"), 3, 2000, 2000, 0.5)
    assert (sft.eval_policy.temperature, cmd.dagger.learner_policy.temperature) == (0.2, 0.3)
    assert set(DEPRECATED) <= {f"{g} {c}" for g in ("train-baseline",) for c in ("sft", "ppo", "grpo", "dpo")} | {
        "evaluate", "serve", "collect-demos"}  # fmt: skip


def test_a_bad_deprecated_option_is_one_line(capsys):
    assert main(["evaluate", "--policy", "zero", "--out", "x", "--policy-arg", "seed"]) == 2
    err = capsys.readouterr().err
    assert "--policy-arg must be key=value, got 'seed'" in err and len(err.strip().splitlines()) == 1


def test_assets_list_by_pool_and_the_deprecated_split_alias(capsys, store):
    assert main(["assets", "list", "--kind", "table", "--pool", "unseen"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == len(store.ids("table", "unseen")) and all(" unseen " in r for r in rows)
    assert main(["assets", "list", "--kind", "table", "--split", "unseen"]) == 0  # the old flag still works
    assert capsys.readouterr().out.splitlines() == rows
