"""Demonstrations on the new task families: their training pools are checked with the family's own pools and
layout, the collector builds the family's env and its oracle labels the steps, DART noise acts in the family's
free-motion phases."""

from __future__ import annotations

import numpy as np
import pytest


def test_training_specs_of_every_familys_control_arm_pass_and_its_test_lines_are_refused():
    from vla_gen_bench.training.demos import training_specs
    from vla_gen_bench.variants import TrainingPoolError

    for control in ("push_ind", "drawer_open_ind", "drawer_close_ind", "stack_ind"):
        assert len(training_specs(control, 1000, 6)) == 6
    for name, what in (("push_unseen_targets", "not in the training pool"),
                       ("drawer_open_unseen_handles", "not in the training pool"),
                       ("drawer_close_unseen_cabinets", "not in the training pool"),
                       ("drawer_open_unseen_instructions", "does not use the training template"),
                       ("drawer_open_distractor", "not in the training pool"),
                       ("drawer_open_unseen_positions", "outside the training box"),
                       ("drawer_close_unseen_robot_pose", "joint offsets"),
                       ("drawer_open_pushed_back", "repositioning")):  # fmt: skip
        with pytest.raises(TrainingPoolError, match=what):
            training_specs(name, 1000, 4)


def test_a_cabinet_moved_out_of_the_training_box_or_turned_too_far_is_refused():
    import dataclasses

    from vla_gen_bench.assets import cabinets as CB
    from vla_gen_bench.variants import TrainingPoolError, check_training_spec, episode

    spec = episode("drawer_open_ind", 1000, 0)
    check_training_spec(spec, family="drawer_open")
    (x, y), yaw = spec.receptacle_xy[0], spec.receptacle_yaw[0]
    far = dataclasses.replace(spec, receptacle_xy=((x + 0.2, y),))
    with pytest.raises(TrainingPoolError, match="outside the training box"):
        check_training_spec(far, family="drawer_open")
    turned = dataclasses.replace(spec, receptacle_yaw=(yaw + CB.TRAIN_YAW_JITTER * 2 + 0.01,))
    with pytest.raises(TrainingPoolError, match="beyond the training jitter"):
        check_training_spec(turned, family="drawer_open")


def test_the_smooth_put_on_demonstrator_is_refused_on_another_family(tmp_path):
    from vla_gen_bench.training.demos import DemoConfig, DemoConfigError, collect

    with pytest.raises(DemoConfigError, match="use --oracle scripted"):
        collect(DemoConfig(episodes=1, workers=1, out=tmp_path / "d", variant="push_ind",
                           oracle="scripted-smooth"), progress=False)  # fmt: skip
    assert not (tmp_path / "d").exists()


@pytest.mark.sim
@pytest.mark.slow
def test_push_demonstrations_are_the_push_oracles_with_noise_while_it_moves_freely(tmp_path):
    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.demos import DemoConfig, IdleFilter, collect

    out = tmp_path / "push"
    cfg = DemoConfig(episodes=2, workers=1, out=out, camera="fast", variant="push_ind", noise_xyz=0.01,
                     noise_yaw=0.1, filter=IdleFilter(enabled=False))  # fmt: skip
    card = collect(cfg, progress=False)
    assert card["episodes_kept"] == 2  # the push oracle scores 765/768
    z = np.load(sorted((out / "episodes").glob("*.npz"))[0])
    labels, executed = z["actions"], z["executed"]
    assert (labels[:, 6] < 0).all()  # the push oracle keeps its gripper closed: gripper noise has nothing to do
    assert not np.allclose(labels[:, :3], executed[:, :3])  # noise on the free motion ("above")
    assert z["success"][-1]
    item = DemoDataset(out)[0]
    assert item["instruction"].startswith("push the ") and item["image"].shape == (128, 128, 3)
