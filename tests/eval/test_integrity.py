"""What ``vgb evaluate`` guarantees without starting the simulator (issue 20): refusals before any env, nothing a
user wrote overwritten, nothing they did not mean to run run, policy calls timed and named, the hash chain."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vla_gen_bench.eval import evaluate as ev
from vla_gen_bench.eval.chain import FIELD, genesis, verify
from vla_gen_bench.eval.evaluate import (
    EPISODES,
    Evaluate,
    RunDirError,
    chain_state,
    evaluate_command,
    read_done,
)
from vla_gen_bench.eval.guard import GuardedPolicy, PolicyCallError
from vla_gen_bench.eval.records import EpisodeRecord, append, read_run
from vla_gen_bench.options import PolicyOptions

ROOT = Path(__file__).resolve().parents[2]


def rec(episode: int, success: bool) -> EpisodeRecord:
    return EpisodeRecord(variant="ind", axis="in-distribution", split="train", seed=0, episode=episode,
                         policy="scripted", success=success, success_once=success, grasped=success,
                         failure="success" if success else "never_grasped", instruction="put the cube on the plate")  # fmt: skip


def refused(capsys, **kw) -> str:
    """Run evaluate_command; it must exit 2 quickly (no simulator) with one 'refused:' line."""
    t0 = time.perf_counter()
    assert evaluate_command(Evaluate(**{"policy": "scripted", "suite": "ind", "episodes": 1, **kw})) == 2
    assert time.perf_counter() - t0 < 10, "refused only after something slow started"
    err = capsys.readouterr().err.strip()
    assert err.startswith("refused:") and "Traceback" not in err, err
    return " ".join(err.split())


# ---------------------------------------------------------------------------------------------- options and --out
def test_out_that_is_a_file_or_a_folder_of_other_files_is_refused_and_left_untouched(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert "is a file" in refused(capsys, out=f)
    mine = tmp_path / "analysis"
    mine.mkdir()
    (mine / "summary.csv").write_text("my,own\n")
    (mine / "report.md").write_text("# my report\n")
    msg = refused(capsys, out=mine)
    assert "already holds files that are not a vgb run (report.md, summary.csv)" in msg and "--out" in msg
    assert (mine / "summary.csv").read_text() == "my,own\n" and (
        mine / "report.md"
    ).read_text() == "# my report\n"
    assert sorted(p.name for p in mine.iterdir()) == ["report.md", "summary.csv"]


def test_out_that_cannot_be_created_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert "cannot create --out" in refused(capsys, out=tmp_path / "file" / "run")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"seeds": (2**32,)}, r"--seeds must be integers in \[0, 4294967295\]"),
        ({"seeds": (0, 0)}, "--seeds lists 0 more than once"),
        ({"episodes": 100_000_000}, "100,000,000 episodes planned .* exceeds 1,000,000"),
        ({"policy": "scriptd"}, "unknown policy 'scriptd'; did you mean 'scripted'"),
        ({"policy": "no_such_pkg_xyz.mod:Policy"}, "cannot import module 'no_such_pkg_xyz.mod'.*PYTHONPATH="),
        ({"policy": "tests.eval.policies_for_tests:_trigger"}, "names a function, not a class"),
        ({"policy": "scripted", "policy_options": PolicyOptions(temperature=1)}, "scripted does not accept option"),
        ({"policy": "tests.eval.policies_for_tests:Wanderer", "policy_options": PolicyOptions(extra={"speed": 2})},
         r"does not accept option\(s\) 'speed'.*it accepts: marker, after"),
        ({"policy": "openvla:/no/such/ckpt"}, "checkpoint folder /no/such/ckpt does not exist"),
        ({"policy": "ws://localhost:1?timeot=3"}, "unknown option 'timeot'"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_before_any_env_and_leave_no_folder(tmp_path, capsys, kw, message):
    out = tmp_path / "run"
    msg = refused(capsys, out=out, **kw)
    assert re.search(message, msg), msg
    assert not out.exists(), "a refused run leaves no (empty) folder"


def test_a_function_named_as_policy_is_never_called(tmp_path, capsys):
    marker = tmp_path / "x"
    msg = refused(capsys, out=tmp_path / "run", policy="os:system",
                  policy_options=PolicyOptions(extra={"command": "touch " + str(marker)}))  # fmt: skip
    assert "names a builtin_function_or_method, not a class" in msg and "Nothing was called" in msg
    assert not marker.exists()


def test_unwritable_cache_or_home_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for env in ({"VGB_CACHE": str(blocker / "cache")}, {"HOME": str(blocker / "home"), "VGB_CACHE": ""}):
        env = {**{k: v for k, v in __import__("os").environ.items() if k != "VGB_CACHE"}, **env}
        if not env["VGB_CACHE"]:
            del env["VGB_CACHE"]
        p = subprocess.run([sys.executable, "-m", "vla_gen_bench.cli", "evaluate", "--policy", "scripted", "--suite",
                            "ind", "--episodes", "1", "--out", str(tmp_path / "run")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr and "set VGB_CACHE to a writable folder" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


# ---------------------------------------------------------------------------------------------- interruptions
def test_ctrl_c_and_a_dead_server_say_what_was_kept(tmp_path, capsys, monkeypatch):
    from vla_gen_bench.policies.remote import RemotePolicyError

    def interrupted(cfg, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "evaluate", interrupted)
    cfg = Evaluate(policy="scripted", out=tmp_path / "run", suite="ind")
    assert evaluate_command(cfg) == 130
    err = capsys.readouterr().err
    assert (
        "No episode had finished yet" in err and EPISODES not in err
    )  # never names a file that does not exist

    def server_died(cfg, console):
        append(cfg.out / EPISODES, rec(0, False), "0" * 64)
        raise RemotePolicyError(
            "the policy server at ws://h:1 closed the connection mid-episode (no close frame)"
        )

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(ev, "evaluate", server_died)
    assert evaluate_command(cfg) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "closed the connection mid-episode" in err
    assert "1 finished episode(s) are kept in" in err and "re-run the same command to resume" in err


# ---------------------------------------------------------------------------------------------- the watchdog
class Sleepy:
    spec = None
    metadata: dict = {}

    def __init__(self, hang_at: int = 10**9, raise_at: int = 10**9):
        self.calls, self.hang_at, self.raise_at = 0, hang_at, raise_at

    def reset(self, instruction):
        pass

    def act(self, obs):
        self.calls += 1
        if self.calls == self.hang_at:
            time.sleep(30)
        if self.calls == self.raise_at:
            raise ValueError("the model exploded\nsecond line")
        return np.zeros((2, 7)) if self.calls % 2 else np.zeros(7)


def test_a_hung_act_times_out_naming_variant_seed_episode_and_step():
    g = GuardedPolicy(Sleepy(hang_at=3), "my.mod:Sleepy", timeout_s=0.5)
    g.where = "variant ind, seed 4, episode 7"
    g.reset("x")
    g.act({}), g.act({})  # a chunk of 2 then one action: 3 control steps
    t0 = time.perf_counter()
    with pytest.raises(PolicyCallError, match=r"my.mod:Sleepy: act\(\) did not return within 0.5 s at variant ind, "
                                              r"seed 4, episode 7, step 3 \(raise --policy-timeout"):  # fmt: skip
        g.act({})
    assert time.perf_counter() - t0 < 5
    assert all(
        t.daemon for t in threading.enumerate() if t.name.startswith("vgb-policy")
    )  # ends with the process


def test_a_policy_exception_names_where_and_the_policy_line():
    g = GuardedPolicy(Sleepy(raise_at=2), "my.mod:Sleepy", timeout_s=5)
    g.where = "variant unseen_table, seed 0, episode 2"
    g.reset("x")
    g.act({})
    with pytest.raises(PolicyCallError, match=r"act\(\) raised ValueError: the model exploded second line "
                                              r"\(.*test_integrity.py:\d+\) at variant unseen_table, seed 0, "
                                              r"episode 2, step 2$"):  # fmt: skip
        g.act({})
    assert GuardedPolicy(Sleepy(), "p", None).act({}).shape == (2, 7)  # no watchdog: called directly


def test_the_guard_keeps_act_batch_and_its_signature():
    from vla_gen_bench.policies.base import takes_sample_keys

    from .policies_for_tests import BatchedWanderer, Wanderer

    g = GuardedPolicy(BatchedWanderer(), "b", 5)
    assert takes_sample_keys(g.act_batch) and g.act_batch(
        np.zeros((3, 8, 8, 3), np.uint8), ["x"] * 3
    ).shape == (3, 7)
    assert not hasattr(GuardedPolicy(Wanderer(), "w", 5), "act_batch")


# ---------------------------------------------------------------------------------------------- the record file
def test_the_evaluator_chains_its_lines_and_resume_refuses_an_edited_file(tmp_path):
    run = {
        "policy_id": "a" * 16,
        "suite_hash": "b" * 16,
        "asset_pack_hash": "c" * 16,
        "created": "2026-01-01",
    }
    path = tmp_path / EPISODES
    head = chain_state(path, run)["head"]
    assert head == genesis(run)
    for k in range(3):
        head = append(path, rec(k, k == 1), head)
    state = chain_state(path, run)
    assert (state["lines"], state["head"], state["unbound_lines"]) == (3, head, 0)
    assert all(FIELD in json.loads(line) for line in path.read_text().splitlines())
    lines = path.read_text().splitlines()
    for bad in (lines[1].replace('"success": true', '"success": false'), lines[1].replace(": ", ":  ", 1)):
        path.write_text("\n".join([lines[0], bad, lines[2]]) + "\n")
        with pytest.raises(RunDirError, match=r"episodes.jsonl:2: this line is not what 'vgb evaluate' wrote.*delete "
                                              r"line 2 and every line after it"):  # fmt: skip
            chain_state(path, run)
    # the remedy works: drop the edited line and what follows, the chain continues from line 1
    path.write_text(lines[0] + "\n")
    head = append(path, rec(1, True), chain_state(path, run)["head"])
    assert verify(path.read_text().splitlines(), genesis(run)).verified
    # another run's identity starts another chain
    assert verify(path.read_text().splitlines(), genesis({**run, "policy_id": "d" * 16})).broken == 1


def test_resume_refuses_conflicting_duplicates_with_line_numbers(tmp_path):
    path = tmp_path / EPISODES
    path.write_text(json.dumps(rec(3, False).to_dict()) + "\n" + json.dumps(rec(3, True).to_dict()) + "\n")
    with pytest.raises(RunDirError, match=r"episodes.jsonl:2: \(ind, seed 0, episode 3\) is recorded again with a "
                                          r"different outcome \(first on line 1\).*Delete line 1 and every line "
                                          r"after it"):  # fmt: skip
        read_done(path)


# ---------------------------------------------------------------------------------------------- in the simulator
@pytest.mark.sim
@pytest.mark.slow
def test_a_policy_that_raises_or_hangs_mid_episode_is_named_and_the_run_resumes_sealed(tmp_path, capsys):
    from vla_gen_bench.leaderboard.derive import verify_run

    def cfg(out, mode, marker):
        return Evaluate(policy="tests.eval.policies_for_tests:Faulty", out=out, suite="ind", episodes=2,
                        camera="fast", videos=0, report=False, policy_timeout=2.0,
                        policy_options=PolicyOptions(extra={"marker": str(marker), "after": 100, "mode": mode}))  # fmt: skip

    for mode, what in (("raise", r"act\(\) raised RuntimeError: the policy failed on purpose \(.*policies_for_tests"
                                 r".py:\d+\) at"), ("hang", r"act\(\) did not return within 2 s at")):  # fmt: skip
        marker = tmp_path / mode
        marker.touch()
        c = cfg(tmp_path / f"run-{mode}", mode, marker)
        assert evaluate_command(c) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert re.search(what + r" variant ind, seed 0, episode 1, step \d+[^.]*\. 1 finished episode\(s\) are kept in .*"
                                r"re-run the same command to resume", err), err  # fmt: skip
        assert len((c.out / EPISODES).read_text().splitlines()) == 1  # episode 0 kept, nothing half-written
    assert evaluate_command(c) == 0  # the marker is gone: the same command finishes the run
    run = read_run(c.out)
    assert run.policy_timeout_s == 2.0 and run.episodes_chain["lines"] == 2
    assert verify_run(c.out, run) == "verified"


def test_vgb_serve_binds_localhost_unless_told_otherwise():
    import inspect

    from vla_gen_bench.policies.serve import PolicyServer, Serve, serve

    assert Serve(policy="zero").host == "127.0.0.1"
    assert inspect.signature(PolicyServer).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
