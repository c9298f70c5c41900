"""GRPO fine-tuning of OpenVLA: no critic; each initial configuration is rolled out ``group_size`` times and a
trajectory's advantage is its return normalised within its group, (R - mean_group) / (std_group + eps), applied to
every step of the trajectory. Groups whose trajectories all earn the same return carry no signal and are skipped.

Differences from the released RL4VLA code (shared/spec/rl4vla.md §7.2), on purpose: the released ``grpo`` normalises
non-zero per-step rewards over the whole batch and groups either nothing or all 64 envs (``use_same_init``); the
paper's GRPO compares a group of trajectories from one initial state, which is what this file does. The policy loss
is PPO's clipped surrogate (same ``clip_mode`` options); an optional KL penalty to the warm-up policy (the actor
with its LoRA switched off) is off by default, as in RL4VLA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vla_gen_bench.training.actor_critic import update_mode
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
    n = len(batch)
    update_mode(ac.vla.model)
    for _epoch in range(cfg.update_epochs):
        order = torch.randperm(n, generator=generator)
        mbs = [order[i : i + cfg.minibatch_size] for i in range(0, n, cfg.minibatch_size)]
        optimizer.zero_grad(set_to_none=True)
        for j, idx in enumerate(mbs):
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
            if (j + 1) % cfg.grad_accum == 0 or j == len(mbs) - 1:
                stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            stats["approx_kl"].append(float(kl))
            stats["clipfrac"].append(float(clipfrac))
    ac.vla.model.eval()
    return {k: float(np.mean(v)) if v else 0.0 for k, v in stats.items()}


def learn(ac, optimizer, trajs, cfg: GRPOConfig, iteration: int):
    """One iteration's learning: group advantages, then the clipped-surrogate update (minibatch order seeded by
    (seed, iteration)). Returns ``(batch or None, update diagnostics)``; no update when no group carries signal."""
    import torch

    batch = make_batch(trajs, cfg.adv_eps)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + iteration)
    return batch, (grpo_update(ac, optimizer, batch, cfg, gen) if batch is not None else {})


def train(cfg: GRPOConfig, env=None, console=None) -> Path:
    """Run (or resume) GRPO; returns the run directory."""
    import torch
    from rich.console import Console

    from vla_gen_bench.training.actor_critic import build_actor_critic, export_policy, make_optimizer
    from vla_gen_bench.training.ppo import _evaluate
    from vla_gen_bench.training.rollouts import Rollouts, rollout_stats, training_items
    from vla_gen_bench.training.run_dir import MetricsLog, Timer, prepare_run_dir, restore_state, save_state

    console = console or Console(stderr=True)
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    # 1. run directory, actor (no critic), optimiser, resume point
    state = prepare_run_dir(cfg.out, cfg, "grpo")
    ac = build_actor_critic(cfg.model, with_value=False, seed=cfg.seed)
    optimizer = make_optimizer(ac, cfg.lr, weight_decay=cfg.weight_decay)
    start, env_steps = restore_state(state, ac, optimizer) if state else (0, 0)
    metrics = MetricsLog(cfg.out / "metrics.csv")
    rollouts = Rollouts(cfg.model, cfg.rollout, ac, env=env) if start < cfg.iterations else None
    t_run = time.perf_counter()
    try:
        for it in range(start, cfg.iterations):
            timer = Timer()
            # 2. rollouts: group_size trajectories from each of groups_per_iter initial configurations
            items = training_items(cfg.rollout.variant, cfg.rollout.seed, it * cfg.groups_per_iter,
                                   cfg.groups_per_iter, repeats=cfg.group_size)  # fmt: skip
            with timer("rollout"):
                trajs = rollouts.collect(items, it, cfg.seed)
            steps = len(trajs) * cfg.rollout.horizon  # env steps (a trajectory has one row per decision)
            env_steps += steps
            # 3. group-normalised returns as advantages; 4. clipped-surrogate update
            with timer("update"):
                batch, upd = learn(ac, optimizer, trajs, cfg, it)
            row = {"iteration": it + 1, "env_steps": env_steps, **rollout_stats(trajs),
                   "signal_transitions": 0 if batch is None else len(batch),
                   **{k: upd.get(k, 0.0) for k in ("pg_loss", "kl_ref", "approx_kl", "clipfrac", "grad_norm")},
                   "rollout_s": timer.marks["rollout"], "update_s": timer.marks.get("update", 0.0),
                   "env_steps_per_s": steps / timer.marks["rollout"]}  # fmt: skip
            metrics.log(row)
            console.print(f"iter {it + 1}/{cfg.iterations} env_steps {env_steps} success {row['success']:.2f} "
                          f"return {row['return_mean']:.3f} signal {row['signal_transitions']} "
                          f"pg {row['pg_loss']:.4f}")  # fmt: skip
            done = it + 1 == cfg.iterations
            out_of_budget = (cfg.max_env_steps is not None and env_steps >= cfg.max_env_steps) or (
                cfg.max_minutes is not None and (time.perf_counter() - t_run) / 60 >= cfg.max_minutes
            )
            if (it + 1) % cfg.save_every == 0 or done or out_of_budget:
                save_state(cfg.out, "grpo", cfg, ac, optimizer, it + 1, env_steps)
            if cfg.eval.every and (it + 1) % cfg.eval.every == 0 and not done:
                _evaluate(ac, cfg, it + 1, console)
            if out_of_budget:
                break
    finally:
        if rollouts is not None:
            rollouts.close()
    export_policy(ac, cfg.out / "policy")
    console.print(f"wrote {cfg.out / 'policy'}, {cfg.out / 'metrics.csv'}")
    if cfg.eval.at_end:
        _evaluate(ac, cfg, None, console)
    return cfg.out
