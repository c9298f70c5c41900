"""Shared vs separate critic for PPO on OpenVLA, and PPO epoch 1 vs 3: ratios measured in one run.

RL4VLA's critic is a value head on the actor's own hidden state (the position that emits the first action token), so
one backbone serves both. The alternative gives the critic its own backbone copy (with its own LoRA). The paper
reports 44.4 vs 81.3 GB and ~35 % faster updates for sharing (shared/spec/rl4vla.md §7.1); the goal here is
shared/separate <= 0.60x peak memory and <= 0.75x update time.

What is measured, for a model preset that runs on this CPU (default ``tiny``):

* **update step time**: ``ppo.ppo_update`` (the real training code: teacher-forced scoring, value loss, backward,
  AdamW step) on the same batch of transitions, rounds alternating shared / separate in one process, medians;
* **memory of one update step**: each configuration in a fresh subprocess; on CUDA ``max_memory_allocated``; on CPU
  the measured sum of weights, gradients, AdamW moments and the activations autograd saves for one minibatch
  (process RSS would mostly measure imported libraries);
* **PPO epochs 1 vs 3**: ``ppo_update`` with ``update_epochs`` 1 and 3 on the same batch (alternating rounds).

    OMP_NUM_THREADS=1 python benchmarks/critic_sharing.py [--preset tiny] [--transitions 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup(ckpt: Path, separate: bool, transitions: int, minibatch: int, epochs: int = 1):
    import numpy as np
    import torch

    from vla_gen_bench.options import PolicyOptions
    from vla_gen_bench.training.actor_critic import build_actor_critic, make_optimizer
    from vla_gen_bench.training.ppo import PPOConfig, make_batch
    from vla_gen_bench.training.rl_config import ModelConfig, RolloutConfig
    from vla_gen_bench.training.rollouts import RolloutPolicy, Trajectory

    torch.set_num_threads(1)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ac = build_actor_critic(
        ModelConfig(init=ckpt, separate_critic=separate, device=dev, dtype="auto"), seed=0
    )
    size = ac.vla.processor.sizes[0] if hasattr(ac.vla.processor, "sizes") else 128
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (transitions, size, size, 3), dtype=np.uint8)
    pol = RolloutPolicy(ac, temperature=1.0, seed=0)
    pol.act_batch(imgs, ["put the red cube on the plate"] * transitions)
    rec = pol.records[0]
    traj = Trajectory(images=imgs, instruction="put the red cube on the plate", tokens=rec["tokens"],
                      log_probs=rec["log_probs"], values=rec["values"],
                      rewards=(rng.random(transitions) < 0.05).astype(np.float32), last_value=0.0, success=False,
                      grasped=False, seed=1000, episode=0, group=0)  # fmt: skip
    batch = make_batch([traj], 0.99, 0.95)
    cfg = PPOConfig(
        rollout=RolloutConfig(policy=PolicyOptions(temperature=1.0)),  # RL4VLA's rollout temperature
        minibatch_size=minibatch,
        grad_accum=max(1, transitions // minibatch // 2),
        update_epochs=epochs,
    )
    return ac, make_optimizer(ac, 1e-4, 3e-3), batch, cfg


def _child(args) -> None:
    """One configuration in a fresh process: the memory one PPO update step needs.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (RSS is dominated by lazily imported libraries, not by a few-MB
    model): an account of the same parts, each measured: bytes of every parameter and buffer of the models, gradients
    and the two AdamW moments of the trainable tensors, and the activations autograd keeps for the backward pass of
    one minibatch (the distinct storages packed by ``saved_tensors_hooks``, parameters excluded).
    """
    import torch

    from vla_gen_bench.training import ppo

    ac, opt, batch, cfg = _setup(Path(args.ckpt), args.separate, args.minibatch, args.minibatch)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        ppo.ppo_update(ac, opt, batch, cfg, torch.Generator().manual_seed(0))
        print(
            json.dumps(
                {"peak_mb": torch.cuda.max_memory_allocated() / 2**20, "kind": "cuda max_memory_allocated"}
            )
        )
        return
    modules = [ac.vla.model, ac.value_head] + ([ac.critic_vla.model] if ac.critic_vla is not None else [])
    tensors = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
               for m in modules for t in [*m.parameters(), *m.buffers()]}  # fmt: skip
    trainable = sum(p.numel() * p.element_size() for p in ac.actor_parameters() + ac.value_parameters())
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in tensors:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ppo.ppo_update(
            ac, opt, batch, cfg, torch.Generator().manual_seed(0)
        )  # one minibatch, one optimizer step
    parts = {
        "weights": sum(tensors.values()),
        "grads": trainable,
        "adam": 2 * trainable,
        "activations": sum(saved.values()),
    }
    out = {k: v / 2**20 for k, v in parts.items()}
    out.update(
        peak_mb=sum(parts.values()) / 2**20, kind="weights + grads + AdamW moments + saved activations"
    )
    print(json.dumps(out))


def _time_updates(ckpt: Path, transitions: int, minibatch: int, rounds: int):
    import statistics

    import torch

    from vla_gen_bench.training import ppo

    setups = {
        "shared": _setup(ckpt, False, transitions, minibatch),
        "separate": _setup(ckpt, True, transitions, minibatch),
    }
    times: dict[str, list[float]] = {"shared": [], "separate": [], "epochs1": [], "epochs3": []}
    ac, opt, batch, cfg = setups["shared"]
    from dataclasses import replace

    for r in range(rounds + 1):  # round 0 warms up (allocator, caches)
        for name in ("shared", "separate"):
            a, o, b, c = setups[name]
            t = time.perf_counter()
            ppo.ppo_update(a, o, b, c, torch.Generator().manual_seed(r))
            if r:
                times[name].append(time.perf_counter() - t)
        for e in (1, 3):
            t = time.perf_counter()
            ppo.ppo_update(ac, opt, batch, replace(cfg, update_epochs=e), torch.Generator().manual_seed(r))
            if r:
                times[f"epochs{e}"].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--transitions", type=int, default=64, help="transitions in the update batch")
    ap.add_argument("--minibatch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--separate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    from vla_gen_bench.models.checkpoint import describe, init_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = init_checkpoint(args.preset, Path(tmp) / args.preset, seed=0)
        params = describe(ckpt)["parameters"]
        mem = {}
        for name, flag in (("shared", []), ("separate", ["--separate"])):
            out = subprocess.run([sys.executable, __file__, "--child", "--ckpt", str(ckpt), "--transitions",
                                  str(args.transitions), "--minibatch", str(args.minibatch), *flag],
                                 check=True, capture_output=True, text=True)  # fmt: skip
            mem[name] = json.loads(out.stdout.strip().splitlines()[-1])
        t = _time_updates(ckpt, args.transitions, args.minibatch, args.rounds)
    print(
        f"preset {args.preset} ({params / 1e6:.2f} M parameters), update batch {args.transitions} transitions, "
        f"minibatch {args.minibatch}, {args.rounds} rounds (medians), one torch thread"
    )
    print(
        f"memory ({mem['shared']['kind']}): shared {mem['shared']['peak_mb']:.0f} MB, separate "
        f"{mem['separate']['peak_mb']:.0f} MB -> shared/separate {mem['shared']['peak_mb'] / mem['separate']['peak_mb']:.2f}x "
        f"(goal <= 0.60x; paper 44.4/81.3 GB = 0.55x)"
    )
    print(
        f"update step: shared {t['shared']:.2f} s, separate {t['separate']:.2f} s -> shared/separate "
        f"{t['shared'] / t['separate']:.2f}x (goal <= 0.75x; paper ~0.65x)"
    )
    print(
        f"PPO update: 1 epoch {t['epochs1']:.2f} s, 3 epochs {t['epochs3']:.2f} s -> 3/1 {t['epochs3'] / t['epochs1']:.2f}x"
    )
    print(json.dumps({"preset": args.preset, "memory": mem, "time_s": t,
                      "memory_ratio": mem["shared"]["peak_mb"] / mem["separate"]["peak_mb"],
                      "time_ratio": t["shared"] / t["separate"], "epochs3_over_1": t["epochs3"] / t["epochs1"]}))  # fmt: skip


if __name__ == "__main__":
    main()
