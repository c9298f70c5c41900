"""One policy process serving several simulator workers: same results as in-process, and faults handled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_gen_bench.eval.evaluate import (
    EPISODES,
    RUN_JSON,
    EvalConfigError,
    Evaluate,
    evaluate,
    evaluate_command,
)
from vla_gen_bench.eval.policy_process import PolicyProcessError, batchable, wants_policy_process
from vla_gen_bench.options import PolicyOptions

BATCHED = "tests.eval.policies_for_tests:BatchedWanderer"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from vla_gen_bench.models.checkpoint import init_checkpoint

    return init_checkpoint("tiny", tmp_path_factory.mktemp("ckpt") / "tiny", seed=0)


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / EPISODES).read_text().splitlines()]


def by_key(run: Path) -> dict[tuple, dict]:
    recs = lines(run)
    keys = [(r["variant"], r["seed"], r["episode"]) for r in recs]
    assert len(keys) == len(set(keys)), "an episode was written twice"
    return dict(zip(keys, recs, strict=True))


def test_which_policies_get_a_policy_process():
    assert batchable("openvla:/some/dir") and batchable(BATCHED)
    assert not batchable("scripted") and not batchable("ws://h:1") and not batchable("no.such.module:X")
    assert not batchable("tests.eval.policies_for_tests:Wanderer")
    assert wants_policy_process(BATCHED, workers=2, num_envs=1, mode="auto", gpu=True)
    assert not wants_policy_process(
        BATCHED, workers=2, num_envs=1, mode="auto", gpu=False
    )  # small model, CPU
    assert wants_policy_process(BATCHED, workers=2, num_envs=1, mode="on", gpu=False)
    assert not wants_policy_process(BATCHED, workers=1, num_envs=1, mode="auto", gpu=True)
    assert not wants_policy_process(BATCHED, workers=2, num_envs=1, mode="off", gpu=True)
    assert not wants_policy_process("scripted", workers=2, num_envs=1, mode="auto", gpu=True)
    with pytest.raises(ValueError, match="cannot be batched"):
        wants_policy_process("scripted", workers=2, num_envs=1, mode="on")
    with pytest.raises(ValueError, match="--workers >= 2"):
        wants_policy_process(BATCHED, workers=1, num_envs=1, mode="on")


def test_bad_batching_options_are_refused(tmp_path):
    with pytest.raises(EvalConfigError, match="max-batch"):
        evaluate(Evaluate(policy=BATCHED, out=tmp_path / "r", suite="ind", max_batch=0))
    with pytest.raises(EvalConfigError, match="cannot be batched"):
        evaluate(Evaluate(policy="random", out=tmp_path / "r", suite="ind", workers=2, policy_server="on"))


@pytest.mark.sim
@pytest.mark.slow
def test_batched_sampling_matches_per_worker_models_episode_by_episode(tmp_path, tiny_ckpt):
    """The tiny OpenVLA sampling at T = 0.6 on 2 workers: a model in each worker vs one policy process answering
    both in batches give the same executed actions (action digests) and outcomes on the same episodes. (Each worker
    runs the probe and then one episode in both runs, so the simulators' histories match too.)"""
    common = dict(policy=f"openvla:{tiny_ckpt}", suite="ind", episodes=2, seeds=(0,), camera="fast", videos=0,
                  report=False, workers=2, policy_options=PolicyOptions(temperature=0.6, seed=5))  # fmt: skip
    copies = by_key(evaluate(Evaluate(out=tmp_path / "copies", policy_server="off", **common)))
    served = evaluate(Evaluate(out=tmp_path / "served", max_batch=4, policy_server="on", **common))
    batched = by_key(served)
    assert copies.keys() == batched.keys() and len(copies) == 2
    for k in copies:
        assert copies[k]["action_digest"] == batched[k]["action_digest"], k
        assert (copies[k]["success"], copies[k]["failure"]) == (
            batched[k]["success"],
            batched[k]["failure"],
        ), k
    run = json.loads((served / RUN_JSON).read_text())
    assert run["timing"]["policy_process"] is True and run["timing"]["batching"]["requests"] >= 2 * 80
    assert run["policy_id"] == json.loads((tmp_path / "copies" / RUN_JSON).read_text())["policy_id"]


@pytest.mark.sim
@pytest.mark.slow
def test_a_dead_simulator_worker_is_replaced_and_nothing_is_lost_or_doubled(tmp_path):
    marker = tmp_path / "die"
    marker.touch()
    out = evaluate(Evaluate(policy="tests.eval.policies_for_tests:Wanderer", out=tmp_path / "w", suite="ind",
                            episodes=3, workers=2, camera="fast", videos=0, report=False,
                            policy_options=PolicyOptions(extra={"marker": str(marker), "after": 30})))  # fmt: skip
    assert not marker.exists(), "the fault never fired"
    assert sorted(k[2] for k in by_key(out)) == [0, 1, 2]


@pytest.mark.sim
@pytest.mark.slow
def test_policy_process_death_stops_the_run_and_a_rerun_resumes(tmp_path, capsys):
    marker = tmp_path / "die"
    marker.touch()
    cfg = Evaluate(policy=BATCHED, out=tmp_path / "p", suite="ind", episodes=3, workers=2, camera="fast", videos=0,
                   report=False, policy_server="on", policy_options=PolicyOptions(extra={"marker": str(marker), "after": 100, "mode": "crash"}))  # fmt: skip
    with pytest.raises(PolicyProcessError, match="re-run the same command to resume"):
        evaluate(cfg)
    kept = lines(cfg.out) if (cfg.out / EPISODES).exists() else []
    assert len(kept) < 3
    evaluate(cfg)  # the marker is gone: this run finishes the rest
    assert sorted(k[2] for k in by_key(cfg.out)) == [0, 1, 2]


@pytest.mark.sim
@pytest.mark.slow
def test_a_hung_policy_hits_the_timeout_with_a_resume_hint(tmp_path, capsys):
    marker = tmp_path / "hang"
    marker.touch()
    cfg = Evaluate(policy=BATCHED, out=tmp_path / "h", suite="ind", episodes=2, workers=2, camera="fast", videos=0,
                   report=False, policy_timeout=3.0, policy_server="on",
                   policy_options=PolicyOptions(extra={"marker": str(marker), "after": 50, "mode": "hang"}))  # fmt: skip
    assert evaluate_command(cfg) == 1
    err = capsys.readouterr().err
    assert "within 3 s" in err and "re-run the same command to resume" in err
