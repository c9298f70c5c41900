"""The LeRobot bridge end to end, in LeRobot's own environment: an export read back by lerobot's LeRobotDataset,
a tiny randomly initialised ACT served to vgb and checked against lerobot's own ``select_action``, and ``vgb
evaluate --policy lerobot:<dir>`` in the simulator."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.lerobot.conftest import lerobot_side

pytestmark = pytest.mark.lerobot


def test_export_reads_back_in_lerobot(demos, exported, tmp_path):
    got = json.loads(lerobot_side("read", str(exported), "vgb/demos_tiny", str(tmp_path / "frames.npy")))
    assert got["fps"] == 5 and got["num_episodes"] == 2
    assert got["image_key"] == "observation.images.fast"
    assert got["features"]["observation.images.fast"] == {"dtype": "video", "shape": [64, 64, 3]}
    assert got["features"]["action"] == {"dtype": "float32", "shape": [7]}
    assert got["features"]["observation.state"] == {"dtype": "float32", "shape": [16]}
    frames = np.load(tmp_path / "frames.npy")
    row = 0
    for k in range(2):
        with np.load(demos / "episodes" / f"s1000_e{k:06d}.npz") as z:
            src_images = np.load(demos / "episodes" / f"s1000_e{k:06d}.images.npy")
            t = len(z["actions"])
            sl = slice(row, row + t)
            assert got["episode_index"][sl] == [k] * t
            assert got["frame_index"][sl] == list(range(t))
            np.testing.assert_array_equal(np.asarray(got["action"][sl], np.float32), z["actions"])
            np.testing.assert_array_equal(np.asarray(got["state"][sl], np.float32), z["states"])
            assert got["task"][sl] == [str(z["instruction"])] * t
        err = np.abs(frames[sl].astype(int) - src_images.astype(int))
        assert err.mean() < 8, f"episode {k}: decoded frames differ from the source by {err.mean():.1f}/255"
        # each decoded frame is nearest to its own source frame: none dropped, repeated or shuffled
        dist = np.abs(frames[sl][:, None].astype(int) - src_images[None].astype(int)).mean((2, 3, 4))
        assert (dist.argmin(1) == np.arange(t)).all()
        row += t
    assert row == len(frames)


def test_server_chunks_match_lerobot_select_action(tiny_act, tmp_path):
    from vla_gen_bench.policies.registry import resolve_policy

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    state = rng.normal(size=16).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "state.npy", state)
    want = np.asarray(json.loads(lerobot_side("select", str(tiny_act), str(tmp_path / "image.npy"),
                                              str(tmp_path / "state.npy"))), np.float32)  # fmt: skip
    want[:, 6] = np.clip(want[:, 6], -1, 1)  # the server clips the gripper to vgb's +1 open / -1 close range
    policy = resolve_policy(f"lerobot:{tiny_act}")
    try:
        assert policy.spec.chunk == 3 and policy.metadata["lerobot_type"] == "act"
        assert policy.metadata["mode"] == "chunk" and len(policy.metadata["weights_sha256"]) == 64
        policy.reset("put the red cube on the plate")
        got = policy.act({"image": image, "state": state, "instruction": "put the red cube on the plate"})
        assert got.shape == (3, 7)
        np.testing.assert_allclose(got, want, atol=1e-5)
        # a wrong state size is one line from the server, and the connection stays usable
        with pytest.raises(Exception, match="'state' has 5 values, the checkpoint reads 16"):
            policy.act({"image": image, "state": np.zeros(5, np.float32), "instruction": "x"})
        np.testing.assert_allclose(
            policy.act({"image": image, "state": state, "instruction": "x"}), want, atol=1e-5
        )
        assert not [m for m in sys.modules if m == "lerobot" or m.startswith("lerobot.")]
    finally:
        policy.close()
    assert policy.server.proc.poll() is not None, "the server outlived close()"


def test_step_mode_keeps_one_policy_state_per_episode(exported, tmp_path):
    """ACT with temporal ensembling needs the previous steps' chunks: the server answers one action per step from
    a per-connection policy state, reset on the episode's first observation, and matches lerobot's own loop."""
    from vla_gen_bench.policies.registry import resolve_policy

    ckpt = tmp_path / "act-ensemble"
    lerobot_side("make-act", str(exported), "vgb/demos_tiny", str(ckpt), "ensemble")
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    state = rng.normal(size=16).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "state.npy", state)
    want = np.asarray(json.loads(lerobot_side("select", str(ckpt), str(tmp_path / "image.npy"),
                                              str(tmp_path / "state.npy"), "3")), np.float32)  # fmt: skip
    want[:, 6] = np.clip(want[:, 6], -1, 1)
    policy = resolve_policy(f"lerobot:{ckpt}")
    try:
        assert policy.metadata["mode"] == "step" and policy.spec.chunk == 1
        obs = {"image": image, "state": state, "instruction": "x"}
        for episode in range(
            2
        ):  # the second episode starts from a fresh ensembler, as after lerobot's reset()
            policy.reset("x")
            got = np.concatenate([policy.act(obs) for _ in range(3)])
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"episode {episode}")
    finally:
        policy.close()


def test_refuses_checkpoint_without_processors(tiny_act, tmp_path):
    from vla_gen_bench.policies.registry import PolicyError, resolve_policy

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).write_bytes((tiny_act / f).read_bytes())
    with pytest.raises(PolicyError, match="no policy_preprocessor.json"):
        resolve_policy(f"lerobot:{bare}")


@pytest.mark.sim
@pytest.mark.slow
def test_vgb_evaluate_lerobot_policy(tiny_act, tmp_path):
    """``vgb evaluate --policy lerobot:<dir> --suite ind --episodes 2`` (a fresh process, as a user runs it)."""
    out = tmp_path / "run"
    code = ("import sys; from vla_gen_bench.cli import main; rc = main(sys.argv[1:]); "
            "bad = [m for m in sys.modules if m == 'lerobot' or m.startswith('lerobot.')]; "
            "assert not bad, bad; sys.exit(rc)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, "evaluate", "--policy", f"lerobot:{tiny_act}", "--suite", "ind",
                        "--episodes", "2", "--videos", "0", "--out", str(out)], capture_output=True, text=True,
                       timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["policy"] == f"lerobot:{tiny_act}"
    assert run["action_spec"]["chunk"] == 3
    assert run["policy_metadata"]["lerobot_type"] == "act"
    recs = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert [(r["variant"], r["episode"]) for r in recs] == [("ind", 0), ("ind", 1)]
    assert all(r["steps"] > 0 for r in recs)
