"""One camera type: the names every --camera option takes are the camera table's keys."""

from __future__ import annotations

import typing

from vla_gen_bench.cameras import CAMERA_NAMES, CameraName


def test_camera_names_are_the_camera_table():
    from vla_gen_bench.envs.cameras import CAMERAS

    assert CAMERA_NAMES == tuple(CAMERAS)


def test_every_camera_option_uses_the_one_type():
    from vla_gen_bench.assets.commands import GenerateTables, ImportTables
    from vla_gen_bench.cli import Render, RunEpisode
    from vla_gen_bench.eval.evaluate import Evaluate
    from vla_gen_bench.training.commands import CollectDemos
    from vla_gen_bench.training.demos import DemoConfig
    from vla_gen_bench.training.rl_config import RolloutConfig
    from vla_gen_bench.training.sft import SFTConfig

    fields = [(Render, "camera"), (RunEpisode, "camera"), (CollectDemos, "camera"), (DemoConfig, "camera"),
              (RolloutConfig, "camera"), (SFTConfig, "eval_camera"), (GenerateTables, "camera"),
              (ImportTables, "camera"), (Evaluate, "camera")]  # fmt: skip
    for cls, name in fields:
        hint = typing.get_type_hints(cls, include_extras=True)[name]
        assert hint == CameraName or hint == CameraName | None, (cls.__name__, name, hint)
