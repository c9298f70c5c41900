"""Rollouts for the RL baselines: which training episodes to play (:func:`training_items`, never a test pool or an
evaluation seed), the policy that records its own forward passes (:class:`RolloutPolicy`), the episodes as the
learner needs them (:class:`Trajectory`) and the processes that collect them (:class:`Rollouts`).

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

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_gen_bench.policies.openvla import OpenVLAPolicy
from vla_gen_bench.training.actor_critic import ActorCritic, build_actor_critic
from vla_gen_bench.training.rl_config import MIN_TRAIN_SEED, ModelConfig, RolloutConfig


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


class RolloutPolicy(OpenVLAPolicy):
    """The ``openvla`` policy adapter (same action mapping as evaluation) that also records, for every forward
    pass, the images, instructions, action tokens, their log-probs and the critic's values."""

    def __init__(self, ac: ActorCritic, temperature: float, seed: int = 0) -> None:
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
                rewards=rew[i], last_value=float(last["v"][i]), success=bool(res.success),
                grasped=bool(res.grasped), seed=it.seed, episode=it.episode, group=it.group,
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


class _RolloutWorker:
    """Rollout worker (a process of the shared :class:`~vla_gen_bench.eval.pool.WorkerPool`): one env + one policy
    copy; each task is (trainable state, items, sampling seed, keys) and returns the items' trajectories."""

    def __init__(self, spec: _WorkerSpec, index: int) -> None:
        self.spec, self.index = spec, index
        self.env = None

    def setup(self) -> None:
        import torch

        torch.set_num_threads(1)
        from vla_gen_bench.envs import make_env

        spec = self.spec
        self.env = make_env(
            camera=spec.rollout.camera, sim_freq=spec.rollout.sim_freq, num_envs=spec.rollout.num_envs
        )
        self.ac = build_actor_critic(spec.model, with_value=spec.with_value, notes=False)
        self.policy = RolloutPolicy(self.ac, temperature=spec.rollout.temperature)

    def run(self, task) -> list[Trajectory]:
        state, items, seed, keys = task
        self.ac.load_trainable_state(state)
        self.policy.generator.manual_seed(seed)
        return collect(self.env, self.policy, items, self.spec.rollout.horizon, keys)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


class _SimWorker:
    """Simulator-only rollout worker (``policy_server``): steps its env with the learner's served policy and returns,
    per item, what only the simulator knows: rewards, success, grasp and the final observation."""

    def __init__(self, rollout: RolloutConfig, url: str, index: int) -> None:
        self.rollout, self.url, self.index = rollout, url, index
        self.env = None

    def setup(self) -> None:
        from vla_gen_bench.envs import make_env
        from vla_gen_bench.policies.remote import RemotePolicy

        self.env = make_env(camera=self.rollout.camera, sim_freq=self.rollout.sim_freq)
        self.policy = RemotePolicy(self.url, timeout_s=self.rollout.policy_timeout)

    def run(self, task) -> list[dict]:
        from vla_gen_bench.eval.runner import run_batch

        items, keys = task
        horizon = self.rollout.horizon
        out = []
        for it, key in zip(items, keys, strict=True):
            rewards: list[float] = []
            last: dict[str, np.ndarray] = {}

            def on_step(t, obs, action, next_obs, reward, info, _r=rewards, _last=last):
                _r.append(float(reward[0]))
                if t == horizon - 1:
                    _last["image"] = next_obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy()

            res = run_batch(self.env, [self.policy], [it.seed], [it.spec], max_steps=horizon, on_step=on_step,
                            episode_keys=[key])[0]  # fmt: skip
            out.append({"rewards": np.asarray(rewards, np.float32), "success": res.success,
                        "grasped": res.grasped, "last_image": last["image"]})  # fmt: skip
        return out

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


class Rollouts:
    """Collects trajectories for the learner: in-process (``workers == 0``, or always with CUDA GPU envs), in
    ``workers`` spawned processes (CPU) that receive the learner's trainable tensors before every collection, or
    (``policy_server``) in simulator-only processes that the learner's own policy answers in dynamic batches.
    Every item samples from its own key (:func:`rollout_keys`): the three ways give the same trajectories."""

    def __init__(self, model: ModelConfig, rollout: RolloutConfig, ac: ActorCritic, env=None) -> None:
        self.cfg = rollout
        self.ac = ac
        self.pool = None  # the worker processes (eval.pool.WorkerPool), when rollouts run in them
        self.env = env
        self._own_env = False
        self.server = None
        if rollout.num_envs > 1:
            import torch

            if not torch.cuda.is_available():
                raise ValueError("rollout.num_envs > 1 needs ManiSkill's GPU simulator (CUDA); on CPU use "
                                 "rollout.workers = N processes instead")  # fmt: skip
        if rollout.workers > 0 and env is None and rollout.num_envs == 1:
            from functools import partial

            from vla_gen_bench.eval.pool import PoolError, WorkerPool

            if rollout.policy_server:
                from vla_gen_bench.policies.serve import PolicyServer

                self.policy = RolloutPolicy(ac, temperature=rollout.temperature)
                self.server = PolicyServer(self.policy, host="127.0.0.1", port=0, name="rollout-policy",
                                           max_batch=max(rollout.workers, 1))  # fmt: skip
                url = f"ws://127.0.0.1:{self.server.start()}"
                factory = partial(_SimWorker, rollout, url)
            else:
                factory = partial(_RolloutWorker, _WorkerSpec(model, rollout, ac.value_head is not None))
            try:
                self.pool = WorkerPool(factory, rollout.workers, name="rollout worker")
            except BaseException as e:
                self.close()
                if isinstance(e, PoolError):
                    raise e.with_trace(f"rollout worker {e.index} failed: ") from None
                raise
        else:
            if self.env is None:
                from vla_gen_bench.envs import make_env

                self.env = make_env(
                    camera=rollout.camera, sim_freq=rollout.sim_freq, num_envs=rollout.num_envs
                )
                self._own_env = True
            self.policy = RolloutPolicy(ac, temperature=rollout.temperature)

    def _map(self, shares: list) -> list:
        """One share per worker process; the results by worker (a worker's exception carries its traceback)."""
        from vla_gen_bench.eval.pool import PoolError

        try:
            return self.pool.map_shards(shares)
        except PoolError as e:
            raise e.with_trace(f"rollout worker {e.index} failed: ") from None

    def collect(self, items: list[EpisodeItem], iteration: int, seed: int) -> list[Trajectory]:
        """Trajectories for ``items`` (same order), sampled with keys derived from (seed, iteration, item index)."""
        keys = rollout_keys(seed, iteration, len(items))
        if self.pool is None:
            self.ac.vla.model.eval()
            self.policy.generator.manual_seed(sample_seed(seed, iteration))
            return collect(self.env, self.policy, items, self.cfg.horizon, keys)
        if self.server is not None:
            return self._collect_served(items, keys)
        state = self.ac.trainable_state()
        n = self.pool.n
        by_worker = self._map(
            [(state, items[i::n], sample_seed(seed, iteration, i), keys[i::n]) for i in range(n)]
        )
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
        n = self.pool.n
        sim: list[dict | None] = [None] * len(items)
        for i, rows in enumerate(self._map([(items[i::n], keys[i::n]) for i in range(n)])):
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
        if self.pool is not None:
            self.pool.close(wait_s=30)
            self.pool = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._own_env and self.env is not None:
            self.env.close()


def rollout_stats(trajs: list[Trajectory]) -> dict[str, float]:
    n = max(len(trajs), 1)
    return {
        "episodes": len(trajs),
        "success": sum(t.success for t in trajs) / n,
        "grasp": sum(t.grasped for t in trajs) / n,
        "return_mean": float(np.mean([t.return_ for t in trajs])) if trajs else 0.0,
    }
