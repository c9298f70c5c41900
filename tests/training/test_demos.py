"""Demonstrations: the idle-action filter, training-pool checks, and a real 2-episode collection (sim)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_gen_bench.options import PolicyOptions
from vla_gen_bench.training.demos import IdleFilter, action_statistics


def _a(xyz=(0, 0, 0), rot=(0, 0, 0), g=1.0):
    return [*xyz, *rot, g]


def test_filter_drops_idle_steps_and_keeps_gripper_toggles():
    actions = np.array([
        _a((0.05, 0, 0)),            # moves
        _a((0.001, 0, 0)),           # idle (below 1 cm)
        _a(g=-1.0),                  # gripper closes: kept although the arm is still
        _a(g=-1.0),                  # still closed, idle: dropped
        _a(rot=(0, 0, 0.3), g=-1.0),  # rotation above 0.06 rad
        _a(rot=(0, 0, 0.05), g=-1.0),  # rotation below the threshold: dropped
        _a(g=1.0),                   # gripper opens: kept
        _a((0, 0, 0.02), g=1.0),     # moves
    ], dtype=np.float32)  # fmt: skip
    keep = IdleFilter()(actions)
    assert keep.tolist() == [True, False, True, False, True, False, True, True]
    assert IdleFilter(keep_gripper_changes=False)(actions).tolist() == [True, False, False, False, True, False,
                                                                        False, True]  # fmt: skip
    assert IdleFilter(enabled=False)(actions).all()


def test_filter_truncates_after_success_holds():
    actions = np.array([_a((0.05, 0, 0))] * 12, dtype=np.float32)
    success = np.zeros(12, bool)
    success[3:] = True
    keep = IdleFilter(success_hold=6)(actions, success)
    # success holds for the 6th consecutive step at index 8: everything after it goes
    assert keep.tolist() == [True] * 9 + [False] * 3
    idle = np.array([_a()] * 12, dtype=np.float32)
    assert IdleFilter()(idle, success).tolist() == [True] + [False] * 11  # the first step counts as a toggle
    kept = IdleFilter(keep_idle_after_success=True)(idle, success)
    assert kept[3:9].all() and not kept[9:].any()


def test_action_statistics_openvla_format():
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.05, 0.05, size=(500, 7))
    a[:, 6] = rng.choice([-1.0, 1.0], 500)
    s = action_statistics(a)
    assert set(s) == {"mean", "std", "max", "min", "q01", "q99", "mask"}
    assert s["mask"] == [True] * 6 + [False]
    assert np.allclose(s["q01"], np.quantile(a, 0.01, axis=0))
    assert all(lo <= hi for lo, hi in zip(s["q01"], s["q99"], strict=True))


def test_test_pools_and_eval_seeds_are_refused():
    from vla_gen_bench.training.demos import DemoConfigError, training_specs
    from vla_gen_bench.variants import TrainingPoolError

    assert len(training_specs("ind", 1000, 3)) == 3
    for variant in ("unseen_table", "unseen_objects", "dyn_noise_weak", "unseen_instructions"):
        with pytest.raises(TrainingPoolError):
            training_specs(variant, 1000, 4)
    with pytest.raises(DemoConfigError, match="evaluation seed"):
        training_specs("ind", 0, 2)


def test_collect_command_refuses_a_test_variant(tmp_path):
    from vla_gen_bench.training.commands import CollectDemos, collect_demos

    assert collect_demos(CollectDemos(episodes=2, out=tmp_path / "d", variant="unseen_table")) == 2
    assert not (tmp_path / "d" / "episodes").exists()


@pytest.mark.sim
def test_collect_two_episodes_writes_a_valid_dataset(tmp_path):
    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.demos import DemoConfig, collect, done_names

    out = tmp_path / "demos"
    card = collect(DemoConfig(episodes=2, workers=1, out=out, camera="fast"), progress=False)
    assert card["episodes_kept"] + card["episodes_failed"] == 2
    assert card["episodes_kept"] >= 1  # the oracle succeeds ~always
    assert card["image_shape"] == [128, 128, 3]
    stats = json.loads((out / "dataset_statistics.json").read_text())["vgb_demos"]
    assert stats["num_trajectories"] == card["episodes_kept"]
    assert len(stats["action"]["q01"]) == 7
    z = np.load(next((out / "episodes").glob("*.npz")))
    assert z["actions"].shape == (80, 7) and z["states"].shape == (80, 16) and z["keep"].dtype == bool
    assert 0 < z["keep"].sum() < 80  # idle steps after placing are dropped
    ds = DemoDataset(out)
    item = ds[0]
    assert item["image"].shape == (128, 128, 3) and item["image"].dtype == np.uint8
    assert item["instruction"].startswith("put ")
    # resume: nothing left to do, the card is unchanged
    assert len(done_names(out)) == 2
    again = collect(DemoConfig(episodes=2, workers=1, out=out, camera="fast"), progress=False)
    assert again["session"]["attempted_now"] == 0 and again["episodes_kept"] == card["episodes_kept"]


@pytest.mark.sim
@pytest.mark.slow
def test_two_worker_processes_collect_every_episode_once(tmp_path):
    """workers=2 runs the episodes in the shared worker pool (eval.pool): each one is written once, by name."""
    from vla_gen_bench.training.demos import DemoConfig, collect, done_names, episode_name

    out = tmp_path / "demos"
    card = collect(DemoConfig(episodes=3, workers=2, out=out, camera="fast"), progress=False)
    assert card["episodes_kept"] + card["episodes_failed"] == 3
    assert card["session"]["attempted_now"] == 3
    assert done_names(out) == {episode_name(1000, k) for k in range(3)}
    assert not list(out.rglob("*.tmp*"))


@pytest.mark.sim
def test_dart_noise_perturbs_the_executed_actions_but_stores_the_clean_labels(tmp_path):
    """Noise on what runs (translation, yaw, premature gripper closes), clean demonstrator labels on disk."""
    from vla_gen_bench.training.demos import DemoConfig, DemoConfigError, IdleFilter, collect

    out = tmp_path / "demos"
    cfg = DemoConfig(episodes=1, workers=1, out=out, camera="fast", oracle="scripted-smooth", noise_xyz=0.01,
                     noise_yaw=0.1, noise_gripper=0.3, filter=IdleFilter(enabled=False))  # fmt: skip
    card = collect(cfg, progress=False)
    assert card["episodes_kept"] == 1
    z = np.load(next((out / "episodes").glob("*.npz")))
    labels, executed = z["actions"], z["executed"]
    moving = np.linalg.norm(labels[:, :3], axis=1) > 0.02
    assert moving.any()
    assert not np.allclose(labels[moving, :3], executed[moving, :3])  # noise on the executed reach/carry
    # gripper noise: premature closes executed while reaching, labelled "open" (the recovery to learn)
    premature = (executed[:, 6] < 0) & (labels[:, 6] > 0)
    assert premature.any()
    assert not ((executed[:, 6] > 0) & (labels[:, 6] < 0)).any()  # never opens a held object
    # the labels are the demonstrator's own: at most max_step (the noise is not in them)
    assert np.linalg.norm(labels[:, :3], axis=1).max() <= 0.04 + 1e-6
    # resuming with another demonstrator or noise level is refused (the dataset would mix two)
    with pytest.raises(DemoConfigError, match="noise_xyz"):
        collect(DemoConfig(**{**cfg.__dict__, "noise_xyz": 0.0}), progress=False)


@pytest.mark.sim
def test_dagger_runs_the_learner_and_labels_with_the_demonstrator(tmp_path):
    """--learner: the checkpoint's decoded chunks are what runs (replayed here from the stored images and the same
    sampling keys), the stored labels are the smooth demonstrator's, and the episode is kept whatever its outcome."""
    from pathlib import Path

    from vla_gen_bench.eval.runner import episode_key, step_key
    from vla_gen_bench.policies.openvla import OpenVLAPolicy
    from vla_gen_bench.training.demos import DemoConfig, DemoConfigError, IdleFilter, collect

    learner = Path(__file__).resolve().parents[2] / "baselines" / "checkpoints" / "sft-tiny"
    out = tmp_path / "dagger"
    cfg = DemoConfig(episodes=1, workers=1, out=out, camera="fast", seed=1001, oracle="scripted-smooth",
                     learner=learner, learner_policy=PolicyOptions(temperature=0.6), filter=IdleFilter(enabled=False))  # fmt: skip
    card = collect(cfg, progress=False)
    assert card["episodes_kept"] == 1 and card["episodes_failed"] == 0  # kept even when the learner failed
    assert card["learner_success_rate"] in (0.0, 1.0)
    assert card["config"]["learner"] == str(learner)
    z = np.load(next((out / "episodes").glob("*.npz")))
    images = np.load(next((out / "episodes").glob("*.images.npy")))
    labels, executed = z["actions"], z["executed"]
    assert len(labels) == 80 and not np.allclose(labels, executed)
    assert np.linalg.norm(labels[:, :3], axis=1).max() <= 0.04 + 1e-6  # the demonstrator's own steps
    policy = OpenVLAPolicy.from_path(learner, device="cpu", temperature=0.6, fingerprint=False)
    policy.reset(str(z["instruction"]))
    key = episode_key("dagger/ind", 1001, 0)
    for t in (0, 4, 40):  # chunks of 4 start at these steps
        chunk = policy.act(
            {"image": images[t], "instruction": str(z["instruction"]), "sample_key": step_key(key, t)}
        )
        assert np.allclose(chunk, executed[t : t + 4], atol=1e-5)
    # resuming with another learner, or DART noise with a learner, is refused
    with pytest.raises(DemoConfigError, match="holds a dataset with learner="):
        collect(DemoConfig(**{**cfg.__dict__, "learner": learner.parent / "ppo-tiny"}), progress=False)
    with pytest.raises(DemoConfigError, match="DART noise"):
        collect(DemoConfig(**{**cfg.__dict__, "out": tmp_path / "x", "noise_xyz": 0.01}), progress=False)
    with pytest.raises(DemoConfigError, match="no config.json"):
        collect(DemoConfig(**{**cfg.__dict__, "out": tmp_path / "y", "learner": tmp_path}), progress=False)
