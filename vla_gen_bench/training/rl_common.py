"""Pieces the RL baselines (PPO, GRPO, DPO/TPO) share: config blocks, the actor-critic (OpenVLA + LoRA + value
head), rollouts through the evaluation runner's loop, worker processes, GAE, checkpoints, metrics and evaluation.

Rollouts never step the simulator themselves: :func:`collect` calls :func:`vla_gen_bench.eval.runner.run_batch`
with a :class:`RolloutPolicy` that records the tokens, log-probs and values of its own forward passes, and an
``on_step`` hook that records rewards and, at the horizon, the bootstrap value of the final observation (the 80-step
horizon is a truncation, not a terminal state).

On CPU the simulator runs one env per process, so :class:`Rollouts` spreads episodes over worker processes, each
holding an env and a copy of the policy; the learner broadcasts only the trainable tensors (LoRA + value head) at the
start of every collection. With CUDA, one ManiSkill GPU env with ``num_envs = N`` is stepped in-process and the
policy answers all envs in one batched forward (``act_batch``); both paths run the same :func:`collect`.
"""

from __future__ import annotations

import csv
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.cameras import CameraName
from vla_gen_bench.policies.openvla import OpenVLAPolicy

MIN_TRAIN_SEED = 1000
"""Training manifests use seeds >= 1000; evaluation uses the small seeds (0, 1, 2, ...)."""
EVAL_SUITE = "ind,unseen_objects,unseen_table"


# ------------------------------------------------------------------------------------------ config blocks
@dataclass(frozen=True)
class ModelConfig:
    """The policy being fine-tuned."""

    init: Path | None = None
    """Warm-up checkpoint (an HF OpenVLA folder, e.g. the SFT output ``runs/baselines/sft-tiny/final``)."""
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
    temperature: float = 1.0
    """Sampling temperature of rollouts (RL4VLA: 1.0)."""
    policy_server: bool = False
    """With workers > 0: keep the only copy of the policy in the learner, which answers the simulator workers in
    dynamic batches (the ``vgb serve`` path; the workers hold no model). Same trajectories as per-worker copies;
    pays off when the model is big or on a GPU (CPU simulators + one batched GPU policy)."""
    policy_timeout: float = 600.0
    """With policy_server: seconds a worker waits for the learner to answer one observation."""


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
    temperature: float = 0.6
    """Action sampling temperature at evaluation (RL4VLA: 0.6; 0 = greedy)."""
    workers: int = 2
    """Evaluation worker processes."""


# ------------------------------------------------------------------------------------------ run records
def to_jsonable(obj) -> Any:
    if is_dataclass(obj):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------------ training episodes
@dataclass(frozen=True)
class EpisodeItem:
    """One episode to roll out: manifest (seed, k), its spec, and the id of its initial configuration."""

    seed: int
    episode: int
    spec: Any  # EpisodeSpec
    group: int = 0
    """Trajectories with the same ``group`` start from the same initial configuration (GRPO groups, DPO pairs)."""


def training_items(
    variant: str, seed: int, start: int, n: int, repeats: int = 1, store=None
) -> list[EpisodeItem]:
    """Episodes ``start .. start+n-1`` of a training variant, each repeated ``repeats`` times (one group each).

    Raises:
        ValueError: a seed in the evaluation range (< 1000).
        TrainingPoolError: an episode that touches a test pool (unseen assets, overlays, paraphrases, ...).
    """
    from vla_gen_bench.variants import check_training_spec, episode

    if int(seed) < MIN_TRAIN_SEED:
        raise ValueError(
            f"training seed {seed} overlaps the evaluation seeds; use a seed >= {MIN_TRAIN_SEED}"
        )
    if store is None:
        from vla_gen_bench.assets.store import default_store

        store = default_store()
    items = []
    for k in range(start, start + n):
        spec = episode(variant, seed, k, store)
        check_training_spec(spec, store)
        items += [EpisodeItem(int(seed), k, spec, group=k) for _ in range(repeats)]
    return items


# ------------------------------------------------------------------------------------------ actor-critic
class ActorCritic:
    """OpenVLA with LoRA (the actor: a distribution over 7 action tokens) and a value head.

    Shared critic (default, RL4VLA): the value head reads the actor's hidden state at the position that emits the
    first action token, so one forward pass gives both log-probs and the value. Separate critic: a second backbone
    copy with its own LoRA feeds the value head (the ablation). ``value_head`` is None for critic-free algorithms.
    """

    def __init__(self, vla, value_head=None, critic_vla=None, continued_adapter: bool = False) -> None:
        self.vla = vla
        self.value_head = value_head
        self.critic_vla = critic_vla
        self.continued_adapter = continued_adapter

    @property
    def network(self):
        return self.vla.network

    def actor_parameters(self) -> list:
        ps = [p for p in self.vla.model.parameters() if p.requires_grad]
        if self.critic_vla is not None:
            ps += [p for p in self.critic_vla.model.parameters() if p.requires_grad]
        return ps

    def value_parameters(self) -> list:
        return list(self.value_head.parameters()) if self.value_head is not None else []

    def values(self, inputs: dict, value_hidden=None, detach: bool = False):
        """``(b,)`` values of prompts ``inputs`` (from :meth:`OpenVLA.prepare`); pass the actor's ``value_hidden``
        when a forward pass already computed it (shared critic). ``detach``: train the head only (no gradient
        into the backbone)."""
        if self.value_head is None:
            raise ValueError("this actor-critic has no value head")
        net = self.network if self.critic_vla is None else self.critic_vla.network
        if value_hidden is None or self.critic_vla is not None:
            value_hidden = net(
                inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], logits_to_keep=1
            )["hidden"][:, -1]
        return self.value_head(value_hidden.detach() if detach else value_hidden)

    def trainable_state(self) -> dict[str, Any]:
        """The tensors that change in training (LoRA, value head): what workers receive and checkpoints hold."""
        out = {
            "actor": {
                n: p.detach().cpu().clone() for n, p in self.vla.model.named_parameters() if p.requires_grad
            }
        }
        if self.value_head is not None:
            out["value_head"] = {k: v.detach().cpu().clone() for k, v in self.value_head.state_dict().items()}
        if self.critic_vla is not None:
            out["critic"] = {n: p.detach().cpu().clone()
                             for n, p in self.critic_vla.model.named_parameters() if p.requires_grad}  # fmt: skip
        return out

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        import torch

        def put(model, tensors):
            params = dict(model.named_parameters())
            missing = [n for n, p in params.items() if p.requires_grad and n not in tensors]
            if missing:
                raise ValueError(
                    f"state lacks {len(missing)} trainable tensors (e.g. {missing[0]}): different LoRA setup?"
                )
            with torch.no_grad():
                for n, t in tensors.items():
                    params[n].copy_(t.to(params[n].device, params[n].dtype))

        put(self.vla.model, state["actor"])
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])
        if self.critic_vla is not None:
            put(self.critic_vla.model, state["critic"])

    def reference(self):
        """Context manager: the actor with its LoRA switched off = the warm-up policy (LoRA starts at zero).

        Raises:
            ValueError: the adapter is the warm-up's own (``model.continue_adapter``): off, it is not the warm-up.
        """
        if self.continued_adapter:
            raise ValueError("model.continue_adapter = true: switching the continued warm-up adapter off gives the "
                             "model before the warm-up, not the warm-up; use fresh adapters (continue_adapter = "
                             "false) when a reference policy is needed")  # fmt: skip
        return self.vla.model.disable_adapter()


def update_mode(model) -> None:
    """``model.train()`` for an RL update, with batch-norm layers (the conv featurizer's ``batchnorm`` option) kept
    in evaluation mode: the update must score actions with the same function that sampled them in the rollouts
    (running statistics, not the minibatch's)."""
    from torch import nn

    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def resolve_key(norm_stats: dict, unnorm_key: str | None) -> str | None:
    """``unnorm_key`` or, when None, the checkpoint's only dataset key (ignoring ``random_init`` if another exists)."""
    if unnorm_key is not None:
        return unnorm_key
    keys = [k for k in norm_stats if k != "random_init"] or list(norm_stats)
    return keys[0] if len(keys) == 1 else None


def continue_lora(model, adapter_dir: Path):
    """``model`` (weights with the adapter already merged in) with that adapter re-attached, trainable, and its
    delta taken back out of the base weights: the same function, now with the warm-up's adapter to train on.

    Raises:
        FileNotFoundError: ``adapter_dir`` is not a LoRA adapter folder.
    """
    import torch

    from vla_gen_bench.models.lora import load_lora

    peft_model = load_lora(model, adapter_dir, merge=False, trainable=True)
    with torch.no_grad():
        for m in peft_model.modules():
            if hasattr(m, "get_delta_weight") and hasattr(m, "get_base_layer"):
                w = m.get_base_layer().weight
                for name in m.active_adapters:
                    w -= m.get_delta_weight(name).to(w.dtype)
    return peft_model


def build_actor_critic(cfg: ModelConfig, with_value: bool = True, seed: int = 0) -> ActorCritic:
    """Load ``cfg.init``, attach fresh LoRA adapters (zero delta: the policy starts as the warm-up) or continue
    the warm-up's own adapter (``cfg.continue_adapter``), and a value head (float32, seeded).

    Raises:
        ValueError: no ``init`` checkpoint.
        FileNotFoundError: ``continue_adapter`` with an ``init`` that has no ``adapter/`` folder.
    """
    import copy

    import torch

    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.models.lora import attach_lora
    from vla_gen_bench.models.modeling import ValueHead

    if cfg.init is None:
        raise ValueError(
            "model.init is required: the warm-up checkpoint folder (e.g. runs/baselines/sft-tiny/final)"
        )
    vla = load_openvla(cfg.init, device=cfg.device, dtype=cfg.dtype)
    key = resolve_key(vla.norm_stats, cfg.unnorm_key)
    vla.resolve_unnorm_key(key)  # fails early, listing the keys, when ambiguous or unknown
    base = vla.model
    critic = None
    if cfg.separate_critic and with_value:
        critic = copy.copy(vla)
        critic.model = attach_lora(
            copy.deepcopy(base), r=cfg.lora_r, alpha=cfg.lora_alpha, scope=cfg.lora_scope
        )
    adapter = Path(cfg.init) / "adapter"
    if cfg.continue_adapter and not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"model.continue_adapter = true needs the warm-up's LoRA adapter at {adapter}; "
                                f"{cfg.init} has none (a full fine-tune or a merged-only checkpoint): set "
                                "model.continue_adapter = false")  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.continue_adapter:
            vla.model = continue_lora(base, adapter)
        else:
            vla.model = attach_lora(base, r=cfg.lora_r, alpha=cfg.lora_alpha, scope=cfg.lora_scope)
        head = ValueHead(vla.network.language_model.config.hidden_size, tuple(cfg.value_widths))
    head = head.to(vla.device) if with_value else None
    ac = ActorCritic(vla, head, critic, continued_adapter=cfg.continue_adapter)
    ac.unnorm_key = key
    ac.vla.model.eval()  # no dropout (LoRA dropout is 0); rollouts and updates see the same function
    return ac


# ------------------------------------------------------------------------------------------ rollouts
class RolloutPolicy(OpenVLAPolicy):
    """The ``openvla`` policy adapter (same action mapping as evaluation) that also records, for every forward
    pass, the images, instructions, action tokens, their log-probs and the critic's values."""

    def __init__(self, ac: ActorCritic, temperature: float = 1.0, seed: int = 0) -> None:
        super().__init__(ac.vla, unnorm_key=ac.unnorm_key, temperature=temperature, seed=seed)
        self.ac = ac
        self.records: list[dict[str, Any]] = []

    def act_batch(
        self, images, instructions: list[str], sample_keys: list[int | None] | None = None
    ) -> np.ndarray:
        import torch

        images = np.asarray(images)
        pred = self.vla.predict_action(images, instructions, unnorm_key=self.unnorm_key,
                                       temperature=self.temperature, generator=self.generator,
                                       uniforms=self.uniforms(sample_keys))  # fmt: skip
        values = None
        if self.ac.value_head is not None:
            with torch.inference_mode():
                inputs = self.vla.prepare(images, instructions) if self.ac.critic_vla is not None else None
                values = self.ac.values(inputs, pred.value_hidden).float().cpu().numpy()
        self.records.append({"images": images.copy(), "instructions": list(instructions), "tokens": pred.tokens,
                             "log_probs": pred.log_probs, "values": values,
                             "keys": list(sample_keys) if sample_keys is not None else None})  # fmt: skip
        return self.to_env_actions(pred.actions)

    def bootstrap_values(self, images, instructions: list[str]) -> np.ndarray:
        """``V(s_T)`` of the observation after the last step (the horizon truncates; it does not terminate)."""
        import torch

        if self.ac.value_head is None:
            return np.zeros(len(instructions), np.float32)
        with torch.inference_mode():
            return self.ac.values(self.vla.prepare(np.asarray(images), instructions)).float().cpu().numpy()


@dataclass
class Trajectory:
    """One episode as the learner needs it. Arrays are indexed by decision ``t``: one per env step, or one per
    action chunk for a checkpoint that predicts ``K``-action chunks (T = ceil(horizon / K) decisions; a decision's
    reward is the sum of its K steps' rewards, and GAE discounts per decision)."""

    images: np.ndarray  # (T, H, W, 3) uint8, the observation the action was chosen on
    instruction: str
    tokens: np.ndarray  # (T, 7K) action token ids
    log_probs: np.ndarray  # (T, 7K) under the rollout distribution
    values: np.ndarray | None  # (T,) critic values (None without a critic)
    rewards: np.ndarray  # (T,) the env's potential-based sparse reward (summed over each chunk)
    last_value: float  # V(s_T), bootstraps the truncated horizon
    success: bool
    grasped: bool
    seed: int
    episode: int
    group: int

    @property
    def return_(self) -> float:
        return float(self.rewards.sum())


def rollout_keys(seed: int, iteration: int, n: int) -> list[int]:
    """One sampling key per item of an iteration's rollouts (see ``eval.runner.episode_key``): each step of item ``j``
    samples from its own stream, so the trajectories do not depend on how items are spread over workers or batched."""
    from vla_gen_bench.eval.runner import episode_key

    base = f"rollout/{sample_seed(seed, iteration)}"
    return [episode_key(base, j, 0) for j in range(n)]


def decision_rewards(rewards: np.ndarray, chunk: int) -> np.ndarray:
    """Per-step rewards ``(..., T_env)`` -> per-decision rewards ``(..., ceil(T_env / chunk))``: each action chunk's
    reward is the sum over the steps it ran (the last chunk may be cut by the horizon)."""
    rewards = np.asarray(rewards, np.float32)
    if chunk == 1:
        return rewards
    n = -(-rewards.shape[-1] // chunk)
    pad = np.zeros((*rewards.shape[:-1], n * chunk - rewards.shape[-1]), np.float32)
    return np.concatenate([rewards, pad], -1).reshape(*rewards.shape[:-1], n, chunk).sum(-1)


def collect(env, policy: RolloutPolicy, items: list[EpisodeItem], horizon: int,
            keys: list[int] | None = None) -> list[Trajectory]:  # fmt: skip
    """Roll out ``items`` on ``env`` (``num_envs`` at a time) with the runner's loop; one Trajectory per item.
    ``keys`` (one per item, :func:`rollout_keys`) give each item its own sampling stream."""
    from vla_gen_bench.eval.runner import run_batch

    b = env.unwrapped.num_envs
    out: list[Trajectory] = []
    for start in range(0, len(items), b):
        chunk = items[start : start + b]
        padded = chunk + [chunk[0]] * (b - len(chunk))
        chunk_keys = None if keys is None else keys[start : start + len(chunk)]
        chunk_keys = None if chunk_keys is None else chunk_keys + chunk_keys[:1] * (b - len(chunk))
        policy.records = []
        rewards: list[np.ndarray] = []
        last: dict[str, np.ndarray] = {}

        def on_step(t, obs, action, next_obs, reward, info, _last=last, _rewards=rewards):
            _rewards.append(np.asarray(reward, np.float32))
            if t == horizon - 1:
                imgs = next_obs["sensor_data"]["policy_camera"]["rgb"].cpu().numpy()  # (b, H, W, 3)
                _last["v"] = policy.bootstrap_values(imgs, list(env.unwrapped.instructions))

        results = run_batch(env, [policy] * b, [it.seed for it in padded], [it.spec for it in padded],
                            max_steps=horizon, on_step=on_step, episode_keys=chunk_keys)  # fmt: skip
        recs = policy.records
        k = policy.vla.chunk
        if len(recs) != -(-horizon // k):
            raise RuntimeError(f"expected one policy call per {k} step(s) of {horizon}, got {len(recs)}")
        images = np.stack([r["images"] for r in recs], 1)  # (b, T, H, W, 3)
        tokens = np.stack([r["tokens"] for r in recs], 1)  # (b, T, 7)
        logps = np.stack([r["log_probs"] for r in recs], 1)  # (b, T, 7)
        values = np.stack([r["values"] for r in recs], 1) if recs[0]["values"] is not None else None  # (b, T)
        rew = decision_rewards(np.stack(rewards, 1), k)  # (b, T)
        for i, (it, res) in enumerate(zip(chunk, results, strict=False)):
            out.append(Trajectory(
                images=images[i], instruction=recs[0]["instructions"][i], tokens=tokens[i].astype(np.int64),
                log_probs=logps[i].astype(np.float32), values=None if values is None else values[i].astype(np.float32),
                rewards=rew[i], last_value=float(last["v"][i]), success=bool(res.success_at_end),
                grasped=bool(res.ever_grasped), seed=it.seed, episode=it.episode, group=it.group,
            ))  # fmt: skip
    return out


def sample_seed(seed: int, iteration: int, worker: int = 0) -> int:
    """Seed of the action-sampling generator for an (iteration, worker): resumed runs sample the same way."""
    return (int(seed) * 1_000_003 + int(iteration) * 7919 + int(worker) * 104_729) % (2**63 - 1)


@dataclass(frozen=True)
class _WorkerSpec:
    model: ModelConfig
    rollout: RolloutConfig
    with_value: bool


def _worker_main(spec: _WorkerSpec, index: int, tasks, results) -> None:
    """Rollout worker: one env + one policy copy; receives (trainable state, items, sampling seed), returns
    trajectories."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
        from vla_gen_bench.envs import make_env

        env = make_env(
            camera=spec.rollout.camera, sim_freq=spec.rollout.sim_freq, num_envs=spec.rollout.num_envs
        )
        ac = build_actor_critic(spec.model, with_value=spec.with_value)
        policy = RolloutPolicy(ac, temperature=spec.rollout.temperature)
        results.put(("ready", index, None))
        while (msg := tasks.get()) is not None:
            state, items, seed, keys = msg
            ac.load_trainable_state(state)
            policy.generator.manual_seed(seed)
            results.put(("done", index, collect(env, policy, items, spec.rollout.horizon, keys)))
        env.close()
    except BaseException as e:  # noqa: BLE001 - reported to the learner, which raises
        results.put(("error", index, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def _sim_worker_main(rollout: RolloutConfig, index: int, url: str, tasks, results) -> None:
    """Simulator-only rollout worker (``policy_server``): steps its env with the learner's served policy and returns,
    per item, what only the simulator knows: rewards, success, grasp and the final observation."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from vla_gen_bench.envs import make_env
        from vla_gen_bench.eval.runner import run_batch
        from vla_gen_bench.policies.remote import RemotePolicy

        env = make_env(camera=rollout.camera, sim_freq=rollout.sim_freq)
        policy = RemotePolicy(url, timeout_s=rollout.policy_timeout)
        results.put(("ready", index, None))
        while (msg := tasks.get()) is not None:
            items, keys = msg
            out = []
            for it, key in zip(items, keys, strict=True):
                rewards: list[float] = []
                last: dict[str, np.ndarray] = {}

                def on_step(t, obs, action, next_obs, reward, info, _r=rewards, _last=last):
                    _r.append(float(reward[0]))
                    if t == rollout.horizon - 1:
                        _last["image"] = next_obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy()

                res = run_batch(env, [policy], [it.seed], [it.spec], max_steps=rollout.horizon, on_step=on_step,
                                episode_keys=[key])[0]  # fmt: skip
                out.append({"rewards": np.asarray(rewards, np.float32), "success": res.success_at_end,
                            "grasped": res.ever_grasped, "last_image": last["image"]})  # fmt: skip
            results.put(("done", index, out))
        env.close()
    except BaseException as e:  # noqa: BLE001 - reported to the learner, which raises
        results.put(("error", index, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


class Rollouts:
    """Collects trajectories for the learner: in-process (``workers == 0``, or always with CUDA GPU envs), in
    ``workers`` spawned processes (CPU) that receive the learner's trainable tensors before every collection, or
    (``policy_server``) in simulator-only processes that the learner's own policy answers in dynamic batches.
    Every item samples from its own key (:func:`rollout_keys`): the three ways give the same trajectories."""

    def __init__(self, model: ModelConfig, rollout: RolloutConfig, ac: ActorCritic, env=None) -> None:
        self.cfg = rollout
        self.ac = ac
        self.procs: list = []
        self.env = env
        self._own_env = False
        self.server = None
        if rollout.num_envs > 1:
            import torch

            if not torch.cuda.is_available():
                raise ValueError("rollout.num_envs > 1 needs ManiSkill's GPU simulator (CUDA); on CPU use "
                                 "rollout.workers = N processes instead")  # fmt: skip
        if rollout.workers > 0 and env is None and rollout.num_envs == 1:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            self.results = ctx.Queue()
            self.tasks = [ctx.Queue() for _ in range(rollout.workers)]
            if rollout.policy_server:
                from vla_gen_bench.policies.serve import PolicyServer

                self.policy = RolloutPolicy(ac, temperature=rollout.temperature)
                self.server = PolicyServer(self.policy, host="127.0.0.1", port=0, name="rollout-policy",
                                           max_batch=max(rollout.workers, 1))  # fmt: skip
                url = f"ws://127.0.0.1:{self.server.start()}"
                target, args = _sim_worker_main, lambda i: (rollout, i, url, self.tasks[i], self.results)
            else:
                spec = _WorkerSpec(model, rollout, ac.value_head is not None)
                target, args = _worker_main, lambda i: (spec, i, self.tasks[i], self.results)
            for i in range(rollout.workers):
                p = ctx.Process(target=target, args=args(i), daemon=True)
                p.start()
                self.procs.append(p)
            for _ in self.procs:
                self._get("ready")
        else:
            if self.env is None:
                from vla_gen_bench.envs import make_env

                self.env = make_env(
                    camera=rollout.camera, sim_freq=rollout.sim_freq, num_envs=rollout.num_envs
                )
                self._own_env = True
            self.policy = RolloutPolicy(ac, temperature=rollout.temperature)

    def _get(self, kind: str):
        import queue

        while True:
            try:
                msg = self.results.get(timeout=5)
            except queue.Empty:
                dead = [p for p in self.procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"rollout worker exited with code {dead[0].exitcode}") from None
                continue
            if msg[0] == "error":
                raise RuntimeError(f"rollout worker {msg[1]} failed: {msg[2]}")
            if msg[0] != kind:
                raise RuntimeError(f"unexpected worker message {msg[0]!r}")
            return msg

    def collect(self, items: list[EpisodeItem], iteration: int, seed: int) -> list[Trajectory]:
        """Trajectories for ``items`` (same order), sampled with keys derived from (seed, iteration, item index)."""
        keys = rollout_keys(seed, iteration, len(items))
        if not self.procs:
            self.ac.vla.model.eval()
            self.policy.generator.manual_seed(sample_seed(seed, iteration))
            return collect(self.env, self.policy, items, self.cfg.horizon, keys)
        if self.server is not None:
            return self._collect_served(items, keys)
        state = self.ac.trainable_state()
        n = len(self.procs)
        shares = [items[i::n] for i in range(n)]
        for i, share in enumerate(shares):
            self.tasks[i].put((state, share, sample_seed(seed, iteration, i), keys[i::n]))
        by_worker = {}
        for _ in range(n):
            _, i, trajs = self._get("done")
            by_worker[i] = trajs
        out: list[Trajectory | None] = [None] * len(items)
        for i in range(n):
            for j, tr in enumerate(by_worker[i]):
                out[i + j * n] = tr
        return out  # type: ignore[return-value]

    def _collect_served(self, items: list[EpisodeItem], keys: list[int]) -> list[Trajectory]:
        """Workers simulate; the learner's policy (behind the batching server) recorded every step it answered."""
        from vla_gen_bench.eval.runner import step_key

        self.ac.vla.model.eval()
        self.policy.records = []
        n = len(self.procs)
        for i in range(n):
            self.tasks[i].put((items[i::n], keys[i::n]))
        sim: list[dict | None] = [None] * len(items)
        for _ in range(n):
            _, i, rows = self._get("done")
            for j, row in enumerate(rows):
                sim[i + j * n] = row
        rows_by_key = {}
        for rec in self.policy.records:
            for r, k in enumerate(rec["keys"]):
                rows_by_key[k] = (rec, r)
        T, k = self.cfg.horizon, self.ac.vla.chunk
        out = []
        last_images = np.stack([s["last_image"] for s in sim])  # (n_items, H, W, 3)
        # one policy call per chunk: at steps 0, k, 2k, ...
        steps = [[rows_by_key[step_key(key, t)] for t in range(0, T, k)] for key in keys]
        instructions = [steps[j][0][0]["instructions"][steps[j][0][1]] for j in range(len(items))]
        last_values = self.policy.bootstrap_values(last_images, instructions)
        for j, (it, s) in enumerate(zip(items, sim, strict=True)):
            pick = lambda f, _j=j: np.stack([rec[f][r] for rec, r in steps[_j]])  # noqa: E731
            has_values = steps[j][0][0]["values"] is not None
            out.append(Trajectory(
                images=pick("images"), instruction=instructions[j], tokens=pick("tokens").astype(np.int64),
                log_probs=pick("log_probs").astype(np.float32),
                values=pick("values").astype(np.float32) if has_values else None,
                rewards=decision_rewards(s["rewards"], k),
                last_value=float(last_values[j]), success=bool(s["success"]), grasped=bool(s["grasped"]),
                seed=it.seed, episode=it.episode, group=it.group,
            ))  # fmt: skip
        return out

    def close(self) -> None:
        for q in getattr(self, "tasks", []):
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        self.procs = []
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._own_env and self.env is not None:
            self.env.close()


# ------------------------------------------------------------------------------------------ advantages
def compute_gae(rewards: np.ndarray, values: np.ndarray, last_values: np.ndarray, terminated: np.ndarray | None,
                gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Generalised advantage estimation over one episode per column.

    Args:
        rewards, values: ``(T, ...)``.
        last_values: ``(...)`` V(s_T) of the observation after the last step.
        terminated: ``(...)`` True where the episode ended in a terminal state (then V(s_T) counts as 0); False
            (the default) for a truncated horizon, which is bootstrapped with ``last_values``.

    Returns:
        ``advantages, returns`` (``returns = advantages + values``), float32, shaped like ``rewards``.
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    nxt = np.asarray(last_values, np.float64)
    if terminated is not None:
        nxt = np.where(np.asarray(terminated, bool), 0.0, nxt)
    adv = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in range(len(rewards) - 1, -1, -1):
        delta = rewards[t] + gamma * nxt - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
        nxt = values[t]
    return adv.astype(np.float32), (adv + values).astype(np.float32)


# ------------------------------------------------------------------------------------------ update batches
@dataclass
class Batch:
    """Flattened transitions for a policy update (N rows)."""

    images: np.ndarray  # (N, H, W, 3)
    instructions: list[str]
    tokens: np.ndarray  # (N, 7)
    log_probs: np.ndarray  # (N, 7) behaviour log-probs
    advantages: np.ndarray  # (N,)
    returns: np.ndarray  # (N,)
    values: np.ndarray  # (N,) critic values at collection (zeros without a critic)

    def __len__(self) -> int:
        return len(self.tokens)


def score(ac: ActorCritic, images: np.ndarray, instructions: list[str], tokens: np.ndarray, temperature: float,
          with_values: bool = True, detach_values: bool = False):  # fmt: skip
    """Teacher-forced, differentiable log-probs ``(m, 7)``, entropies ``(m, 7)`` and values ``(m,)`` of recorded
    actions (the update-time twin of :meth:`RolloutPolicy.act_batch`)."""
    import torch

    inputs = ac.vla.prepare(images, instructions)
    out = ac.network.score_actions(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"],
                                   torch.as_tensor(tokens), temperature=temperature)  # fmt: skip
    use = with_values and ac.value_head is not None
    values = ac.values(inputs, out.value_hidden, detach_values) if use else None
    return out.log_probs, out.entropy, values


# ------------------------------------------------------------------------------------------ run directory
class MetricsLog:
    """Append-only ``metrics.csv``: one row per iteration, columns fixed by the first row (kept on resume); each row
    also redraws the learning curve ``curve.png`` beside it (training/curves.py)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fieldnames: list[str] | None = None
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open() as f:
                self.fieldnames = next(csv.reader(f))

    def log(self, row: dict[str, Any]) -> None:
        new = self.fieldnames is None
        if new:
            self.fieldnames = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fieldnames, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
        self.replot()

    def replot(self) -> None:
        """Redraw ``curve.png`` from the rows so far and the run's ``eval.jsonl``."""
        from vla_gen_bench.training.curves import plot_curve

        plot_curve(self.rows(), self.path.with_name("curve.png"), self.path.with_name("eval.jsonl"))

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))


STATE = "state.pt"
RESUME_CHECK = ("model", "rollout")


def prepare_run_dir(out: Path, config, algo: str) -> dict[str, Any] | None:
    """Create ``out``, write ``config.json`` (before any work) and return the saved training state to resume from
    (None for a fresh run).

    Raises:
        ValueError: ``out`` holds a run of another algorithm or with different model / rollout settings.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = to_jsonable(config)
    state = None
    if (out / STATE).is_file():
        state = torch.load(out / STATE, map_location="cpu", weights_only=False)
        old = state["config"]
        if state["algo"] != algo:
            raise ValueError(f"{out} holds a {state['algo']} run; use another --out")
        clash = [k for k in RESUME_CHECK if _resume_view(old, k) != _resume_view(cfg, k)]
        if clash:
            raise ValueError(f"{out} was started with different {', '.join(clash)} settings; use another --out "
                             f"(was {[old.get(k) for k in clash]}, now {[cfg.get(k) for k in clash]})")  # fmt: skip
    (out / "config.json").write_text(
        json.dumps({"algo": algo, **cfg, "versions": _versions()}, indent=1) + "\n"
    )
    return state


def _resume_view(cfg: dict[str, Any], key: str) -> Any:
    """The part of a config a resumed run must share (the number of rollout workers may change)."""
    v = cfg.get(key)
    return {k: x for k, x in v.items() if k != "workers"} if isinstance(v, dict) else v


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for p in ("torch", "transformers", "peft", "mani_skill", "vla-gen-bench"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "absent"
    return out


def save_state(out: Path, algo: str, config, ac: ActorCritic, optimizer, iteration: int, env_steps: int,
               extra: dict | None = None) -> Path:  # fmt: skip
    """Atomically write ``state.pt``: trainable tensors, optimizer, counters, config (resume point)."""
    import torch

    out = Path(out)
    state = {"algo": algo, "config": to_jsonable(config), "iteration": int(iteration), "env_steps": int(env_steps),
             "trainable": ac.trainable_state(), "optimizer": optimizer.state_dict() if optimizer else None,
             "torch_rng": torch.get_rng_state(), "extra": extra or {}}  # fmt: skip
    tmp = out / (STATE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / STATE)
    return out / STATE


def restore_state(state: dict[str, Any], ac: ActorCritic, optimizer) -> tuple[int, int]:
    """Load a ``state.pt`` dict into ``ac`` and ``optimizer``; returns (iterations done, env steps done)."""
    import torch

    ac.load_trainable_state(state["trainable"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"]), int(state["env_steps"])


def export_policy(ac: ActorCritic, out_dir: Path) -> Path:
    """Write the current policy as an HF OpenVLA folder (LoRA merged; evaluable as ``openvla:<dir>``), with the
    value head next to it (``value_head.safetensors``)."""
    from safetensors.torch import save_file

    from vla_gen_bench.models.checkpoint import save_checkpoint

    out = save_checkpoint(ac.vla, out_dir)
    if ac.value_head is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ac.value_head.state_dict().items()},
                  str(Path(out) / "value_head.safetensors"))  # fmt: skip
    return Path(out)


def make_optimizer(ac: ActorCritic, lr: float, value_lr: float | None = None, weight_decay: float = 0.0):
    """AdamW (0.9, 0.999) with one group for the LoRA tensors and one for the value head (own learning rate);
    ``weight_decay`` on both (RL4VLA's two AdamW optimisers use torch's default, 0.01)."""
    import torch

    groups = [{"params": ac.actor_parameters(), "lr": lr, "name": "lora"}]
    if ac.value_head is not None:
        groups.append(
            {
                "params": ac.value_parameters(),
                "lr": value_lr if value_lr is not None else lr,
                "name": "value_head",
            }
        )
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=weight_decay)


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_policy(ckpt: Path, out: Path, cfg: EvalConfig, camera: str, unnorm_key: str | None,
                    sim_freq: int = 100) -> dict[str, dict[str, Any]]:  # fmt: skip
    """``vgb evaluate`` of an exported checkpoint on ``cfg.suite``; per variant: n, successes, rate, Wilson CI."""
    from rich.console import Console

    from vla_gen_bench.eval.evaluate import EPISODES, Evaluate, evaluate
    from vla_gen_bench.eval.stats import wilson_interval

    ev = Evaluate(policy=f"openvla:{Path(ckpt).resolve()}", out=Path(out), suite=cfg.suite, episodes=cfg.episodes,
                  seeds=tuple(cfg.seeds), workers=cfg.workers, camera=camera, sim_freq=sim_freq, unnorm_key=unnorm_key,
                  policy_arg=(f"temperature={cfg.temperature}",), videos=0, report=False)  # fmt: skip
    evaluate(ev, console=Console(stderr=True, quiet=True))
    return summarize_episodes(Path(out) / EPISODES, wilson_interval)


def summarize_episodes(jsonl: Path, wilson=None) -> dict[str, dict[str, Any]]:
    if wilson is None:
        from vla_gen_bench.eval.stats import wilson_interval as wilson
    from vla_gen_bench.eval.records import read

    per: dict[str, list[bool]] = {}
    grasp: dict[str, list[bool]] = {}
    for r in read(jsonl).records:  # the evaluator's reader: one record per episode, a torn last line skipped
        per.setdefault(r.variant, []).append(r.success)
        grasp.setdefault(r.variant, []).append(r.grasped)
    out = {}
    for v, xs in per.items():
        s, n = sum(xs), len(xs)
        lo, hi = wilson(s, n)
        out[v] = {"n": n, "successes": s, "rate": s / n, "ci_low": lo, "ci_high": hi,
                  "grasp_rate": sum(grasp[v]) / n}  # fmt: skip
    return out


def rollout_stats(trajs: list[Trajectory]) -> dict[str, float]:
    n = max(len(trajs), 1)
    return {
        "episodes": len(trajs),
        "success": sum(t.success for t in trajs) / n,
        "grasp": sum(t.grasped for t in trajs) / n,
        "return_mean": float(np.mean([t.return_ for t in trajs])) if trajs else 0.0,
    }


@dataclass
class Timer:
    """Wall-clock split of one iteration."""

    marks: dict[str, float] = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.marks[name] = timer.marks.get(name, 0.0) + time.perf_counter() - self.t

        return _T()
