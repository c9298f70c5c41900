"""PPO fine-tuning of OpenVLA, RL4VLA's recipe (shared/spec/rl4vla.md §7.1): its config, loss and update, plugged
into the training loop GRPO and DPO share (rl_loop.py: rollout -> :func:`learn` -> metrics -> checkpoint -> eval).

* actor = OpenVLA with LoRA on the whole backbone; the action is 7 tokens, each drawn from the softmax over the 256
  action-token logits; log pi(a|s) = the sum of the 7 token log-probs (the joint log-prob).
* critic = a 3-layer MLP value head on the actor's last-layer hidden state at the position that emits the first
  action token: actor and critic share the whole backbone, one forward pass gives both.
* reward = the task's sparse potential-based reward (0.1 grasp, 0.1 sustained grasp, 1.0 place).
* advantages = GAE, normalised over the batch; the 80-step horizon is bootstrapped with V(s_80)
  (``truncation = "bootstrap"``) or, as RL4VLA's buffer does, treated as terminal (``"terminal"``).
* loss = ``pg_coef`` x clipped surrogate on the joint ratio (or per action dimension, ``clip_mode="per_dim"``) +
  value loss (clipped around the rollout value); one PPO epoch by default; AdamW (``weight_decay``) with separate
  learning rates for the LoRA tensors and the value head; global gradient-norm clipping.
* warm-up: starts from a warm-up checkpoint, with fresh LoRA adapters (they start at zero, so iteration 0 *is* the
  warm-up) or, ``model.continue_adapter``, the warm-up's own adapter trained further (RL4VLA).

Named hyper-parameter sets live in ``vla_gen_bench/recipes/ppo_<preset>.toml``: ``ours`` (this benchmark's choices),
``released`` (RL4VLA's released code: gamma 0.99, lambda 0.95, clip 0.2, step 80 terminal, the surrogate counted 7x,
AdamW weight decay 0.01, the warm-up adapter continued) and ``text`` (the paper text's gamma 0.96, lambda 0.85,
clip 0.1). docs/training_rl.md §1 tabulates the differences.
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
class PPOConfig:
    """PPO on the training pool, warm-started from an SFT checkpoint."""

    out: Path = Path("runs/baselines/ppo-tiny")
    """Run directory: config.json, metrics.csv, state.pt (resume point), policy/ (exported), eval/."""
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    hparams: str = "ours"
    """The recipe's named hyper-parameter set (`train-baseline --hparams NAME` applies it under the options given;
    recorded in config.json)."""
    iterations: int = 10
    """Collect-then-update iterations."""
    episodes_per_iter: int = 8
    """Episodes (fresh initial configurations) per iteration; transitions = episodes x horizon."""
    max_env_steps: int | None = None
    """Stop once this many env steps are used (None: run all iterations)."""
    max_minutes: float | None = None
    """Stop after the iteration that crosses this wall-clock budget (None: no limit)."""
    gamma: float = 0.99
    """Discount (released code 0.99; paper text 0.96)."""
    gae_lambda: float = 0.95
    """GAE lambda (released 0.95; paper 0.85)."""
    clip_coef: float = 0.2
    """Ratio clip epsilon (released 0.2; paper 0.1)."""
    truncation: Literal["bootstrap", "terminal"] = "bootstrap"
    """How GAE ends the fixed horizon: ``bootstrap`` = a time limit, V(s_T) of the final observation bootstraps
    the last step (ours); ``terminal`` = V(s_T) counts 0, as RL4VLA's buffer does (its mask is 1 - truncated)."""
    clip_mode: Literal["joint", "per_dim"] = "joint"
    """joint: one ratio per action from the joint log-prob of the 7 tokens (RL4VLA); per_dim: one clipped ratio
    per action token, averaged."""
    value_clip: float | None = 0.2
    """Clip the new value to old value +- this in the value loss (None: unclipped)."""
    pg_coef: float = 1.0
    """Weight of the policy loss (ours 1). RL4VLA's code: 7 -- it stores the joint log-prob broadcast into the 7
    action columns and sums the 7 identical clipped surrogates, so its policy gradient is 7x the joint one
    (relative to the value loss, which shares the backbone, and to the gradient-norm clip)."""
    norm_adv: bool = True
    """Normalise advantages over the whole batch (mean 0, std 1)."""
    update_epochs: int = 1
    """PPO epochs over each batch (RL4VLA: 1)."""
    minibatch_size: int = 8
    """Transitions per forward/backward pass."""
    grad_accum: int = 20
    """Minibatches accumulated per optimizer step (RL4VLA: 8 x 20 = 160 transitions per step)."""
    lr: float = 1e-4
    """AdamW learning rate of the LoRA tensors."""
    value_lr: float = 3e-3
    """AdamW learning rate of the value head."""
    weight_decay: float = 0.0
    """AdamW weight decay of LoRA and value head (ours 0; RL4VLA's code: torch's default 0.01)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip over LoRA + value head."""
    vf_coef: float = 1.0
    """Value-loss weight (the loss is 0.5 * squared error, i.e. RL4VLA's Huber with delta 10 at these scales)."""
    ent_coef: float = 0.0
    """Entropy bonus weight (RL4VLA: 0)."""
    critic_warmup_iters: int = 0
    """First iterations train only the value head (no policy loss), so that early advantages are not the noise of
    a randomly initialised critic (RL4VLA: 0; its ``steps_vh`` argument is unused)."""
    save_every: int = 1
    """Write state.pt every this many iterations (and at the end)."""
    seed: int = 0
    """Seeds the value head, the minibatch order and (with the iteration) action sampling."""


# ------------------------------------------------------------------------------------------ losses
def clipped_surrogate(new_logp, old_logp, advantages, clip: float, mode: str = "joint"):
    """PPO's clipped policy loss (to minimise) and diagnostics.

    Args:
        new_logp, old_logp: ``(m, 7)`` per-token log-probs under the current and the behaviour policy.
        advantages: ``(m,)``.
        mode: ``joint`` = ratio of the joint log-prob (sum over tokens); ``per_dim`` = one ratio per token.

    Returns:
        ``loss, clip_fraction, approx_kl`` (approx_kl = mean of (ratio - 1) - log ratio, on the joint ratio).
    """
    import torch

    if mode == "joint":
        logratio = (new_logp - old_logp).sum(-1)  # (m,)
        adv = advantages
    elif mode == "per_dim":
        logratio = new_logp - old_logp  # (m, 7)
        adv = advantages[:, None]
    else:
        raise ValueError(f"unknown clip_mode {mode!r}; allowed: joint, per_dim")
    ratio = logratio.exp()
    loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    with torch.no_grad():
        joint = (new_logp - old_logp).sum(-1)
        approx_kl = ((joint.exp() - 1) - joint).mean()
        clipfrac = ((ratio - 1).abs() > clip).float().mean()
    return loss, clipfrac, approx_kl


def value_loss(values, old_values, returns, clip: float | None):
    """0.5 * max((v - R)^2, (clip(v, v_old +- c) - R)^2), mean (unclipped when ``clip`` is None)."""
    import torch

    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped.mean()
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    return 0.5 * torch.max(unclipped, clipped).mean()


# ------------------------------------------------------------------------------------------ batch
def make_batch(trajs, gamma: float, lam: float, truncation: str = "bootstrap"):
    """Flatten trajectories into one update batch with GAE advantages; the horizon is bootstrapped with each
    trajectory's ``last_value`` (``truncation="bootstrap"``) or ends in a terminal state (``"terminal"``)."""
    from vla_gen_bench.training.advantages import Batch, compute_gae

    if truncation not in ("bootstrap", "terminal"):
        raise ValueError(f"unknown truncation {truncation!r}; allowed: bootstrap, terminal")
    rewards = np.stack([t.rewards for t in trajs], 1)  # (T, n)
    values = np.stack([t.values for t in trajs], 1)  # (T, n)
    last = np.array([t.last_value for t in trajs])  # (n,)
    terminal = np.full(len(trajs), truncation == "terminal")  # (n,)
    adv, ret = compute_gae(rewards, values, last, terminal, gamma, lam)  # (T, n)
    return Batch(
        images=np.concatenate([t.images for t in trajs]),
        instructions=[t.instruction for t in trajs for _ in range(len(t.rewards))],
        tokens=np.concatenate([t.tokens for t in trajs]),
        log_probs=np.concatenate([t.log_probs for t in trajs]),
        advantages=adv.T.reshape(-1),
        returns=ret.T.reshape(-1),
        values=values.T.reshape(-1),
    )


def ppo_update(
    ac, optimizer, batch, cfg: PPOConfig, generator, policy_weight: float = 1.0
) -> dict[str, float]:
    """``cfg.update_epochs`` passes over ``batch`` in shuffled minibatches; an optimizer step every
    ``cfg.grad_accum`` minibatches (and at the end of each epoch). ``policy_weight = 0`` trains the critic only.
    Returns mean diagnostics."""
    import torch

    from vla_gen_bench.training.actor_critic import score

    adv = torch.as_tensor(batch.advantages, dtype=torch.float32)
    if cfg.norm_adv and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-5)
    dev = ac.vla.device
    adv = adv.to(dev)
    returns = torch.as_tensor(batch.returns, dtype=torch.float32, device=dev)
    old_values = torch.as_tensor(batch.values, dtype=torch.float32, device=dev)
    old_logp = torch.as_tensor(batch.log_probs, dtype=torch.float32, device=dev)
    params = ac.actor_parameters() + ac.value_parameters()
    update_mode(ac.vla.model)
    stats: dict[str, list[float]] = {"pg_loss": [], "v_loss": [], "entropy": [], "approx_kl": [], "clipfrac": [],
                                     "grad_norm": []}  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    for idx, step in batch.minibatches(cfg.update_epochs, cfg.minibatch_size, cfg.grad_accum, generator):
        ix = idx.numpy()
        new_logp, entropy, values = score(ac, batch.images[ix], [batch.instructions[i] for i in ix],
                                          batch.tokens[ix], cfg.rollout.temperature,
                                          detach_values=policy_weight == 0)  # fmt: skip
        pg, clipfrac, kl = clipped_surrogate(new_logp, old_logp[idx.to(dev)], adv[idx.to(dev)], cfg.clip_coef,
                                             cfg.clip_mode)  # fmt: skip
        vl = value_loss(values, old_values[idx.to(dev)], returns[idx.to(dev)], cfg.value_clip)
        ent = entropy.mean()
        loss = policy_weight * (cfg.pg_coef * pg - cfg.ent_coef * ent) + cfg.vf_coef * vl
        (loss * len(idx) / (cfg.minibatch_size * cfg.grad_accum)).backward()
        if step:
            gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            stats["grad_norm"].append(float(gn))
        for k, v in (
            ("pg_loss", pg),
            ("v_loss", vl),
            ("entropy", ent),
            ("approx_kl", kl),
            ("clipfrac", clipfrac),
        ):
            stats[k].append(float(v.detach()))
    ac.vla.model.eval()
    return {k: float(np.mean(v)) if v else 0.0 for k, v in stats.items()}


def learn(ac, optimizer, trajs, cfg: PPOConfig, iteration: int, generator) -> dict[str, float]:
    """One iteration's learning from its trajectories: GAE batch, then the PPO update (the first
    ``critic_warmup_iters`` train the critic only). Returns the iteration's metrics: the critic's mean value and
    return target, and the update's diagnostics."""
    batch = make_batch(trajs, cfg.gamma, cfg.gae_lambda, cfg.truncation)
    upd = ppo_update(
        ac, optimizer, batch, cfg, generator, policy_weight=float(iteration >= cfg.critic_warmup_iters)
    )
    return {
        "value_mean": float(batch.values.mean()),
        "return_target_mean": float(batch.returns.mean()),
        **upd,
    }


PPO = rl_loop.Algorithm(
    name="ppo",
    critic=True,
    episodes=lambda cfg: (cfg.episodes_per_iter, 1),
    optimizer=lambda ac, cfg: make_optimizer(ac, cfg.lr, cfg.value_lr, cfg.weight_decay),
    learn=learn,
    shown=("pg_loss", "v_loss", "approx_kl", "clipfrac"),
)
"""PPO in the shared training loop (rl_loop.py)."""


def train(cfg: PPOConfig, env=None, console=None) -> Path:
    """Run (or resume) PPO; returns the run directory. ``env`` (optional): an env to roll out in-process."""
    return rl_loop.train(PPO, cfg, env, console)
