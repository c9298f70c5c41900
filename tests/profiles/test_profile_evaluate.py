"""``vgb evaluate --profile rl4vla``: the profile's settings and asset hash in run.json, the profile as a resume key,
and refusals (not a traceback) when the paper's files are missing."""

from __future__ import annotations

import json

import pytest

from vla_gen_bench.eval.evaluate import (
    RUN_JSON,
    Evaluate,
    RunDirError,
    env_settings,
    evaluate,
    evaluate_command,
)

pytestmark = pytest.mark.sim


def test_profile_settings_fill_the_defaults_and_explicit_options_win(rl4vla_dir, tmp_path):
    cfg = Evaluate(policy="zero", out=tmp_path, profile="rl4vla")
    assert env_settings(cfg) == {
        "robot": "widowx250s",
        "camera": "rl4vla",
        "sim_freq": 500,
        "lighting": "rl4vla",
        "rules": "rl4vla",
    }
    cfg = Evaluate(policy="zero", out=tmp_path, profile="rl4vla", robot="panda", camera="fast")
    assert env_settings(cfg)["robot"] == "panda" and env_settings(cfg)["camera"] == "fast"
    assert env_settings(Evaluate(policy="zero", out=tmp_path))["lighting"] == "default"


def test_evaluate_under_the_profile_records_it_and_resumes_only_with_it(rl4vla_dir, rl4vla_store, tmp_path):
    out = tmp_path / "run"
    cfg = Evaluate(policy="random", out=out, suite="ind,multi_object_unseen", episodes=1, seeds=(0,),
                   profile="rl4vla", robot="panda", rl4vla_assets=rl4vla_dir, videos=0, report=False)  # fmt: skip
    evaluate(cfg)
    run = json.loads((out / RUN_JSON).read_text())
    assert run["profile"] == "rl4vla" and run["profile_settings"]["quirks"]["eval_temperature"] == 0.6
    assert (run["camera"], run["robot"], run["sim_freq"]) == ("rl4vla", "panda", 500)
    assert run["asset_pack"] == "rl4vla" and run["asset_pack_hash"] == rl4vla_store.pack_hash
    assert run["asset_source"]["content_hash"] == rl4vla_store.pack_hash
    recs = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and {r["variant"] for r in recs} == {"ind", "multi_object_unseen"}
    with pytest.raises(RunDirError, match="profile"):
        evaluate(Evaluate(policy="random", out=out, suite="ind,multi_object_unseen", episodes=1, seeds=(0,),
                          profile="rl4vla:random_episodes=true", robot="panda", rl4vla_assets=rl4vla_dir,
                          videos=0, report=False))  # fmt: skip
    # a folder written under an older definition of the profile (other settings) is not extended silently
    run["profile_settings"]["shader"] = "minimal"
    (out / RUN_JSON).write_text(json.dumps(run))
    with pytest.raises(RunDirError, match="profile_settings"):
        evaluate(cfg)


def test_missing_files_are_refused_with_what_to_get(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path / "ms"))
    monkeypatch.delenv("VGB_RL4VLA_ASSETS", raising=False)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("nothing may prompt"))
    rc = evaluate_command(Evaluate(policy="zero", out=tmp_path / "a", profile="rl4vla", report=False))
    err = capsys.readouterr().err
    assert rc == 2 and "download_asset" in err and "widowx250s" in err
    rc = evaluate_command(
        Evaluate(policy="zero", out=tmp_path / "b", profile="rl4vla", robot="panda", report=False)
    )
    err = capsys.readouterr().err
    assert rc == 2 and "RL4VLA" in err and "--rl4vla-assets" in err
    rc = evaluate_command(Evaluate(policy="zero", out=tmp_path / "c", profile="rl4vla-papr", report=False))
    assert rc == 2 and "did you mean 'rl4vla-paper'" in capsys.readouterr().err
    assert not (tmp_path / "ms").exists()
