"""The training loop PPO, GRPO and DPO share, top to bottom: set up the run, then every iteration roll out fresh
training-pool episodes, let the algorithm learn from them (its advantages or preference pairs, its loss, its
update), log one metrics row, checkpoint and now and then evaluate; at the end export and evaluate the policy.

An algorithm plugs in with an :class:`Algorithm` (ppo.py, grpo.py and dpo.py each define one next to their loss
and update). Its config is a frozen dataclass with the fields the loop reads: ``out``, ``model``, ``rollout``,
``eval``, ``iterations``, ``max_env_steps``, ``max_minutes``, ``save_every`` and ``seed``.

Re-running the same command resumes: ``state.pt`` holds the trainable tensors, the optimizer, the counters and the
torch RNG; rollouts sample and minibatches shuffle from keys derived from (seed, iteration), so a resumed run
continues as the uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Algorithm:
    """What an RL algorithm brings to :func:`train`."""

    name: str
    """Recorded in config.json and state.pt (a run directory holds one algorithm)."""
    critic: bool
    """Build the value head (PPO) or not (GRPO, DPO)."""
    episodes: Callable[[Any], tuple[int, int]]
    """``cfg -> (initial configurations per iteration, trajectories rolled out from each)``."""
    optimizer: Callable[[Any, Any], Any]
    """``(actor_critic, cfg) -> optimizer``."""
    learn: Callable[..., dict[str, float]]
    """``(actor_critic, optimizer, trajectories, cfg, iteration, generator) -> metrics``: one iteration's learning
    (advantages or pairs, loss, update); ``generator`` orders its minibatches; the metrics become the iteration's
    metrics.csv columns after the rollout statistics."""
    shown: tuple[str, ...]
    """Metrics printed on each iteration's progress line."""


def train(algo: Algorithm, cfg, env=None, console=None) -> Path:
    """Run (or resume) ``algo`` with its config ``cfg``; returns the run directory ``cfg.out``. ``env``
    (optional): an env to roll out in-process.

    Raises:
        ValueError: ``cfg.out`` holds another algorithm's run or one with other model / rollout settings.
        TrainingPoolError: a training episode touches a test pool.
    """
    import torch
    from rich.console import Console

    from vla_gen_bench.training.actor_critic import build_actor_critic, export_policy
    from vla_gen_bench.training.rl_eval import evaluate_during_training
    from vla_gen_bench.training.rollouts import Rollouts, rollout_stats, training_items
    from vla_gen_bench.training.run_dir import MetricsLog, Timer, prepare_run_dir, restore_state, save_state

    console = console or Console(stderr=True)
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # 2-core CPU: one thread per process (env workers take the other core)
    # 1. set-up: run directory (config.json written before any work), actor(-critic), optimiser, resume point
    state = prepare_run_dir(cfg.out, cfg, algo.name)
    ac = build_actor_critic(cfg.model, with_value=algo.critic, seed=cfg.seed)
    optimizer = algo.optimizer(ac, cfg)
    start, env_steps = restore_state(state, ac, optimizer) if state else (0, 0)
    metrics = MetricsLog(cfg.out / "metrics.csv")
    if start:
        console.print(f"resuming {cfg.out} after iteration {start} ({env_steps} env steps)")
    if start >= cfg.iterations:
        console.print(f"{cfg.out} already ran {start} iterations")
    rollouts = Rollouts(cfg.model, cfg.rollout, ac, env=env) if start < cfg.iterations else None
    configs, repeats = algo.episodes(cfg)
    t_run = time.perf_counter()
    try:
        for it in range(start, cfg.iterations):
            timer = Timer()
            # 2. rollout: fresh training-pool configurations (each checked against the test pools), `repeats`
            # trajectories from each
            items = training_items(
                cfg.rollout.variant, cfg.rollout.seed, it * configs, configs, repeats=repeats
            )
            with timer("rollout"):
                trajs = rollouts.collect(items, it, cfg.seed)
            steps = len(trajs) * cfg.rollout.horizon  # env steps (a trajectory has one row per decision)
            env_steps += steps
            # 3. the algorithm learns: advantages or pairs, loss, update (minibatch order seeded by (seed,
            # iteration), so a resumed run shuffles the same way)
            with timer("update"):
                generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)
                learned = algo.learn(ac, optimizer, trajs, cfg, it, generator)
            # 4. metrics: one metrics.csv row (and curve.png) per iteration
            row = {"iteration": it + 1, "env_steps": env_steps, **rollout_stats(trajs), **learned,
                   "rollout_s": timer.marks["rollout"], "update_s": timer.marks["update"],
                   "env_steps_per_s": steps / timer.marks["rollout"]}  # fmt: skip
            metrics.log(row)
            console.print(f"iter {it + 1}/{cfg.iterations} env_steps {env_steps} success {row['success']:.2f} "
                          f"grasp {row['grasp']:.2f} return {row['return_mean']:.3f} "
                          + " ".join(f"{k} {row[k]:.4g}" for k in algo.shown)
                          + f" | rollout {timer.marks['rollout']:.0f} s, update {timer.marks['update']:.0f} s")  # fmt: skip
            # 5. checkpoint (the resume point) every save_every iterations, at the end and when the budget is spent
            done = it + 1 == cfg.iterations
            out_of_budget = (cfg.max_env_steps is not None and env_steps >= cfg.max_env_steps) or (
                cfg.max_minutes is not None and (time.perf_counter() - t_run) / 60 >= cfg.max_minutes
            )
            if (it + 1) % cfg.save_every == 0 or done or out_of_budget:
                save_state(cfg.out, algo.name, cfg, ac, optimizer, it + 1, env_steps)
            # 6. periodic evaluation on train and test pools (exported, merged policy; the eval runner)
            if cfg.eval.every and (it + 1) % cfg.eval.every == 0 and not done:
                evaluate_during_training(ac, cfg, it + 1, console)
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
        evaluate_during_training(ac, cfg, None, console)
    return cfg.out
