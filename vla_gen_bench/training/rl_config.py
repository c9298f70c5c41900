"""Configuration blocks the RL baselines (PPO, GRPO, DPO/TPO) share: the policy being fine-tuned
(:class:`ModelConfig`), where its training episodes come from and how they are stepped (:class:`RolloutConfig`), and
its periodic evaluation (:class:`EvalConfig`); plus the seed line between training and evaluation manifests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla_gen_bench.cameras import CameraName
from vla_gen_bench.options import PolicyOptions

MIN_TRAIN_SEED = 1000
"""Training manifests use seeds >= 1000; evaluation uses the small seeds (0, 1, 2, ...)."""
EVAL_SUITE = "ind,unseen_objects,unseen_table"


@dataclass(frozen=True)
class ModelConfig:
    """The policy being fine-tuned."""

    init: Path | None = None
    """Warm-up checkpoint: an HF OpenVLA folder (e.g. an SFT run's ``<out>/dagger1/final``) or ``bundled:<name>``, a
    reference checkpoint shipped with the package (``bundled:sft-tiny-v12``; ``recipes.checkpoint`` resolves it)."""
    unnorm_key: str | None = None
    """Dataset statistics that de-normalise actions; None = the checkpoint's only key (``random_init`` ignored when
    another exists)."""
    lora_r: int = 32
    """LoRA rank (OpenVLA / RL4VLA: 32)."""
    lora_alpha: int | None = None
    """LoRA alpha; None = min(r, 16) (OpenVLA's recipe)."""
    lora_scope: str = "all-linear"
    """Which linear layers get adapters: all-linear | llm | llm+projector."""
    continue_adapter: bool = False
    """Train the warm-up's own LoRA adapter further (``<init>/adapter``, written by a LoRA SFT / warm-up run), as
    RL4VLA continues its warm-up adapter, instead of fresh adapters on the merged warm-up (ours). The base weights
    become the merged ones minus the adapter's delta, so iteration 0 is still the warm-up; the adapter's own rank,
    alpha and targets apply (``lora_*`` are ignored). Switching this adapter off gives the model *before* the
    warm-up, so GRPO's KL and DPO's reference refuse it."""
    value_widths: tuple[int, ...] = (512, 128)
    """Hidden widths of the value head MLP (RL4VLA: hidden -> 512 -> 128 -> 1)."""
    value_head_init: bool = True
    """Start the value head from ``<init>/value_head.safetensors`` when ``init`` has one (a PPO checkpoint being
    trained further: its critic already fits this policy); a freshly initialised head otherwise."""
    separate_critic: bool = False
    """Give the critic its own backbone copy (with its own LoRA) instead of sharing the actor's: the ablation the
    paper argues against (more memory, slower updates)."""
    device: str = "auto"
    """auto (CUDA when present) | cpu | cuda:0 ..."""
    dtype: str = "auto"
    """auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16."""


@dataclass(frozen=True)
class RolloutConfig:
    """Where episodes come from and how they are stepped."""

    variant: str = "ind"
    """Training variant; every episode is checked against the test pools (``check_training_spec``)."""
    seed: int = 1000
    """Manifest seed of the training episodes (>= 1000: disjoint from the evaluation seeds)."""
    horizon: int = 80
    """Steps per episode (the task's 80-step horizon; a truncation, bootstrapped with the critic)."""
    workers: int = 2
    """CPU env worker processes (each holds an env and a policy copy); 0 = in the learner process."""
    num_envs: int = 1
    """Parallel envs per process (ManiSkill GPU simulation, needs CUDA); actions for all envs in one batch."""
    camera: CameraName = "fast"
    """Policy camera (fast = 128x128, default = 224x224, paper = 640x480): match the warm-up's."""
    sim_freq: int = 100
    """Physics rate (Hz)."""
    policy: PolicyOptions = field(default_factory=PolicyOptions)
    """How rollouts sample: ``temperature`` only (> 0, which the recipe sets with its reason; RL4VLA: 1.0). The
    model's other settings are the model block's (--model.device, --model.unnorm-key)."""
    policy_server: bool = False
    """With workers > 0: keep the only copy of the policy in the learner, which answers the simulator workers in
    dynamic batches (the ``vgb serve`` path; the workers hold no model). Same trajectories as per-worker copies;
    pays off when the model is big or on a GPU (CPU simulators + one batched GPU policy)."""
    policy_timeout: float = 600.0
    """With policy_server: seconds a worker waits for the learner to answer one observation."""

    def __post_init__(self):
        other = [k for k in self.policy.kwargs() if k != "temperature"]
        if other:
            raise ValueError(f"rollout.policy takes only temperature (rollouts run the model block's settings: "
                             f"--model.device, --model.unnorm-key ...); got {', '.join(other)}")  # fmt: skip

    @property
    def temperature(self) -> float:
        """The rollouts' sampling temperature, ``policy.temperature``: RL samples, so it must be given and > 0.

        Raises:
            ValueError: not given, or 0 (greedy).
        """
        t = self.policy.temperature
        if t is None or t <= 0:
            raise ValueError(f"rollout.policy.temperature is {t}: RL samples its rollouts, so it must be > 0; set "
                             "[config.rollout.policy] temperature in the recipe or pass --rollout.policy.temperature "
                             "(RL4VLA: 1.0)")  # fmt: skip
        return t


@dataclass(frozen=True)
class EvalConfig:
    """Periodic evaluation of the exported policy with ``vgb evaluate`` on train and test pools."""

    every: int = 0
    """Evaluate every this many iterations (0 = only at the end when ``at_end``)."""
    at_end: bool = True
    """Evaluate the final policy."""
    suite: str = EVAL_SUITE
    """Suite or comma-separated variants (in-distribution control + test pools)."""
    episodes: int = 16
    """Episodes per variant and seed."""
    seeds: tuple[int, ...] = (0,)
    """Evaluation manifest seeds (small seeds; training uses >= 1000)."""
    policy: PolicyOptions = field(default_factory=PolicyOptions)
    """Options of the evaluated policy (``temperature``: the recipe sets RL4VLA's 0.6; not given = greedy)."""
    workers: int = 2
    """Evaluation worker processes."""
