"""PPO fine-tuning of OpenVLA, RL4VLA's recipe (shared/spec/rl4vla.md §7.1), in one readable file.

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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vla_gen_bench.training.actor_critic import update_mode
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
    n = len(batch)
    for _epoch in range(cfg.update_epochs):
        order = torch.randperm(n, generator=generator)
        mbs = [order[i : i + cfg.minibatch_size] for i in range(0, n, cfg.minibatch_size)]
        optimizer.zero_grad(set_to_none=True)
        for j, idx in enumerate(mbs):
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
            if (j + 1) % cfg.grad_accum == 0 or j == len(mbs) - 1:
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


def learn(ac, optimizer, trajs, cfg: PPOConfig, iteration: int):
    """One iteration's learning from its trajectories: GAE batch, then the PPO update (minibatch order seeded by
    (seed, iteration), so a resumed run shuffles the same way; the first ``critic_warmup_iters`` train the critic
    only). Returns ``(batch, update diagnostics)``."""
    import torch

    batch = make_batch(trajs, cfg.gamma, cfg.gae_lambda, cfg.truncation)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + iteration)
    upd = ppo_update(
        ac, optimizer, batch, cfg, gen, policy_weight=float(iteration >= cfg.critic_warmup_iters)
    )
    return batch, upd


# ------------------------------------------------------------------------------------------ training loop
def train(cfg: PPOConfig, env=None, console=None) -> Path:
    """Run (or resume) PPO; returns the run directory. ``env`` (optional): an env to roll out in-process."""
    import torch
    from rich.console import Console

    from vla_gen_bench.training.actor_critic import build_actor_critic, export_policy, make_optimizer
    from vla_gen_bench.training.rollouts import Rollouts, rollout_stats, training_items
    from vla_gen_bench.training.run_dir import MetricsLog, Timer, prepare_run_dir, restore_state, save_state

    console = console or Console(stderr=True)
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # 2-core CPU: one thread per process (env workers take the other core)
    # 1. run directory (config written before any work), actor-critic, optimiser, resume point
    state = prepare_run_dir(cfg.out, cfg, "ppo")
    ac = build_actor_critic(cfg.model, with_value=True, seed=cfg.seed)
    optimizer = make_optimizer(ac, cfg.lr, cfg.value_lr, cfg.weight_decay)
    start, env_steps = restore_state(state, ac, optimizer) if state else (0, 0)
    metrics = MetricsLog(cfg.out / "metrics.csv")
    if start:
        console.print(f"resuming {cfg.out} after iteration {start} ({env_steps} env steps)")
    if start >= cfg.iterations:
        console.print(f"{cfg.out} already ran {start} iterations")
    rollouts = Rollouts(cfg.model, cfg.rollout, ac, env=env) if start < cfg.iterations else None
    t_run = time.perf_counter()
    try:
        for it in range(start, cfg.iterations):
            timer = Timer()
            # 2. rollouts: fresh training-pool configurations every iteration, checked against the test pools
            items = training_items(cfg.rollout.variant, cfg.rollout.seed, it * cfg.episodes_per_iter,
                                   cfg.episodes_per_iter)  # fmt: skip
            with timer("rollout"):
                trajs = rollouts.collect(items, it, cfg.seed)
            steps = len(trajs) * cfg.rollout.horizon  # env steps (a trajectory has one row per decision)
            env_steps += steps
            # 3. advantages (GAE; the horizon bootstrapped or terminal) and 4. the PPO update
            with timer("update"):
                batch, upd = learn(ac, optimizer, trajs, cfg, it)
            row = {"iteration": it + 1, "env_steps": env_steps, **rollout_stats(trajs),
                   "value_mean": float(batch.values.mean()), "return_target_mean": float(batch.returns.mean()),
                   **upd, "rollout_s": timer.marks["rollout"], "update_s": timer.marks["update"],
                   "env_steps_per_s": steps / timer.marks["rollout"]}  # fmt: skip
            metrics.log(row)
            console.print(f"iter {it + 1}/{cfg.iterations} env_steps {env_steps} success {row['success']:.2f} "
                          f"grasp {row['grasp']:.2f} return {row['return_mean']:.3f} pg {upd['pg_loss']:.4f} "
                          f"v {upd['v_loss']:.4f} kl {upd['approx_kl']:.4f} clip {upd['clipfrac']:.3f} | "
                          f"rollout {timer.marks['rollout']:.0f} s, update {timer.marks['update']:.0f} s")  # fmt: skip
            done = it + 1 == cfg.iterations
            out_of_budget = (cfg.max_env_steps is not None and env_steps >= cfg.max_env_steps) or (
                cfg.max_minutes is not None and (time.perf_counter() - t_run) / 60 >= cfg.max_minutes
            )
            if (it + 1) % cfg.save_every == 0 or done or out_of_budget:
                save_state(cfg.out, "ppo", cfg, ac, optimizer, it + 1, env_steps)
            # 5. periodic evaluation on train and test pools (exported, merged policy; the eval runner)
            if cfg.eval.every and (it + 1) % cfg.eval.every == 0 and not done:
                _evaluate(ac, cfg, it + 1, console)
            if out_of_budget:
                console.print(f"budget reached after iteration {it + 1} ({env_steps} env steps)")
                break
    finally:
        if rollouts is not None:
            rollouts.close()
    export_policy(ac, cfg.out / "policy")
    console.print(
        f"wrote {cfg.out / 'policy'} (merged policy), {cfg.out / 'metrics.csv'}, {cfg.out / 'state.pt'}"
    )
    if cfg.eval.at_end:
        _evaluate(ac, cfg, None, console)
    return cfg.out


def _evaluate(ac, cfg, iteration: int | None, console) -> None:
    import json

    from vla_gen_bench.training.actor_critic import export_policy
    from vla_gen_bench.training.rl_eval import evaluate_policy
    from vla_gen_bench.training.run_dir import MetricsLog

    tag = f"iter_{iteration:04d}" if iteration is not None else "final"
    ckpt = export_policy(ac, cfg.out / "checkpoints" / tag) if iteration is not None else cfg.out / "policy"
    res = evaluate_policy(ckpt, cfg.out / "eval" / tag, cfg.eval, cfg.rollout.camera, ac.unnorm_key,
                          cfg.rollout.sim_freq)  # fmt: skip
    with (cfg.out / "eval.jsonl").open("a") as f:
        f.write(json.dumps({"tag": tag, "results": res}) + "\n")
    MetricsLog(cfg.out / "metrics.csv").replot()
    console.print(f"eval {tag}: " + ", ".join(f"{v} {r['successes']}/{r['n']} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                                              for v, r in res.items()))  # fmt: skip
