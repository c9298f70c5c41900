"""DPO / TPO (trajectory-wise preference optimisation) of OpenVLA, online: every iteration rolls out
``group_size`` trajectories from each of a few initial configurations, pairs the best and the worst trajectory of a
configuration when their returns differ by at least ``min_return_gap`` (the preference comes from the env reward),
and minimises the DPO loss on whole trajectories

    L = -log sigmoid( beta * [ (log pi(tau_w) - log pi_ref(tau_w)) - (log pi(tau_l) - log pi_ref(tau_l)) ] ),

where log pi(tau) = sum over steps of the joint 7-token log-prob. The reference pi_ref is the warm-up policy: the
actor with its LoRA adapters switched off (they start at zero). RL4VLA releases no DPO code (issue #13); this follows
the paper's description (trajectory preference pairs built from rewards, a frozen reference model).

Memory: a trajectory is 80 steps, so log pi(tau) is summed over chunks. The loss depends on the two sums only, so
its exact gradient is c * (grad log pi(tau_w) - grad log pi(tau_l)) with c = -beta * sigmoid(-z): the sums are
first computed without gradients, then each chunk is back-propagated with weight +-c.

The loop (rollout -> :func:`learn` -> metrics -> checkpoint -> evaluation) is the one PPO and GRPO use, rl_loop.py.
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
class DPOConfig:
    """Online trajectory-level DPO (TPO) on the training pool, warm-started from an SFT checkpoint."""

    out: Path = Path("runs/baselines/dpo-tiny")
    """Run directory: config.json, metrics.csv, state.pt, policy/, eval/."""
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    hparams: str = "default"
    """The recipe's named hyper-parameter set (`train-baseline --hparams NAME` applies it under the options given;
    recorded in config.json)."""
    iterations: int = 10
    """Collect-then-update iterations."""
    groups_per_iter: int = 4
    """Initial configurations per iteration."""
    group_size: int = 4
    """Trajectories per initial configuration (pairs come from within a group)."""
    pairing: Literal["best_worst", "all"] = "best_worst"
    """best_worst: one pair per group (highest vs lowest return); all: every pair whose gap is large enough."""
    min_return_gap: float = 0.05
    """Smallest return difference that makes a preference (the grasp bonus alone is 0.1)."""
    max_env_steps: int | None = None
    """Stop once this many env steps are used."""
    max_minutes: float | None = None
    """Stop after the iteration that crosses this wall-clock budget."""
    beta: float = 0.1
    """DPO inverse temperature on the trajectory log-ratio."""
    update_epochs: int = 1
    """Passes over each iteration's pairs."""
    pairs_per_step: int = 4
    """Pairs per optimizer step."""
    chunk_size: int = 16
    """Steps per forward/backward pass when summing a trajectory's log-prob."""
    lr: float = 1e-4
    """AdamW learning rate of the LoRA tensors."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    save_every: int = 1
    """Write state.pt every this many iterations (and at the end)."""
    seed: int = 0
    """Seeds pair order and action sampling."""


def dpo_loss(pi_w, pi_l, ref_w, ref_l, beta: float):
    """``-log sigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l)))`` (mean) from trajectory log-probs."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l))).mean()


def preference_pairs(trajs, min_gap: float, pairing: str = "best_worst") -> list[tuple[int, int]]:
    """(winner, loser) indices into ``trajs``, within groups, by return."""
    by_group: dict[int, list[int]] = {}
    for i, t in enumerate(trajs):
        by_group.setdefault(t.group, []).append(i)
    pairs = []
    for idx in by_group.values():
        idx = sorted(idx, key=lambda i: trajs[i].return_, reverse=True)
        if pairing == "best_worst":
            cand = [(idx[0], idx[-1])]
        elif pairing == "all":
            cand = [(a, b) for k, a in enumerate(idx) for b in idx[k + 1 :]]
        else:
            raise ValueError(f"unknown pairing {pairing!r}; allowed: best_worst, all")
        pairs += [(w, lo) for w, lo in cand if trajs[w].return_ - trajs[lo].return_ >= min_gap]
    return pairs


def trajectory_logp(ac, traj, temperature: float, chunk: int, weight: float | None = None) -> float:
    """Sum of the joint log-probs of a trajectory's actions. With ``weight``, also back-propagates
    ``weight * log pi(tau)`` chunk by chunk (gradients accumulate in the LoRA tensors)."""
    import torch

    from vla_gen_bench.training.actor_critic import score

    total = 0.0
    for s in range(0, len(traj.tokens), chunk):
        sl = slice(s, s + chunk)
        ins = [traj.instruction] * len(traj.tokens[sl])
        if weight is None:
            with torch.no_grad():
                lp, _, _ = score(ac, traj.images[sl], ins, traj.tokens[sl], temperature, with_values=False)
        else:
            lp, _, _ = score(ac, traj.images[sl], ins, traj.tokens[sl], temperature, with_values=False)
            (weight * lp.sum()).backward()
        total += float(lp.detach().sum())
    return total


def dpo_update(
    ac, optimizer, trajs, pairs, ref: dict[int, float], cfg: DPOConfig, generator
) -> dict[str, float]:
    """Exact DPO gradient steps over ``pairs`` (see the module docstring for the chunked gradient)."""
    import torch

    params = ac.actor_parameters()
    stats: dict[str, list[float]] = {"loss": [], "accuracy": [], "margin": [], "grad_norm": []}
    update_mode(ac.vla.model)
    for _epoch in range(cfg.update_epochs):
        order = torch.randperm(len(pairs), generator=generator).tolist()
        optimizer.zero_grad(set_to_none=True)
        for j, p in enumerate(order):
            w, lo = pairs[p]
            pw = trajectory_logp(ac, trajs[w], cfg.rollout.temperature, cfg.chunk_size)
            pl = trajectory_logp(ac, trajs[lo], cfg.rollout.temperature, cfg.chunk_size)
            z = cfg.beta * ((pw - ref[w]) - (pl - ref[lo]))
            sig_neg = 1.0 / (1.0 + np.exp(z))  # sigmoid(-z)
            c = -cfg.beta * sig_neg / cfg.pairs_per_step  # dL/d log pi(tau_w); the loser gets -c
            trajectory_logp(ac, trajs[w], cfg.rollout.temperature, cfg.chunk_size, weight=c)
            trajectory_logp(ac, trajs[lo], cfg.rollout.temperature, cfg.chunk_size, weight=-c)
            stats["loss"].append(float(np.logaddexp(0.0, -z)))
            stats["accuracy"].append(float(z > 0))
            stats["margin"].append(float(z / cfg.beta))
            if (j + 1) % cfg.pairs_per_step == 0 or j == len(order) - 1:
                stats["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    ac.vla.model.eval()
    return {k: float(np.mean(v)) if v else 0.0 for k, v in stats.items()}


def learn(ac, optimizer, trajs, cfg: DPOConfig, iteration: int, generator) -> dict[str, float]:
    """One iteration's learning: preference pairs from returns, the reference log-probs of their trajectories
    (the actor with its adapters off), then the DPO steps. Returns the iteration's metrics: the number of pairs
    and the update's diagnostics (0 without pairs)."""
    pairs = preference_pairs(trajs, cfg.min_return_gap, cfg.pairing)
    used = sorted({i for p in pairs for i in p})
    with ac.reference():
        ref = {i: trajectory_logp(ac, trajs[i], cfg.rollout.temperature, cfg.chunk_size) for i in used}
    upd = dpo_update(ac, optimizer, trajs, pairs, ref, cfg, generator) if pairs else {}
    return {"pairs": len(pairs), **{k: upd.get(k, 0.0) for k in ("loss", "accuracy", "margin", "grad_norm")}}


DPO = rl_loop.Algorithm(
    name="dpo",
    critic=False,
    episodes=lambda cfg: (cfg.groups_per_iter, cfg.group_size),
    optimizer=lambda ac, cfg: make_optimizer(ac, cfg.lr),
    learn=learn,
    shown=("pairs", "loss"),
)
"""Online trajectory DPO in the shared training loop (rl_loop.py)."""


def train(cfg: DPOConfig, env=None, console=None) -> Path:
    """Run (or resume) online trajectory DPO; returns the run directory. ``env`` (optional): an env to roll out
    in-process."""
    return rl_loop.train(DPO, cfg, env, console)
