"""Committed runs still resume: the command each was made with, typed today in the deprecated spelling or in the
typed one, records the same run.json ``policy``, ``policy_args`` and ``profile`` (the keys a resume compares)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tyro

from vla_gen_bench.cli import upgrade
from vla_gen_bench.eval.evaluate import Evaluate, policy_kwargs, profile_name, run_config
from vla_gen_bench.options import PolicyOptions, ProfileOptions

REPO = Path(__file__).resolve().parents[2]
RUNS = sorted(REPO.glob("baselines/results/**/run.json")) + sorted(
    REPO.glob("leaderboard/submissions/*/run.json")
)


def _old_command(run: dict) -> list[str]:
    """The ``vgb evaluate`` options of a committed run, as it was typed (config holds them)."""
    config = run.get("config") or {}
    args = ["--policy", run["policy"], "--out", "x"]
    for item in config.get("policy_arg") or []:
        args += ["--policy-arg", item]
    if not config.get("policy_arg"):  # a run typed with the typed flags (--policy.temperature 0.6)
        for key, value in (config.get("policy_options") or {}).items():
            if value is not None and key != "extra":
                args += [f"--policy.{key.replace('_', '-')}", str(value)]
    if config.get("unnorm_key"):
        args += ["--unnorm-key", config["unnorm_key"]]
    return args + ["--profile", run.get("profile") or "vgb"]


def test_there_are_committed_runs():
    assert len(RUNS) >= 40


@pytest.mark.parametrize("path", RUNS, ids=lambda p: str(p.parent.relative_to(REPO)))
def test_a_committed_run_resumes_under_both_spellings(path, capsys):
    run = json.loads(path.read_text())
    old = tyro.cli(Evaluate, args=upgrade("evaluate", Evaluate, _old_command(run)))
    capsys.readouterr()
    given = {k: v for k, v in run["policy_args"].items() if k not in (run.get("defaults_from_profile") or [])}
    new = Evaluate(policy=run["policy"], out=Path("x"), profile=run.get("profile") or "vgb",
                   policy_options=PolicyOptions.from_kwargs(given))  # fmt: skip
    for cfg in (old, new):
        assert str(cfg.spec) == cfg.policy == run["policy"]
        assert policy_kwargs(cfg) == run["policy_args"]
        assert json.loads(json.dumps(policy_kwargs(cfg))) == run["policy_args"]  # as run.json compares them
        assert profile_name(cfg) == (run.get("profile") or "vgb")


def test_typed_profile_settings_are_recorded_as_one_string(store, tmp_path):
    """--profile vgb --profile.success once records profile "vgb:success=once" (the string get_profile reads)."""
    cfg = Evaluate(policy="random", out=tmp_path, suite="ind", profile_options=ProfileOptions(success="once"))
    run = run_config(cfg, store, {})
    assert run.profile == "vgb:success=once" and run.profile_settings["quirks"]["success"] == "once"
    assert run.policy_args == {} and run.config["policy_options"]["extra"] == {}
