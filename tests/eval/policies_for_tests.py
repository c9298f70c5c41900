"""Deliberately broken policies for the conventions check (loaded through the ``module:Class`` form)."""

from __future__ import annotations

import numpy as np

from vla_gen_bench.policies.base import ActionSpec, PolicyBase


class NormalisedActions(PolicyBase):
    """Returns actions normalised to [-1, 1], as many trained policies do before de-normalisation."""

    def act(self, obs):
        return np.array([0.8, -0.5, 0.3, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)


class WrongShape(PolicyBase):
    def act(self, obs):
        return np.zeros(8, dtype=np.float32)


class NaNActions(PolicyBase):
    def act(self, obs):
        return np.array([0.01, np.nan, 0, 0, 0, 0, 1], dtype=np.float32)


class QuaternionPolicy(PolicyBase):
    """Declares a rotation convention the benchmark does not execute."""

    def __init__(self):
        super().__init__(spec=ActionSpec(rotation="delta_quaternion"))

    def act(self, obs):
        return np.zeros(7, dtype=np.float32)


class ChunkedOracle:
    """The scripted oracle, but returning 4-step chunks of its own plan (tests open-loop chunk execution)."""

    def __init__(self):
        from vla_gen_bench.policies.scripted import ScriptedPolicy

        self.inner = ScriptedPolicy()
        self.spec = ActionSpec(chunk=2, privileged=True)
        self.metadata = {"name": "chunked-oracle"}

    def reset(self, instruction):
        self.inner.reset(instruction)

    def act(self, obs):
        a = self.inner.act(obs)
        return np.stack([a, a * np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)])
