"""Demonstrations from the scripted oracle, on training pools only.

Collection reuses the evaluation runner's loop (:func:`vla_gen_bench.eval.runner.run_batch`) and records each
transition in its ``on_step`` hook: the image the policy would see *before* the step, the proprio state, the action
executed, the reward and the success flag after the step. One worker process per simulator (the CPU simulator runs
one env per process); every episode is written as soon as it is done, so an interrupted run resumes where it stopped.

On-disk format (``<out>/``)::

    dataset.json                 the card: config, counts, planner success rate, filter, action statistics
    dataset_statistics.json      {key: {"action": {mean, std, min, max, q01, q99, mask}, "proprio": ...,
                                  "num_transitions", "num_trajectories"}} -- OpenVLA's format; SFT copies it
                                  next to its checkpoints so ``--policy openvla:<dir>`` de-normalises with it
    README.md                    the card, for people
    episodes/<name>.npz          one episode (all steps, unfiltered, compressed):
                                    actions (T, 7) float32   [dx, dy, dz (m), drx, dry, drz (rad), gripper ±1]
                                                             the demonstrator's (clean) action = the label
                                    executed (T, 7) float32  what ran (= actions unless DART noise is on)
                                    states (T, 16) float32   proprio before each step (qpos 9, TCP pose 7)
                                    rewards (T,) float32, success (T,) bool (after each step)
                                    keep (T,) bool           idle-action filter + success truncation
                                    instruction, variant, seed, episode, spec (JSON str)
    episodes/<name>.images.npy   (T, H, W, 3) uint8, the policy-camera image before each step (uncompressed, so
                                 the Dataset memory-maps it and reads single frames lazily)
    failed/<name>.json           episodes the planner did not finish (kept out of the dataset; resume skips them)

``<name>`` is ``s<seed>_e<episode:06d>``. The idle-action filter follows RL4VLA (shared/spec/rl4vla.md §6): keep step
``i`` if ``|Δxyz| > 0.01 m`` or ``|Δrot| > 0.06 rad`` or the gripper command differs from step ``i - 1``; then cut the
episode once success has held for 6 consecutive steps (read at the unfiltered index here).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla_gen_bench.cameras import CameraName
from vla_gen_bench.options import PolicyOptions

STATS_NAME = "dataset_statistics.json"
CARD_NAME = "dataset.json"
DEFAULT_KEY = "vgb_demos"


# ---------------------------------------------------------------------------------------------- idle filter
@dataclass(frozen=True)
class IdleFilter:
    """RL4VLA's idle-action filter (the thresholds are the paper's)."""

    min_translation: float = 0.01
    """Keep a step whose translation norm exceeds this (m)."""
    min_rotation: float = 0.06
    """... or whose rotation norm exceeds this (rad)."""
    keep_gripper_changes: bool = True
    """... or whose gripper command differs from the previous step's (the first step counts as a change)."""
    success_hold: int = 6
    """Drop every step after success has held this many consecutive steps (0 = no truncation)."""
    enabled: bool = True
    """False keeps every step (truncation still applies when ``success_hold`` > 0)."""
    keep_idle_after_success: bool = False
    """Also keep the idle steps while success holds (before the truncation): shows the policy to stay still once
    the object is placed. Not in the paper (False there)."""

    def __call__(self, actions: np.ndarray, success: np.ndarray | None = None) -> np.ndarray:
        """``(T, 7)`` actions (and ``(T,)`` success after each step) -> ``(T,)`` bool mask of steps to keep."""
        a = np.asarray(actions, dtype=np.float64)
        t = len(a)
        if not self.enabled:
            keep = np.ones(t, dtype=bool)
        else:
            moving = (np.linalg.norm(a[:, :3], axis=1) > self.min_translation) | (
                np.linalg.norm(a[:, 3:6], axis=1) > self.min_rotation
            )
            grip = a[:, 6]
            toggled = np.ones(t, dtype=bool)
            toggled[1:] = grip[1:] != grip[:-1]
            keep = moving | (toggled if self.keep_gripper_changes else False)
        if success is not None and self.keep_idle_after_success:
            keep = keep | np.asarray(success, dtype=bool)
        if success is not None and self.success_hold > 0:
            s = np.asarray(success, dtype=bool)
            run = 0
            for i in range(t):
                run = run + 1 if s[i] else 0
                if run >= self.success_hold:
                    keep[i + 1 :] = False
                    break
        return keep


# ---------------------------------------------------------------------------------------------- statistics
def action_statistics(actions: np.ndarray, gripper_dim: int = 6) -> dict[str, Any]:
    """OpenVLA-style statistics of ``(N, 7)`` actions; the gripper is not normalised (mask False)."""
    a = np.asarray(actions, dtype=np.float64)
    mask = [True] * a.shape[1]
    mask[gripper_dim] = False
    return {
        "mean": a.mean(0).tolist(),
        "std": a.std(0).tolist(),
        "max": a.max(0).tolist(),
        "min": a.min(0).tolist(),
        "q01": np.quantile(a, 0.01, axis=0).tolist(),
        "q99": np.quantile(a, 0.99, axis=0).tolist(),
        "mask": mask,
    }


def _plain_stats(x: np.ndarray) -> dict[str, Any]:
    x = np.asarray(x, dtype=np.float64)
    return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "max": x.max(0).tolist(),
            "min": x.min(0).tolist(), "q01": np.quantile(x, 0.01, axis=0).tolist(),
            "q99": np.quantile(x, 0.99, axis=0).tolist()}  # fmt: skip


# ---------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DemoConfig:
    """What to collect (the ``vgb collect-demos`` options minus the CLI-only ones)."""

    episodes: int = 300
    """Episodes to attempt (successful ones are kept); indices 0..episodes-1 of the training manifest."""
    out: Path = Path("data/demos")
    """Dataset folder (created; re-running the same command resumes it)."""
    workers: int = 2
    """Simulator processes."""
    variant: str = "ind"
    """Variant whose episode manifest gives the initial configurations; it must use training pools only."""
    seed: int = 1000
    """Manifest seed; keep it disjoint from the evaluation seeds (0-2)."""
    camera: CameraName = "fast"
    """Policy camera (default 224², fast 128², paper 640x480): the images the policy sees at evaluation."""
    camera_size: tuple[int, int] | None = None
    """Override the camera's (width, height)."""
    sim_freq: int = 100
    """Physics rate (Hz)."""
    filter: IdleFilter = IdleFilter()
    """Idle-action filter (stored as the ``keep`` mask; the raw steps stay on disk)."""
    key: str = DEFAULT_KEY
    """Dataset key in dataset_statistics.json (the checkpoint's ``unnorm_key``)."""
    oracle: Literal["scripted", "scripted-smooth"] = "scripted"
    """Demonstrator: ``scripted`` (the benchmark's waypoint oracle) or ``scripted-smooth`` (a proportional,
    funnel-shaped version that is easier to imitate; see ``SmoothScriptedPolicy``)."""
    noise_xyz: float = 0.0
    """DART noise: std (m) of Gaussian noise added to the *executed* translation while the demonstrator moves
    freely (reaching, carrying); the stored action stays the demonstrator's clean one, so the data show how to
    recover from small errors. 0 = off."""
    noise_yaw: float = 0.0
    """DART noise on the executed yaw (rad std)."""
    noise_gripper: float = 0.0
    """Probability per reaching step of closing the gripper on nothing for ``GRIPPER_BURST`` steps (the label stays
    "open"): the data then show how to recover from a premature close, the mistake that ends a small policy's
    episodes. 0 = off."""
    learner: Path | None = None
    """DAgger (Ross et al. 2011): an OpenVLA checkpoint folder whose actions are *executed* (its chunks run
    open-loop, as at evaluation) while the demonstrator, stepped alongside on the same states, only writes the
    labels. The data then cover the states the learner itself reaches (hovering beside the object, closing too
    early) with the demonstrator's correction. Every episode is kept, succeeded or not (the labels are the
    demonstrator's either way); DART noise does not apply. None = the demonstrator acts (plain demonstrations)."""
    learner_policy: PolicyOptions = field(default_factory=PolicyOptions)
    """Options of the learner (``temperature``: not given = greedy; the DAgger recipe samples at 0.6, its random
    numbers keyed by (seed, episode, step)); it runs on the CPU without a fingerprint unless given here."""


class DemoConfigError(ValueError):
    """Options that cannot produce a training dataset."""


def episode_name(seed: int, k: int) -> str:
    return f"s{int(seed)}_e{int(k):06d}"


def training_specs(variant: str, seed: int, n: int) -> list:
    """Episode specs ``0..n-1`` of ``variant``/``seed``; every one is checked against the test pools.

    Raises:
        TrainingPoolError: a spec uses something from a test pool (unseen assets, overlays, paraphrases, ...).
        DemoConfigError: the seed is one of the evaluation seeds.
    """
    from vla_gen_bench.variants import check_training_spec, episode, get_variant

    if int(seed) in EVAL_SEEDS:
        raise DemoConfigError(
            f"seed {seed} is an evaluation seed ({', '.join(map(str, EVAL_SEEDS))}); training demos must use "
            "other seeds (e.g. --seed 1000)"
        )
    v = get_variant(variant)
    specs = []
    for k in range(int(n)):
        spec = episode(v, seed, k)
        check_training_spec(spec, family=v.family)
        specs.append(spec)
    return specs


def variant_family(variant: str) -> str:
    """The task family of a variant (:mod:`vla_gen_bench.families`): which env the collector builds and which
    family's oracle labels the steps."""
    from vla_gen_bench.variants import get_variant

    return get_variant(variant).family


EVAL_SEEDS = (0, 1, 2)


# ---------------------------------------------------------------------------------------------- one worker
class DemoWorker:
    """One simulator process: collects the episodes it is given and writes each as soon as it is done."""

    def __init__(self, cfg: DemoConfig, index: int = 0):
        self.cfg = cfg
        self.index = index
        self.env = None
        self.learner = None

    def setup(self) -> None:
        import torch

        torch.set_num_threads(1)
        from vla_gen_bench.envs import make_env

        self.env = make_env(camera=self.cfg.camera, camera_size=self.cfg.camera_size, sim_freq=self.cfg.sim_freq,
                            family=variant_family(self.cfg.variant))  # fmt: skip
        self.learner = None
        if self.cfg.learner is not None:
            from vla_gen_bench.policies.registry import PolicySpec, resolve_policy

            options = self.cfg.learner_policy.with_defaults(device="cpu", fingerprint=False)
            self.learner = resolve_policy(PolicySpec("openvla", path=str(self.cfg.learner)), options)

    def collect(self, k: int) -> dict[str, Any]:
        """Run episode ``k`` with the oracle and write it; returns a short record."""
        from vla_gen_bench.eval.runner import episode_key, run_batch
        from vla_gen_bench.policies.scripted import ScriptedPolicy, SmoothScriptedPolicy
        from vla_gen_bench.variants import episode

        cfg = self.cfg
        spec = episode(cfg.variant, cfg.seed, k)
        from vla_gen_bench.variants import check_training_spec

        family = variant_family(cfg.variant)
        check_training_spec(spec, family=family)
        env = self.env
        rec: dict[str, list] = {
            "images": [],
            "states": [],
            "actions": [],
            "executed": [],
            "rewards": [],
            "success": [],
        }

        def on_step(t, obs, action, next_obs, reward, info):
            rec["images"].append(obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy())
            rec["states"].append(state_before[0])
            rec["actions"].append(
                policy.label.copy()
            )  # the clean demonstrator action (= executed without noise)
            rec["executed"].append(np.asarray(action[0], dtype=np.float32))
            rec["rewards"].append(float(reward[0]))
            rec["success"].append(bool(np.asarray(info["success"]).reshape(-1)[0]))
            state_before[0] = env.unwrapped.proprio()[0]

        # proprio before each step: read after reset (in the policy's first act) and after every step
        state_before: list[np.ndarray] = [np.zeros(16, np.float32)]
        # labelling a learner's states: the demonstrator reads its phase from the state, not from its own commands
        oracle = (SmoothScriptedPolicy(from_state=cfg.learner is not None) if cfg.oracle == "scripted-smooth"
                  else ScriptedPolicy())  # fmt: skip
        noise = np.random.default_rng([int(cfg.seed), int(k), 7])
        policy = _StateTap(oracle, env, state_before, noise, cfg.noise_xyz, cfg.noise_yaw, cfg.noise_gripper,
                           learner=self.learner, learner_key=episode_key(f"dagger/{cfg.variant}", cfg.seed, k))  # fmt: skip
        t0 = time.perf_counter()
        seed = int(cfg.seed) * 1_000_003 + int(k)
        res = run_batch(env, [policy], [seed], [spec], on_step=on_step)[0]
        wall = time.perf_counter() - t0
        name = episode_name(cfg.seed, k)
        row = {"name": name, "episode": int(k), "success": bool(res.success), "failure": res.failure,
               "steps": len(rec["actions"]), "wall_s": round(wall, 3)}  # fmt: skip
        root = Path(cfg.out)
        if not res.success and cfg.learner is None:
            _atomic_write_text(root / "failed" / f"{name}.json", json.dumps(row) + "\n")
            return {**row, "kept": 0}
        actions = np.stack(rec["actions"]).astype(np.float32)
        success = np.asarray(rec["success"], dtype=bool)
        keep = cfg.filter(actions, success)
        save_episode(
            root / "episodes", name, images=np.stack(rec["images"]), actions=actions,
            states=np.stack(rec["states"]).astype(np.float32), executed=np.stack(rec["executed"]), rewards=np.asarray(rec["rewards"], np.float32),
            success=success, keep=keep, instruction=res.instruction, variant=cfg.variant, seed=cfg.seed,
            episode=k, spec=json.dumps(spec.to_dict(), default=str),
        )  # fmt: skip
        return {**row, "kept": int(keep.sum())}

    def run(self, k: int) -> dict[str, Any]:
        """The worker pool's name for :meth:`collect`."""
        return self.collect(k)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


GRIPPER_BURST = 2  # steps a gripper-noise event keeps the gripper closed


class _StateTap:
    """Wraps the oracle: records the proprio state before the first step (``run_batch`` resets the env) and the
    clean action (``label``), and executes it with DART noise when asked, or executes the ``learner``'s action
    instead (DAgger: the oracle still acts on every state, so its phase follows the episode, but only labels)."""

    def __init__(self, policy, env, state_before: list, rng=None, noise_xyz: float = 0.0, noise_yaw: float = 0.0,
                 noise_gripper: float = 0.0, learner=None, learner_key: int = 0):  # fmt: skip
        self.policy, self.env, self.state_before = policy, env, state_before
        self.learner, self.learner_key, self._queue, self._t = learner, int(learner_key), [], 0
        self.spec, self.metadata = policy.spec, policy.metadata
        self.rng, self.noise_xyz, self.noise_yaw = rng, float(noise_xyz), float(noise_yaw)
        self.noise_gripper, self._burst = float(noise_gripper), 0
        self.label = np.zeros(7, np.float32)
        self._first = True

    def reset(self, instruction: str) -> None:
        self._first = True
        self.policy.reset(instruction)
        self._queue, self._t = [], 0
        if self.learner is not None:
            self.learner.reset(instruction)

    def act(self, obs):
        if self._first:
            self.state_before[0] = np.asarray(obs["state"], dtype=np.float32)
            self._first = False
            self._burst = 0
        self.label = np.asarray(self.policy.act(obs), dtype=np.float32)
        if self.learner is not None:
            from vla_gen_bench.eval.runner import step_key

            if not self._queue:  # a new chunk from this image; its rows then run open-loop, as at evaluation
                learner_obs = {"image": obs["image"], "instruction": obs["instruction"],
                               "sample_key": step_key(self.learner_key, self._t)}  # fmt: skip
                a = np.asarray(self.learner.act(learner_obs), dtype=np.float32)
                self._queue = list(a) if a.ndim == 2 else [a]
            self._t += 1
            return self._queue.pop(0)
        out = self.label.copy()
        oracle = (
            self._oracle()
        )  # each oracle declares its free-motion phases and where a premature close may start
        phase = getattr(oracle, "phase", None)
        if (self.noise_xyz or self.noise_yaw) and phase in getattr(oracle, "FREE_PHASES", ()):
            # noise proportional to the commanded motion (full strength at a 4 cm / 0.5 rad step), so the
            # demonstrator still converges on the grasp and the drop point, where its steps are small
            out[:3] += self.rng.normal(
                0.0, self.noise_xyz * min(1.0, float(np.linalg.norm(out[:3])) / 0.04), 3
            )
            out[5] += self.rng.normal(0.0, self.noise_yaw * min(1.0, abs(float(out[5])) / 0.5))
        if self.noise_gripper and phase is not None and phase == getattr(oracle, "GRIPPER_PHASE", None):
            if self._burst == 0 and self.rng.random() < self.noise_gripper:
                self._burst = GRIPPER_BURST
            if self._burst > 0:
                out[6], self._burst = -1.0, self._burst - 1
        else:
            self._burst = 0
        return out

    def _oracle(self):
        """The acting oracle: the family's own when :class:`ScriptedPolicy` handed the episode to it."""
        return next(iter(getattr(self.policy, "_family_policies", {}).values()), self.policy)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_episode(folder: Path, name: str, images: np.ndarray, **arrays: Any) -> None:
    """Write ``<name>.images.npy`` then ``<name>.npz`` (the npz is the commit marker: written last, atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    img_tmp = folder / f"{name}.images.tmp{os.getpid()}.npy"
    np.save(img_tmp, np.ascontiguousarray(images, dtype=np.uint8))
    os.replace(img_tmp, folder / f"{name}.images.npy")
    tmp = folder / f"{name}.tmp{os.getpid()}.npz"
    np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, folder / f"{name}.npz")


def done_names(root: Path) -> set[str]:
    """Episodes already finished (kept or failed) in a dataset folder."""
    root = Path(root)
    out = {p.name.removesuffix(".npz") for p in (root / "episodes").glob("*.npz") if ".tmp" not in p.name}
    out |= {p.stem for p in (root / "failed").glob("*.json")}
    return out


# ---------------------------------------------------------------------------------------------- collection
def collect(cfg: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Collect (or resume) a dataset and write its card and statistics. Returns the card."""
    specs = training_specs(cfg.variant, cfg.seed, cfg.episodes)  # refuses test pools before any work
    del specs
    family = variant_family(cfg.variant)
    if family != "put_on" and cfg.oracle == "scripted-smooth":
        raise DemoConfigError(
            f"--oracle scripted-smooth is the put_on family's demonstrator; {cfg.variant!r} is a {family!r} "
            "variant: use --oracle scripted (that family's own oracle)"
        )
    if cfg.learner is not None:
        _check_learner(cfg)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    card_cfg = _cfg_dict(cfg)
    old = root / CARD_NAME
    if old.is_file():
        prev = json.loads(old.read_text()).get("config", {})
        for f in (
            "variant",
            "seed",
            "camera",
            "camera_size",
            "sim_freq",
            "oracle",
            "noise_xyz",
            "noise_yaw",
            "noise_gripper",
            "learner",
            "learner_temperature",
            "learner_policy",
        ):
            if (
                f == "learner_policy" and f not in prev
            ):  # a card written before the learner's options were typed
                continue
            if prev.get(f) != card_cfg.get(f):
                raise DemoConfigError(
                    f"{root} holds a dataset with {f}={prev.get(f)!r}, this command asks for {card_cfg.get(f)!r}; "
                    "use another --out or the same options to resume"
                )
        if prev.get("filter") not in (None, card_cfg["filter"]):
            refilter(root, cfg.filter)  # cheap: the raw steps are on disk, only the keep masks change
    _atomic_write_text(
        root / CARD_NAME, json.dumps({"config": card_cfg, "status": "collecting"}, indent=2) + "\n"
    )
    done = done_names(root)
    todo = [k for k in range(cfg.episodes) if episode_name(cfg.seed, k) not in done]
    t0 = time.perf_counter()
    rows = list(_run(cfg, todo, progress))
    wall = time.perf_counter() - t0
    card = write_card(root, cfg, session={"attempted_now": len(todo), "wall_s": round(wall, 1),
                                          "episodes_per_min": round(len(rows) / wall * 60, 2) if rows else None})  # fmt: skip
    return card


def _check_learner(cfg: DemoConfig) -> None:
    """A DAgger learner must be a loadable OpenVLA folder, and noise (which perturbs the demonstrator's execution)
    has nothing to act on."""
    noisy = [f"--{n.replace('_', '-')} {getattr(cfg, n)}" for n in ("noise_xyz", "noise_yaw", "noise_gripper")
             if getattr(cfg, n)]  # fmt: skip
    if noisy:
        raise DemoConfigError(
            f"--learner executes the learner's actions, so DART noise ({', '.join(noisy)}) would never run; "
            "set the noise options to 0 for a DAgger collection"
        )
    if not (Path(cfg.learner) / "config.json").is_file():
        raise DemoConfigError(
            f"--learner {cfg.learner}: not an OpenVLA checkpoint folder (no config.json); pass the folder that "
            "'vgb train-baseline sft' wrote as <out>/final"
        )
    if cfg.oracle != "scripted-smooth":
        raise DemoConfigError(
            f"--learner needs --oracle scripted-smooth (got {cfg.oracle!r}): the waypoint oracle plans from its own "
            "history and cannot label states another policy reached"
        )


def refilter(root: Path, filt: IdleFilter) -> int:
    """Recompute the stored keep mask of every episode with ``filt``; returns the number of episodes rewritten."""
    n = 0
    for p in sorted((Path(root) / "episodes").glob("*.npz")):
        if ".tmp" in p.name:
            continue
        with np.load(p) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["keep"] = filt(arrays["actions"], arrays["success"])
        tmp = p.with_name(p.name.removesuffix(".npz") + f".tmp{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, p)
        n += 1
    return n


def _run(cfg: DemoConfig, todo: list[int], progress: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not todo:
        return
    console = Console(stderr=True)
    cols = (TextColumn("demos"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[ok]} ok"),
            TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*cols, console=console, disable=not progress) as bar:
        task = bar.add_task("demos", total=len(todo), ok=0)
        ok = 0
        if cfg.workers <= 1:
            w = DemoWorker(cfg)
            w.setup()
            try:
                for k in todo:
                    row = w.collect(k)
                    ok += row["success"]
                    bar.update(task, advance=1, ok=ok)
                    yield row
            finally:
                w.close()
            return
        from functools import partial

        from vla_gen_bench.eval.pool import PoolError, WorkerPool

        pool = None
        finished = False
        try:
            pool = WorkerPool(partial(DemoWorker, cfg), min(cfg.workers, len(todo)), name="demo worker")
            for row in pool.imap_unordered(todo):
                ok += row["success"]
                bar.update(task, advance=1, ok=ok)
                yield row
            finished = True
        except PoolError as e:
            raise e.with_trace(f"demo worker {e.index} failed: ") from None
        finally:
            # after an error the others are stopped at once (15 workers joined one after another took 6 minutes);
            # after success they are asked to stop and get 30 s together to exit
            if pool is not None:
                pool.close(wait_s=30, now=not finished)


def _cfg_dict(cfg: DemoConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    if cfg.learner is None:  # plain demonstrations: the card (and its fingerprint) as before DAgger existed
        d.pop("learner"), d.pop("learner_policy")
    else:
        d["learner"] = str(cfg.learner)
        d["learner_policy"] = cfg.learner_policy.kwargs()
        # the temperature it sampled at, as cards have said since DAgger existed (0 = greedy)
        d["learner_temperature"] = cfg.learner_policy.temperature or 0.0
    d["camera_size"] = list(cfg.camera_size) if cfg.camera_size else None
    return d


def write_card(root: Path, cfg: DemoConfig, session: dict | None = None) -> dict[str, Any]:
    """(Re)compute the card and ``dataset_statistics.json`` from what is on disk."""
    root = Path(root)
    eps = sorted((root / "episodes").glob("*.npz"))
    eps = [p for p in eps if ".tmp" not in p.name]
    failed = sorted((root / "failed").glob("*.json"))
    actions, states, steps, kept, shape = [], [], 0, 0, None
    names, ended_ok = [], 0
    for p in eps:
        with np.load(p) as z:
            keep = z["keep"].astype(bool)
            ended_ok += bool(z["success"][-1]) if len(z["success"]) else 0
            actions.append(z["actions"][keep])
            states.append(z["states"][keep])
            steps += len(keep)
            kept += int(keep.sum())
        names.append(p.name.removesuffix(".npz"))
        if shape is None:
            shape = list(np.load(root / "episodes" / f"{names[-1]}.images.npy", mmap_mode="r").shape[1:])
    n_ok, n_fail = len(eps), len(failed)
    card: dict[str, Any] = {
        "config": _cfg_dict(cfg),
        "status": "complete" if n_ok + n_fail >= cfg.episodes else "partial",
        "format": "vgb-demos/1 (see vla_gen_bench/training/demos.py)",
        "episodes_kept": n_ok,
        "episodes_failed": n_fail,
        "planner_success_rate": round(n_ok / (n_ok + n_fail), 4) if n_ok + n_fail else None,
        # DAgger: every episode is kept, so the planner rate is 1; this is how often the *learner* succeeded
        **({"learner_success_rate": round(ended_ok / n_ok, 4) if n_ok else None} if cfg.learner else {}),
        "steps_total": steps,
        "steps_kept": kept,
        "kept_fraction": round(kept / steps, 4) if steps else None,
        "image_shape": shape,
        "episodes": names,
        "session": session or {},
    }
    if actions:
        stats = {
            cfg.key: {
                "action": action_statistics(np.concatenate(actions)),
                "proprio": _plain_stats(np.concatenate(states)),
                "num_transitions": kept,
                "num_trajectories": n_ok,
            }
        }
        _atomic_write_text(root / STATS_NAME, json.dumps(stats, indent=2) + "\n")
        card["action_statistics"] = stats[cfg.key]["action"]
    _atomic_write_text(root / CARD_NAME, json.dumps(card, indent=2) + "\n")
    _atomic_write_text(root / "README.md", _card_markdown(card))
    return card


def _card_markdown(card: dict[str, Any]) -> str:
    c = card["config"]
    lines = [
        f"# Demonstrations: scripted oracle on `{c['variant']}` (seed {c['seed']})",
        "",
        f"* status: {card['status']}; format: {card['format']}",
        f"* episodes kept {card['episodes_kept']}, failed {card['episodes_failed']}, planner success rate "
        f"{card['planner_success_rate']}",
        f"* steps {card['steps_total']}, kept by the idle filter {card['steps_kept']} ({card['kept_fraction']})",
        f"* images {card['image_shape']} from camera `{c['camera']}` (size override {c['camera_size']})",
        f"* filter: {c['filter']}",
    ]
    if c.get("learner"):
        lines.insert(3, f"* DAgger: the learner `{c['learner']}` (temperature {c['learner_temperature']}) acted, the "
                        f"demonstrator labelled; learner success rate {card.get('learner_success_rate')}")  # fmt: skip
    if "action_statistics" in card:
        s = card["action_statistics"]
        lines += ["", "| stat | dx | dy | dz | drx | dry | drz | gripper |", "|---|" + "---|" * 7]
        for k in ("q01", "q99", "mean", "std"):
            lines.append(f"| {k} | " + " | ".join(f"{v:.4f}" for v in s[k]) + " |")
    return "\n".join(lines) + "\n"
