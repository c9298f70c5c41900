"""``vgb evaluate`` end to end in the real simulator: outputs, resume after a torn write or a kill, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vla_gen_bench.eval.evaluate import EPISODES, RUN_JSON, Evaluate, RunDirError, evaluate, read_done

pytestmark = pytest.mark.sim
FIELDS = {"variant", "axis", "split", "severity", "seed", "episode", "policy", "success", "success_once", "grasped",
          "consecutive_grasp", "failure", "steps", "return", "wall_s", "instruction", "matched"}  # fmt: skip


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / EPISODES).read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "scripted"
    evaluate(Evaluate(policy="scripted", out=out, suite="ind,unseen_objects,reposition", episodes=1, seeds=(0, 1),
                      videos=1))  # fmt: skip
    return out


def test_outputs_and_records(smoke_run):
    for name in (EPISODES, RUN_JSON, "episodes.csv", "summary.csv", "report.md", "report.html"):
        assert (smoke_run / name).exists(), name
    recs = lines(smoke_run)
    assert len(recs) == 3 * 2
    assert all(FIELDS <= set(r) for r in recs)
    assert {(r["variant"], r["seed"], r["episode"]) for r in recs} == {
        (v, s, 0) for v in ("ind", "unseen_objects", "reposition") for s in (0, 1)
    }
    assert sum(r["success"] for r in recs) >= 5, "the oracle should solve nearly all of these"
    run = json.loads((smoke_run / RUN_JSON).read_text())
    for k in (
        "suite_hash",
        "catalog_hash",
        "asset_pack_hash",
        "policy_id",
        "versions",
        "action_spec",
        "conventions_check",
    ):
        assert run[k], k
    assert run["variants"]["reposition"]["axis"] == "execution"
    videos = [r["video"] for r in recs if r.get("video")]
    assert videos and all((smoke_run / v).stat().st_size > 1000 for v in videos)
    # the instruction recorded is the one the manifest made
    from vla_gen_bench.variants import episode

    r = next(r for r in recs if r["variant"] == "unseen_objects")
    assert r["instruction"] == episode("unseen_objects", r["seed"], r["episode"]).instruction


def test_rerun_resumes_and_a_torn_line_is_rerun(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(smoke_run, run)
    before = lines(run)
    raw = (run / EPISODES).read_bytes()
    (run / EPISODES).write_bytes(
        raw[: raw.rfind(b"\n", 0, len(raw) - 1) + 1] + b'{"variant": "repos'
    )  # torn write
    evaluate(Evaluate(policy="scripted", out=run, suite="ind,unseen_objects,reposition", episodes=1, seeds=(0, 1),
                      videos=1, report=False))  # fmt: skip
    after = lines(run)
    assert len(after) == len(before)
    assert [r["variant"] for r in after[:-1]] == [r["variant"] for r in before[:-1]]
    assert (after[-1]["variant"], after[-1]["seed"], after[-1]["episode"]) == \
        (before[-1]["variant"], before[-1]["seed"], before[-1]["episode"])  # fmt: skip
    # nothing left to do: a third run adds nothing
    evaluate(Evaluate(policy="scripted", out=run, suite="ind,unseen_objects,reposition", episodes=1, seeds=(0, 1),
                      report=False))  # fmt: skip
    assert len(lines(run)) == len(before)


def test_a_different_run_in_the_same_directory_is_refused(smoke_run):
    with pytest.raises(RunDirError, match="policy"):
        evaluate(Evaluate(policy="random", out=smoke_run, suite="ind,unseen_objects,reposition", episodes=1,
                          seeds=(0, 1)))  # fmt: skip
    with pytest.raises(RunDirError, match="suite"):
        evaluate(Evaluate(policy="scripted", out=smoke_run, suite="smoke", episodes=1, seeds=(0, 1)))


def test_malformed_record_line_is_reported_with_its_number(tmp_path):
    from .conftest import record

    (tmp_path / EPISODES).write_text(json.dumps(record("ind", 0, True)) + "\nnot json\n")
    with pytest.raises(RunDirError, match=r"episodes.jsonl:2"):
        read_done(tmp_path / EPISODES)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("tests.eval.policies_for_tests:NormalisedActions", "beyond the env's bounds"),
        ("tests.eval.policies_for_tests:WrongShape", "shape"),
        ("tests.eval.policies_for_tests:NaNActions", "non-finite"),
        ("tests.eval.policies_for_tests:QuaternionPolicy", "rotation"),
        ("zero", "never moved"),
    ],
)
def test_conventions_check_refuses_broken_policies(tmp_path, policy, message):
    from vla_gen_bench.eval.conventions import ActionError

    with pytest.raises(ActionError, match=message):
        evaluate(Evaluate(policy=policy, out=tmp_path / "r", suite="ind", episodes=1))
    assert not (tmp_path / "r" / EPISODES).exists(), "nothing may be scored for a refused policy"


def test_action_chunks_run_open_loop(tmp_path):
    out = evaluate(Evaluate(policy="tests.eval.policies_for_tests:ChunkedOracle", out=tmp_path / "c", suite="ind",
                            episodes=1, videos=0, report=False))  # fmt: skip
    rec = lines(out)[0]
    assert rec["steps"] == 80


@pytest.mark.slow
def test_kill_minus_nine_loses_at_most_the_episodes_in_flight(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vla_gen_bench.cli", "evaluate", "--policy", "scripted", "--suite", "ind",
           "--episodes", "6", "--out", str(out), "--videos", "0", "--no-report"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if (out / EPISODES).exists() and len((out / EPISODES).read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    kept = lines(out)
    assert 2 <= len(kept) < 6
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    final = lines(out)
    assert [r["episode"] for r in final[: len(kept)]] == [r["episode"] for r in kept]
    assert sorted(r["episode"] for r in final) == list(range(6))


@pytest.mark.slow
def test_two_worker_processes_give_the_same_episodes(tmp_path, smoke_run):
    out = evaluate(Evaluate(policy="scripted", out=tmp_path / "w2", suite="ind,unseen_objects,reposition",
                            episodes=1, seeds=(0, 1), workers=2, videos=0, report=False))  # fmt: skip
    a = {(r["variant"], r["seed"], r["episode"]): r for r in lines(smoke_run)}
    b = {(r["variant"], r["seed"], r["episode"]): r for r in lines(out)}
    assert a.keys() == b.keys()
    assert {r["worker"] for r in b.values()} == {0, 1}
    assert all(a[k]["instruction"] == b[k]["instruction"] for k in a)
    # an episode depends only on (variant, seed, episode): not on the process, the worker or what ran before it
    assert {k: (r["action_digest"], r["success"]) for k, r in a.items()} == {
        k: (r["action_digest"], r["success"]) for k, r in b.items()
    }


@pytest.mark.slow
def test_ray_backend_runs_the_same_items_and_returns_videos(tmp_path):
    pytest.importorskip("ray")
    out = evaluate(Evaluate(policy="scripted", out=tmp_path / "ray", suite="ind", episodes=2, backend="ray",
                            workers=1, videos=1, report=False))  # fmt: skip
    recs = lines(out)
    assert sorted(r["episode"] for r in recs) == [0, 1]
    videos = [r["video"] for r in recs if r.get("video")]
    assert videos and all((out / v).stat().st_size > 1000 for v in videos)
    assert all("_video_data" not in r for r in recs)


def test_a_policy_served_over_websocket_scores_like_the_local_one(tmp_path, smoke_run):
    """`vgb serve` + `--policy ws://...`: the openpi-protocol path end to end (privileged poses travel too)."""
    from vla_gen_bench.policies.scripted import ScriptedPolicy
    from vla_gen_bench.policies.serve import PolicyServer

    server = PolicyServer(ScriptedPolicy(), host="127.0.0.1", port=0)
    port = server.start()
    out = evaluate(Evaluate(policy=f"ws://127.0.0.1:{port}", out=tmp_path / "ws", suite="ind", episodes=1,
                            seeds=(0, 1), videos=0, report=False))  # fmt: skip
    remote = {(r["seed"], r["episode"]): r for r in lines(out)}
    local = {(r["seed"], r["episode"]): r for r in lines(smoke_run) if r["variant"] == "ind"}
    assert remote.keys() == local.keys()
    assert all(remote[k]["instruction"] == local[k]["instruction"] for k in local)
    assert sum(r["success"] for r in remote.values()) >= 1
    assert json.loads((out / RUN_JSON).read_text())["action_spec"]["privileged"] is True
