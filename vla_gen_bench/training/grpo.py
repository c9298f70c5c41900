"""GRPO fine-tuning of OpenVLA: no critic; each initial configuration is rolled out ``group_size`` times and a
trajectory's advantage is its return normalised within its group, (R - mean_group) / (std_group + eps), applied to
every step of the trajectory. Groups whose trajectories all earn the same return carry no signal and are skipped.

Differences from the released RL4VLA code (shared/spec/rl4vla.md §7.2), on purpose: the released ``grpo`` normalises
non-zero per-step rewards over the whole batch and groups either nothing or all 64 envs (``use_same_init``); the
paper's GRPO compares a group of trajectories from one initial state, which is what this file does. The policy loss
is PPO's clipped surrogate (same ``clip_mode`` options); an optional KL penalty to the warm-up policy (the actor
with its LoRA switched off) is off by default, as in RL4VLA. The loop (rollout -> :func:`learn` -> metrics ->
checkpoint -> evaluation) is the one PPO and DPO use, rl_loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vla_gen_bench.training import rl_loop
from vla_gen_bench.training.actor_critic import make_optimizer, update_mode
from vla_gen_bench.training.rl_config import EvalConfig, ModelConfig, RolloutConfig


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO on the training pool, warm-started from an SFT checkpoint."""

    out: Path = Path("runs/baselines/grpo-tiny")
    """Run directory: config.json, metrics.csv, state.pt, policy/, eval/."""
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    hparams: str = "default"
    """The recipe's named hyper-parameter set (`train-baseline --hparams NAME` applies it under the options given;
    recorded in config.json)."""
    iterations: int = 10
    """Collect-then-update iterations."""
    groups_per_iter: int = 2
    """Initial configurations per iteration."""
    group_size: int = 8
    """Trajectories per initial configuration (the paper's GRPO: 8)."""
    max_env_steps: int | None = None
    """Stop once this many env steps are used."""
    max_minutes: float | None = None
    """Stop after the iteration that crosses this wall-clock budget."""
    adv_eps: float = 1e-6
    """Added to the group standard deviation."""
    clip_coef: float = 0.2
    """Ratio clip epsilon."""
    clip_mode: Literal["joint", "per_dim"] = "joint"
    """joint: ratio of the joint 7-token log-prob; per_dim: one clipped ratio per token."""
    kl_coef: float = 0.0
    """Weight of a KL penalty to the warm-up policy (k3 estimator on the joint log-prob; 0 = off, as RL4VLA)."""
    update_epochs: int = 1
    """Epochs over each batch."""
    minibatch_size: int = 8
    """Transitions per forward/backward pass."""
    grad_accum: int = 20
    """Minibatches per optimizer step."""
    lr: float = 1e-4
    """AdamW learning rate of the LoRA tensors."""
    weight_decay: float = 0.0
    """AdamW weight decay of the LoRA tensors (ours 0; RL4VLA's code: torch's default 0.01)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    save_every: int = 1
    """Write state.pt every this many iterations (and at the end)."""
    seed: int = 0
    """Seeds minibatch order and action sampling."""


def group_advantages(returns: np.ndarray, groups: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(R - mean) / (std + eps)`` within each group (population std); 0 for a group with one distinct return."""
    returns = np.asarray(returns, np.float64)
    groups = np.asarray(groups)
    adv = np.zeros_like(returns)
    for g in np.unique(groups):
        m = groups == g
        r = returns[m]
        sd = r.std()
        adv[m] = 0.0 if sd < 1e-12 else (r - r.mean()) / (sd + eps)
    return adv.astype(np.float32)


def make_batch(trajs, eps: float):
    """Transitions of the trajectories that carry signal (non-zero group advantage), advantage broadcast per step."""
    from vla_gen_bench.training.advantages import Batch

    adv = group_advantages(np.array([t.return_ for t in trajs]), np.array([t.group for t in trajs]), eps)
    keep = [(t, a) for t, a in zip(trajs, adv, strict=True) if a != 0.0]
    if not keep:
        return None
    n = [len(t.rewards) for t, _ in keep]
    return Batch(
        images=np.concatenate([t.images for t, _ in keep]),
        instructions=[t.instruction for t, _ in keep for _ in range(len(t.rewards))],
        tokens=np.concatenate([t.tokens for t, _ in keep]),
        log_probs=np.concatenate([t.log_probs for t, _ in keep]),
        advantages=np.concatenate([np.full(k, a, np.float32) for (_, a), k in zip(keep, n, strict=True)]),
        returns=np.concatenate(
            [np.full(k, t.return_, np.float32) for (t, _), k in zip(keep, n, strict=True)]
        ),
        values=np.zeros(sum(n), np.float32),
    )


def grpo_update(ac, optimizer, batch, cfg: GRPOConfig, generator) -> dict[str, float]:
    """Clipped-surrogate passes over ``batch`` (+ optional KL to the warm-up policy)."""
    import torch

    from vla_gen_bench.training.actor_critic import score
    from vla_gen_bench.training.ppo import clipped_surrogate

    dev = ac.vla.device
    adv = torch.as_tensor(batch.advantages, dtype=torch.float32, device=dev)
    old_logp = torch.as_tensor(batch.log_probs, dtype=torch.float32, device=dev)
    params = ac.actor_parameters()
    stats: dict[str, list[float]] = {
        "pg_loss": [],
        "kl_ref": [],
        "approx_kl": [],
        "clipfrac": [],
        "grad_norm": [],
    }
    update_mode(ac.vla.model)
    optimizer.zero_grad(set_to_none=True)
    for idx, step in batch.minibatches(cfg.update_epochs, cfg.minibatch_size, cfg.grad_accum, generator):
        ix = idx.numpy()
        imgs, ins, toks = batch.images[ix], [batch.instructions[i] for i in ix], batch.tokens[ix]
        new_logp, _, _ = score(ac, imgs, ins, toks, cfg.rollout.temperature, with_values=False)
        loss, clipfrac, kl = clipped_surrogate(new_logp, old_logp[idx.to(dev)], adv[idx.to(dev)], cfg.clip_coef,
                                               cfg.clip_mode)  # fmt: skip
        stats["pg_loss"].append(float(loss.detach()))
        if cfg.kl_coef > 0:
            with torch.no_grad(), ac.reference():
                ref_logp, _, _ = score(ac, imgs, ins, toks, cfg.rollout.temperature, with_values=False)
            d = (ref_logp - new_logp).sum(-1)
            kl_ref = (d.exp() - d - 1).mean()
            loss = loss + cfg.kl_coef * kl_ref
            stats["kl_ref"].append(float(kl_ref.detach()))
        (loss * len(idx) / (cfg.minibatch_size * cfg.grad_accum)).backward()
        if step:
            stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        stats["approx_kl"].append(float(kl))
        stats["clipfrac"].append(float(clipfrac))
    ac.vla.model.eval()
    return {k: float(np.mean(v)) if v else 0.0 for k, v in stats.items()}


def learn(ac, optimizer, trajs, cfg: GRPOConfig, iteration: int, generator) -> dict[str, float]:
    """One iteration's learning: group advantages, then the clipped-surrogate update; no update when no group
    carries signal. Returns the iteration's metrics: the transitions that carried signal and the update's
    diagnostics (0 without an update)."""
    batch = make_batch(trajs, cfg.adv_eps)
    upd = grpo_update(ac, optimizer, batch, cfg, generator) if batch is not None else {}
    return {"signal_transitions": 0 if batch is None else len(batch),
            **{k: upd.get(k, 0.0) for k in ("pg_loss", "kl_ref", "approx_kl", "clipfrac", "grad_norm")}}  # fmt: skip


GRPO = rl_loop.Algorithm(
    name="grpo",
    critic=False,
    episodes=lambda cfg: (cfg.groups_per_iter, cfg.group_size),
    optimizer=lambda ac, cfg: make_optimizer(ac, cfg.lr, weight_decay=cfg.weight_decay),
    learn=learn,
    shown=("signal_transitions", "pg_loss"),
)
"""GRPO in the shared training loop (rl_loop.py)."""


def train(cfg: GRPOConfig, env=None, console=None) -> Path:
    """Run (or resume) GRPO; returns the run directory. ``env`` (optional): an env to roll out in-process."""
    return rl_loop.train(GRPO, cfg, env, console)
