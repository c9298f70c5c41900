"""Building a policy is under --policy-timeout too: a constructor that hangs or raises ends the run with one line."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vla_gen_bench.eval.guard import PolicyCallError, construct
from vla_gen_bench.eval.policy_process import PolicyProcess, PolicyProcessError
from vla_gen_bench.options import PolicyOptions
from vla_gen_bench.policies.registry import PolicyError, PolicySpec
from vla_gen_bench.policies.serve import Serve, serve_command

ROOT = Path(__file__).resolve().parents[2]
HANGS = "tests.eval.policies_for_tests:HangsInInit"
RAISES = "tests.eval.policies_for_tests:RaisesInInit"


def _hang() -> None:
    time.sleep(3600)


def _raise() -> None:
    raise FileNotFoundError("weights.bin is missing")


def _refuse() -> None:
    raise PolicyError("unknown unnorm key 'x'")


def test_construct_returns_times_out_and_names_a_failing_constructor():
    assert construct(lambda: 42, "p", 5.0) == 42 and construct(lambda: 7, "p", None) == 7
    t0 = time.monotonic()
    with pytest.raises(PolicyCallError, match=r"^my:Pol: building the policy did not finish within 0\.5 s .*raise --policy-timeout"):  # fmt: skip
        construct(_hang, "my:Pol", 0.5)
    assert time.monotonic() - t0 < 3.0
    for timeout in (5.0, None):
        with pytest.raises(PolicyCallError, match=r"raised FileNotFoundError: weights.bin is missing \(.*test_policy_construction\.py:\d+\)") as e:  # fmt: skip
            construct(_raise, "my:Pol", timeout)
        assert "\n" not in str(e.value)
        with pytest.raises(PolicyError, match="unknown unnorm key"):  # a refusal stays a refusal (exit 2)
            construct(_refuse, "my:Pol", timeout)


def test_evaluate_with_a_constructor_that_never_returns_exits_1_with_one_line(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vla_gen_bench.cli", "evaluate", "--policy", HANGS, "--suite", "ind", "--episodes",
           "1", "--videos", "0", "--no-report", "--policy-timeout", "2", "--out", str(out)]  # fmt: skip
    t0 = time.monotonic()
    # the hard timeout keeps this test from hanging if the command does
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert p.returncode == 1, p.stderr
    err = p.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"{HANGS}: building the policy did not finish within 2 s" in err and "--policy-timeout" in err, err
    assert time.monotonic() - t0 < 200
    assert not out.exists(), "a run refused before any episode leaves no folder behind"


def test_policy_process_load_that_never_finishes_times_out_and_is_ended():
    t0 = time.monotonic()
    with pytest.raises(PolicyProcessError, match=rf"{HANGS}: building the policy in the policy process did not finish within 2 s") as e:  # fmt: skip
        PolicyProcess(
            PolicySpec.parse(HANGS), PolicyOptions(), max_batch=4, max_wait_ms=None, start_timeout_s=2.0
        )
    assert "\n" not in str(e.value)
    assert time.monotonic() - t0 < 120
    assert not [c for c in multiprocessing.active_children() if c.name == "vgb-policy"], (
        "the child was left running"
    )
    with pytest.raises(PolicyProcessError, match=r"raised FileNotFoundError: weights.bin is missing on purpose \(.*policies_for_tests\.py:\d+\).*policy process"):  # fmt: skip
        PolicyProcess(
            PolicySpec.parse(RAISES), PolicyOptions(), max_batch=4, max_wait_ms=None, start_timeout_s=60.0
        )


def test_serve_with_a_constructor_that_raises_is_one_line(capsys):
    assert serve_command(Serve(policy=RAISES, port=0)) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "raised FileNotFoundError: weights.bin is missing on purpose" in err, err
