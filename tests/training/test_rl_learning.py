"""PPO and GRPO learn where they must: a constructed 2-step task with a known optimal policy, run through the
trainers' own code (``ppo.train`` / ``grpo.train``: training items, ``Rollouts`` -> the evaluation runner's loop,
the token policy's sampling and log-probs, GAE or group advantages, the clipped update, the shared value head) with
a small env object in place of the simulator.

The task: at each of 2 steps the image is red or blue; an action is correct when the sign of its first dimension
(x translation) matches the colour (red +, blue -). Each correct step earns 0.5; success = both correct. A policy
that ignores the image succeeds 25 % of the time, the optimal one 100 %. The tests fail when the advantage sign,
the log-prob bookkeeping (which transition gets which advantage / old log-prob) or the ratio is wrong: see
docs/training_rl.md §1 ("learns where it must").
"""

from __future__ import annotations

import csv
import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.training.test_rl_shared import micro_ckpt


class ColourTask:
    """The runner's env interface (reset / step / ``unwrapped.instructions`` / policy-camera images) without a
    simulator. The first step's colour comes from the episode spec (episode index parity), so GRPO's repeats of
    one spec share their initial state; the second step's colour is random."""

    def __init__(
        self, num_envs: int, size: int = 32, horizon: int = 2, seed: int = 0, replay: bool = False
    ) -> None:
        self.num_envs, self.size, self.horizon, self.replay = num_envs, size, horizon, replay
        self.instructions = ["put red cube on plate"] * num_envs
        self.episode_specs = [None] * num_envs
        self.rng = np.random.default_rng(seed)
        self.unwrapped = self

    def _obs(self) -> dict:
        import torch

        img = np.full((self.num_envs, self.size, self.size, 3), 128, np.uint8)  # (b, H, W, 3)
        img[self.colour == 1] = (220, 30, 30)
        img[self.colour == 0] = (30, 30, 220)
        img[:, : 4 * self.t] = 255  # the step count, visible to the critic
        return {"sensor_data": {"policy_camera": {"rgb": torch.as_tensor(img)}}}

    def reset(self, seed=None, options=None):
        specs = (options or {}).get("episode")
        specs = specs if isinstance(specs, list) else [specs] * self.num_envs
        if self.replay:  # an iteration's episodes do not depend on what the env ran before
            self.rng = np.random.default_rng(specs[0].meta["episode"])
        self.t = 0
        self.colour = np.array([s.meta["episode"] % 2 for s in specs])  # (b,)
        self.correct = np.ones(self.num_envs, bool)
        return self._obs(), {}

    def step(self, action):
        import torch

        ok = (np.asarray(action).reshape(self.num_envs, 7)[:, 0] > 0) == (self.colour == 1)  # (b,)
        self.correct &= ok
        self.t += 1
        done = np.full(self.num_envs, self.t == self.horizon)
        self.colour = self.rng.integers(2, size=self.num_envs)
        zeros = np.zeros(self.num_envs, bool)
        info = {"success": self.correct & done, "success_once": self.correct & done, "ever_grasped": zeros,
                "consecutive_grasp": zeros, "failure": np.zeros(self.num_envs, int)}  # fmt: skip
        return self._obs(), torch.as_tensor(ok / self.horizon), None, None, info

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=1)
def confident_ckpt(scale: float = 8.0) -> Path:
    """The micro checkpoint with its output embedding scaled up. A random-init micro model's action logits span
    ~0.2 nats, and its final RMSNorm bounds the hidden state, so no adapter could make it confident; a trained
    warm-up's logits have range, and so does this one."""
    import torch

    from vla_gen_bench.models.checkpoint import load_openvla, save_checkpoint

    vla = load_openvla(micro_ckpt(), device="cpu", dtype="float32")
    with torch.no_grad():
        vla.network.language_model.lm_head.weight.mul_(scale)
    return save_checkpoint(vla, Path(tempfile.mkdtemp(prefix="vgb-rl-")) / "confident")


def _success(out: Path) -> list[float]:
    return [float(r["success"]) for r in csv.DictReader((out / "metrics.csv").open())]


def _model():
    from vla_gen_bench.training.rl_config import ModelConfig

    return ModelConfig(init=confident_ckpt(), lora_r=8, device="cpu", dtype="float32")


def run_ppo(tmp_path: Path, **overrides) -> list[float]:
    """``ppo.train`` on the colour task; rollout success per iteration."""
    from rich.console import Console

    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.ppo import PPOConfig, train
    from vla_gen_bench.training.rl_config import EvalConfig, RolloutConfig

    n = 64
    cfg = PPOConfig(out=tmp_path / "ppo", model=_model(), rollout=RolloutConfig(workers=0, horizon=2, policy=PolicyOptions(temperature=1.0)),
                    eval=EvalConfig(at_end=False), iterations=PPO_ITERS, episodes_per_iter=n, minibatch_size=32,
                    grad_accum=1, update_epochs=2, lr=1e-3, value_lr=1e-2, critic_warmup_iters=1,
                    save_every=10_000, **overrides)  # fmt: skip
    train(cfg, env=ColourTask(n), console=Console(quiet=True))
    return _success(cfg.out)


def run_grpo(tmp_path: Path, **overrides) -> list[float]:
    """``grpo.train`` on the colour task (groups of 8 from one initial colour); rollout success per iteration."""
    from rich.console import Console

    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.grpo import GRPOConfig, train
    from vla_gen_bench.training.rl_config import EvalConfig, RolloutConfig

    cfg = GRPOConfig(out=tmp_path / "grpo", model=_model(), rollout=RolloutConfig(workers=0, horizon=2, policy=PolicyOptions(temperature=1.0)),
                     eval=EvalConfig(at_end=False), iterations=GRPO_ITERS, groups_per_iter=8, group_size=8,
                     minibatch_size=32, grad_accum=1, update_epochs=2, lr=1e-3, save_every=10_000,
                     **overrides)  # fmt: skip
    train(cfg, env=ColourTask(64), console=Console(quiet=True))
    return _success(cfg.out)


PPO_ITERS = 14
GRPO_ITERS = 16


def test_ppo_learns_the_colour_task(tmp_path):
    success = run_ppo(tmp_path)
    assert np.mean(success[:2]) < 0.45, success  # starts near chance (0.25)
    assert np.mean(success[-3:]) >= 0.8, success  # near-optimal (1.0) within the budget


def test_grpo_learns_the_colour_task(tmp_path):
    success = run_grpo(tmp_path)
    assert np.mean(success[:2]) < 0.45, success
    assert np.mean(success[-3:]) >= 0.8, success


@pytest.mark.parametrize("algo", ["ppo", "grpo", "dpo"])
def test_a_resumed_run_continues_as_the_uninterrupted_one(algo, tmp_path):
    """Stopped after iteration 1 and run again with the same config, a run writes the same metrics rows (timings
    aside) and ends with the same trainable tensors as the run that never stopped: the shared loop's resume
    point (state.pt: tensors, optimizer, counters, RNG) for each algorithm."""
    import importlib
    from dataclasses import replace

    import torch
    from rich.console import Console

    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.rl_config import EvalConfig, ModelConfig, RolloutConfig

    mod = importlib.import_module(f"vla_gen_bench.training.{algo}")
    sizes = {"ppo": dict(episodes_per_iter=8, minibatch_size=8, grad_accum=1, value_lr=1e-2),
             "grpo": dict(groups_per_iter=2, group_size=4, minibatch_size=8, grad_accum=1),
             "dpo": dict(groups_per_iter=2, group_size=4, min_return_gap=0.01)}[algo]  # fmt: skip
    model = ModelConfig(init=micro_ckpt(), lora_r=4, device="cpu", dtype="float32")
    whole = getattr(mod, f"{algo.upper()}Config")(out=tmp_path / "whole", model=model, iterations=3, lr=1e-2,
                                                   rollout=RolloutConfig(workers=0, horizon=2, policy=PolicyOptions(temperature=1.0)),
                                                   eval=EvalConfig(at_end=False), **sizes)  # fmt: skip
    parts = replace(whole, out=tmp_path / "parts")
    quiet = Console(quiet=True)
    mod.train(whole, env=ColourTask(8, replay=True), console=quiet)
    mod.train(replace(parts, iterations=1), env=ColourTask(8, replay=True), console=quiet)  # stopped after 1
    mod.train(parts, env=ColourTask(8, replay=True), console=quiet)  # the same command again: resumes

    def rows(run: Path) -> list[dict[str, str]]:
        timing = ("rollout_s", "update_s", "env_steps_per_s")
        return [
            {k: v for k, v in r.items() if k not in timing}
            for r in csv.DictReader((run / "metrics.csv").open())
        ]

    assert [r["iteration"] for r in rows(parts.out)] == ["1", "2", "3"]
    assert rows(parts.out) == rows(whole.out)
    assert any(float(r["grad_norm"]) > 0 for r in rows(whole.out))  # it learned: not a vacuous comparison
    a, b = (torch.load(run / "state.pt", weights_only=False)["trainable"] for run in (whole.out, parts.out))
    for part in a:
        for k in a[part]:
            torch.testing.assert_close(b[part][k], a[part][k], rtol=0, atol=0)
