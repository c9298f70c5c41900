"""``vgb audit`` catches a forged run (outcomes flipped, hash chain recomputed) by re-simulating its episodes, and
``vgb compare`` warns when two runs disagree on the outcome of identical actions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vla_gen_bench.eval.audit import (
    Audit,
    audit_command,
    choose,
    contradiction_warning,
    differences,
    same_actions_different_outcomes,
)
from vla_gen_bench.eval.chain import genesis, seal
from vla_gen_bench.eval.records import EPISODES, RUN_JSON
from vla_gen_bench.eval.report import compare

from .conftest import record, standard_records, write_run

WARNING = "episodes have identical actions but different outcomes"


def forge(src: Path, dst: Path) -> Path:
    """What a forger does: copy the run, set every episode to success and re-seal the hash chain with chain.py."""
    shutil.copytree(src, dst)
    run = json.loads((dst / RUN_JSON).read_text())
    head, lines = genesis(run), []
    for line in (dst / EPISODES).read_text().splitlines():
        r = {k: v for k, v in json.loads(line).items() if k != "chain"}
        r.update(success=True, success_once=True, grasped=True, failure="success")
        data, head = seal(head, r)
        lines.append(data)
    (dst / EPISODES).write_bytes(b"".join(lines))
    run["episodes_chain"] = {**run["episodes_chain"], "lines": len(lines), "head": head}
    (dst / RUN_JSON).write_text(json.dumps(run, indent=1))
    return dst


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------- pure checks (no simulator)
def test_identical_actions_with_different_outcomes_are_found():
    a = [record("ind", k, True, action_digest=f"d{k}") for k in range(4)]
    b = [
        record("ind", 0, False, action_digest="d0"),  # same actions, other outcome: flagged
        record("ind", 1, True, action_digest="d1"),  # same actions, same outcome
        record("ind", 2, False, action_digest="other"),  # other actions: may rightly end otherwise
        record("ind", 3, False),  # no digest recorded: cannot tell
        record("ind", 9, False, action_digest="d0"),  # no counterpart in a
    ]
    assert same_actions_different_outcomes(a, b) == [("ind", 1000, 0)]
    # an outcome is more than success: the failure label of the same actions must agree too
    c = [record("ind", 1, True, action_digest="d1", failure="dropped")]
    assert same_actions_different_outcomes(a, c) == [("ind", 1001, 1)]


def test_contradiction_warning_counts_per_variant_and_needs_the_same_simulation():
    a = [record(v, k, True, action_digest=f"{v}{k}") for v in ("ind", "reposition") for k in range(3)]
    b = [record(v, k, k == 2, action_digest=f"{v}{k}") for v in ("ind", "reposition") for k in range(3)]
    lines = contradiction_warning(a, b, {"camera": "default"}, {"camera": "default"})
    assert lines[0].startswith(f"Warning: 4 {WARNING}: one run's outcomes are not what its actions produce")
    assert lines[0].endswith("audit both with vgb audit")
    assert lines[1:] == [
        "- ind: 2 episode(s) (seed 1000 episode 0, seed 1001 episode 1)",
        "- reposition: 2 episode(s) (seed 1000 episode 0, seed 1001 episode 1)",
    ]
    # another camera: an open-loop policy's same actions may rightly end differently
    assert contradiction_warning(a, b, {"camera": "default"}, {"camera": "fast"}) == []
    assert contradiction_warning(a, a) == []


def test_differences_name_the_fields_that_disagree():
    rec = {"success": False, "success_once": False, "grasped": False, "failure": "never_grasped",
           "action_digest": "ab"}  # fmt: skip
    assert differences(rec, dict(rec)) == []
    assert differences(rec, {**rec, "success": True, "failure": "success", "action_digest": "cd"}) == [
        "success",
        "failure",
        "action_digest",
    ]
    # a record from before digests is checked on its outcome only
    assert differences({**rec, "action_digest": None}, {**rec, "action_digest": "cd"}) == []


def test_the_sample_is_seeded():
    keys = [("ind", 0, k) for k in range(20)] + [("reposition", 0, k) for k in range(20)]
    first = choose(keys, 5, seed=7)
    assert first == choose(list(reversed(keys)), 5, seed=7) and len(set(first)) == 5
    assert first == sorted(first) and set(first) <= set(keys)
    assert choose(keys, 5, seed=8) != first
    assert choose(keys, 100, seed=7) == sorted(keys)


def test_the_random_policy_draws_per_step_keys_independently_of_its_history():
    """What makes a random-policy run auditable: the actions of an episode step depend on its sample key only."""
    import numpy as np

    from vla_gen_bench.policies.simple import RandomPolicy

    fresh, used = RandomPolicy(seed=1), RandomPolicy(seed=1)
    for k in range(5):  # history: other episodes, probe steps without keys
        used.act({"sample_key": 100 + k})
        used.act({})
    np.testing.assert_array_equal(fresh.act({"sample_key": 7}), used.act({"sample_key": 7}))
    assert not np.array_equal(fresh.act({"sample_key": 7}), fresh.act({"sample_key": 8}))
    assert not np.array_equal(fresh.act({"sample_key": 7}), RandomPolicy(seed=2).act({"sample_key": 7}))


def test_compare_warns_on_constructed_runs(tmp_path):
    honest = standard_records()
    for r in honest:
        r["action_digest"] = f"{r['variant']}-{r['episode']}"
    forged = [
        {**r, "success": True, "success_once": True, "grasped": True, "failure": "success"} for r in honest
    ]
    a, b = write_run(tmp_path / "honest", honest), write_run(tmp_path / "forged", forged)
    table = compare(b, a)
    n = sum(not r["success"] for r in honest)
    assert f"Warning: {n} {WARNING}" in table
    assert "- reposition: 8 episode(s) (seed 1000 episode 0, seed 1001 episode 1," in table
    assert WARNING not in compare(a, a)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(run_dir=Path("missing")), "is not a folder"),
        (dict(sample=0), "--sample must be >= 1"),
        (dict(out=Path("IN_RUN")), "is inside the audited run"),
        (dict(policy="nonsense"), "nonsense"),
    ],
)
def test_bad_input_is_refused_with_exit_2(tmp_path, capsys, args, message):
    run = write_run(tmp_path / "run", [record("ind", 0, True, policy="random")], policy="random",
                    policy_id="0" * 16, suite="ind", seeds=[0], episodes_per_seed=1)  # fmt: skip
    args = {"run_dir": run, "out": tmp_path / "audit.json", **args}
    if args["out"] == Path("IN_RUN"):
        args["out"] = run / "audit.json"
    assert audit_command(Audit(**args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("refused: ") and message in err
    assert not (tmp_path / "audit.json").exists() and not (run / "audit.json").exists()


def test_the_run_is_rebuilt_from_run_json():
    from vla_gen_bench.eval.audit import evaluate_config
    from vla_gen_bench.eval.evaluate import env_settings, policy_kwargs
    from vla_gen_bench.eval.records import RunInfo

    run = RunInfo(policy="random", policy_id="0" * 16, policy_args={"seed": 3, "name": "a b"},
                  suite="ind,reposition", suite_hash="s", catalog_hash="c", asset_pack_hash="a", control="ind",
                  variants={"ind": {}}, seeds=(0, 2), episodes_per_seed=5, camera="fast", robot="panda",
                  sim_freq=200, profile="vgb", asset_pack="procedural",
                  config={"asset_pack": None, "num_envs": 1, "policy_timeout": 30.0}, versions={},
                  created="2026-01-01T00:00:00+00:00")  # fmt: skip
    cfg = evaluate_config(run, Path("r"))
    assert policy_kwargs(cfg) == {"seed": 3, "name": "a b"}
    assert env_settings(cfg) == {"camera": "fast", "robot": "panda", "sim_freq": 200, "lighting": "default"}
    assert (cfg.suite, cfg.seeds, cfg.episodes, cfg.asset_pack, cfg.policy_timeout) == ("ind,reposition", (0, 2), 5,
                                                                                        None, 30.0)  # fmt: skip
    assert (cfg.videos, cfg.check, cfg.report, cfg.workers) == (0, False, False, 1)
    assert evaluate_config(run, Path("r"), policy="openvla:/here").policy == "openvla:/here"


def test_a_run_this_machine_cannot_recreate_is_refused(tmp_path, capsys):
    """Episodes from another catalog or asset pack cannot be re-run here; the audit says so instead of failing them."""
    run = write_run(tmp_path / "run", [record("ind", 0, True, policy="random")], policy="random",
                    policy_id="0" * 16, suite="ind", seeds=[0], episodes_per_seed=1, policy_args={},
                    camera="default", robot="panda", sim_freq=100, profile="vgb")  # fmt: skip
    assert audit_command(Audit(run, out=tmp_path / "a.json")) == 2
    err = capsys.readouterr().err
    assert "cannot re-simulate" in err and "suite_hash is " in err and "the run has 'ssssssss'" in err
    assert "asset_pack_hash is " in err


def test_audit_is_a_vgb_command(capsys):
    from vla_gen_bench.cli import main

    assert main(["audit", "no/such/run", "--sample", "2"]) == 2
    assert "no/such/run is not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- re-simulation (real runs)
@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    """A real run of the random policy: 2 variants x 2 episodes, one in-process worker, no videos."""
    from vla_gen_bench.eval.evaluate import Evaluate, evaluate

    out = tmp_path_factory.mktemp("audit") / "random"
    evaluate(Evaluate(policy="random", out=out, suite="ind,unseen_table", episodes=2, seeds=(0,), videos=0,
                      report=False))  # fmt: skip
    return out


@pytest.mark.sim
def test_an_honest_run_passes_and_is_left_untouched(random_run, tmp_path, capsys):
    before = files(random_run)
    out = tmp_path / "honest.json"
    assert audit_command(Audit(random_run, sample=4, seed=3, out=out)) == 0
    assert files(random_run) == before
    result = json.loads(out.read_text())
    assert result["sampled"] == 4 and result["differing"] == 0 and result["sample_seed"] == 3
    assert result["chain"]["verified"] and result["chain"]["sealed"]
    # the random policy reproduces: every re-run has the recorded digest (per-episode sampling keys)
    assert all(r["rerun"] == r["recorded"] and r["recorded"]["action_digest"] for r in result["episodes"])
    captured = capsys.readouterr()
    assert "all 4 re-simulated episodes agree" in captured.err and "--seed 3" in captured.err


@pytest.mark.sim
def test_a_forged_run_with_a_recomputed_chain_fails_the_audit(random_run, tmp_path, capsys):
    from vla_gen_bench.eval.evaluate import chain_state
    from vla_gen_bench.eval.records import read_run

    forged = forge(random_run, tmp_path / "forged")
    # the chain cannot catch it: it verifies and matches run.json
    assert chain_state(forged / EPISODES, read_run(forged)) == read_run(forged).episodes_chain
    failed = [json.loads(x) for x in (random_run / EPISODES).read_text().splitlines()]
    assert not all(r["success"] for r in failed), "the random policy succeeded everywhere; nothing was forged"
    before = files(forged)
    out = tmp_path / "forged.json"
    assert audit_command(Audit(forged, sample=4, seed=0, out=out)) == 1
    assert files(forged) == before
    result = json.loads(out.read_text())
    bad = [(r["variant"], r["seed"], r["episode"]) for r in result["episodes"] if r["differs"]]
    expected = sorted((r["variant"], r["seed"], r["episode"]) for r in failed if not r["success"])
    assert bad == expected
    for r in result["episodes"]:
        if r["differs"]:  # same actions, the recorded success is not what they produce
            assert r["recorded"]["action_digest"] == r["rerun"]["action_digest"]
            assert r["recorded"]["success"] and not r["rerun"]["success"]
            assert "success" in r["differs"] and "failure" in r["differs"]
    err = capsys.readouterr().err
    for variant, seed, episode in expected:
        assert f"differs: {variant} seed {seed} episode {episode}: success recorded True, re-run False" in err
    assert f"{len(expected)} of 4 re-simulated episodes differ" in err

    # compare names the contradiction, per variant, without re-simulating
    table = compare(forged, random_run)
    assert f"Warning: {len(expected)} {WARNING}" in table
    assert all(f"- {v}: " in table for v in {k[0] for k in expected})
    assert WARNING not in compare(random_run, random_run)


@pytest.mark.sim
def test_a_policy_with_another_id_is_refused(random_run, tmp_path, capsys):
    assert audit_command(Audit(random_run, policy="scripted", sample=1, out=tmp_path / "a.json")) == 2
    err = capsys.readouterr().err
    assert "different weights or metadata" in err and "refused: --policy scripted" in err
    assert not (tmp_path / "a.json").exists()
