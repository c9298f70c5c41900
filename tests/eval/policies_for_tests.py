"""Deliberately broken policies for the conventions check and the fault tests (loaded as ``module:Class``)."""

from __future__ import annotations

import os
import time

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


# ---------------------------------------------------------------------------------------------- faults
def _trigger(marker: str | None, calls: int, after: int) -> bool:
    """True once: on the call after ``after`` calls, when the marker file exists (it is removed first)."""
    if marker is None or calls <= after:
        return False
    try:
        os.remove(marker)  # atomic: of two workers reaching this point, one wins
    except FileNotFoundError:
        return False
    return True


class Wanderer(PolicyBase):
    """Moves the end effector in a small circle; dies (os._exit) mid-episode once when ``marker`` exists."""

    def __init__(self, marker: str | None = None, after: int = 20):
        super().__init__()
        self.marker, self.after, self.calls = marker, after, 0

    def act(self, obs):
        self.calls += 1
        if _trigger(self.marker, self.calls, self.after):
            os._exit(9)  # a worker process killed mid-episode
        t = self.calls * 0.3
        return np.array([0.01 * np.cos(t), 0.01 * np.sin(t), 0.0, 0, 0, 0, 1], np.float32)


class BatchedWanderer(Wanderer):
    """The same as a batched policy (served from the policy process); ``mode`` crash|hang|raise on the trigger."""

    def __init__(self, marker: str | None = None, after: int = 20, mode: str = "crash"):
        super().__init__(marker, after)
        self.mode = mode

    def act_batch(self, images, instructions, sample_keys=None):
        self.calls += 1
        if _trigger(self.marker, self.calls, self.after):
            if self.mode == "crash":
                os._exit(3)
            if self.mode == "hang":
                time.sleep(3600)
            raise RuntimeError("the batched policy failed on purpose")
        t = (
            np.array([k % 97 if k is not None else self.calls for k in (sample_keys or [None] * len(images))])
            * 0.3
        )
        out = np.zeros((len(images), 7), np.float32)
        out[:, 0], out[:, 1], out[:, 6] = 0.01 * np.cos(t), 0.01 * np.sin(t), 1
        return out


class Faulty(Wanderer):
    """Wanders; on the call after ``after`` calls, when ``marker`` exists, raises (``mode="raise"``) or hangs."""

    def __init__(self, marker: str | None = None, after: int = 20, mode: str = "raise"):
        super().__init__(None, after)
        self.fault, self.mode = marker, mode

    def act(self, obs):
        if _trigger(self.fault, self.calls + 1, self.after):
            if self.mode == "hang":
                time.sleep(60)
            raise RuntimeError("the policy failed on purpose")
        return super().act(obs)


# ---------------------------------------------------------------------------------------------- construction
class HangsInInit(PolicyBase):
    """A constructor that never returns (a load stuck on a lock, a network drive, a debugger prompt)."""

    def __init__(self):
        while True:
            time.sleep(60)

    def act(self, obs):  # pragma: no cover - never built
        return np.zeros(7, np.float32)


class RaisesInInit(PolicyBase):
    """A constructor that fails (a missing weight file, no GPU)."""

    def __init__(self):
        raise FileNotFoundError("weights.bin is missing on purpose")

    def act(self, obs):  # pragma: no cover - never built
        return np.zeros(7, np.float32)
