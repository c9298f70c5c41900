"""``vgb evaluate``: score a policy on a suite of variants, resumably, in-process, in worker processes or on Ray.

Work items are (variant, seed, episode) triples from the variants' fixed manifests. Each finished episode becomes
one line of ``episodes.jsonl``, written by the parent process in one ``write`` + ``fsync``; re-running the same
command skips the items already there, so ``kill -9`` loses at most the episodes in flight.

One process writes a run directory at a time (its lock, :mod:`.lock`: a second ``vgb evaluate`` there is refused).
A write that fails mid-run (a full disk) stops the run in one line naming the path and the free space; the lines
already written stay whole and chained, and a video exists under its final name only once it is complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from vla_gen_bench.cameras import CameraName
from vla_gen_bench.eval import records
from vla_gen_bench.eval.pool import PoolError
from vla_gen_bench.eval.records import EPISODES, RUN_JSON, EpisodeRecord, RunInfo
from vla_gen_bench.options import PolicyOptionError, PolicyOptions, ProfileError, ProfileOptions

# a run directory may be resumed (and audited) only by a command that agrees on these run.json keys
RESUME_KEYS = ("policy", "suite", "suite_hash", "asset_pack_hash", "camera", "robot", "policy_args", "sim_freq",
               "profile", "profile_settings")  # fmt: skip
# run directories written before profiles existed (and vgb-profile runs, whose settings are None)
_RESUME_DEFAULTS = {"profile": "vgb", "profile_settings": None}


def resume_clash(previous: RunInfo, now: RunInfo, keys: tuple[str, ...] = RESUME_KEYS) -> dict[str, tuple]:
    """The ``keys`` whose values differ between a run directory's ``previous`` run.json and this command's, as
    {key: (was, now)}, compared as run.json holds them (tuples become lists)."""
    was, new = previous.to_dict(), json.loads(json.dumps(now.to_dict(), default=str))
    return {k: (was.get(k, _RESUME_DEFAULTS.get(k)), new.get(k)) for k in keys
            if was.get(k, _RESUME_DEFAULTS.get(k)) != new.get(k)}  # fmt: skip


@dataclass(frozen=True)
class Evaluate:
    """Score a policy on a suite of variants; resumable (re-run the same command), parallel, with a report."""

    policy: str
    """scripted | scripted-smooth | random | zero | openvla:<dir> | ws://host:port | package.module:ClassName"""
    out: Path
    """Run directory (episodes.jsonl, summary.csv, report.html, videos/ ...). Re-running resumes it."""
    policy_options: Annotated[PolicyOptions, tyro.conf.arg(name="policy")] = field(
        default_factory=PolicyOptions
    )
    """The policy's options (--policy.temperature 0.6, --policy.unnorm-key K, ...); run.json records those given."""
    suite: str = "smoke"
    """Suite (see 'vgb list') or comma-separated variant names."""
    episodes: int | None = None
    """Episodes per variant and seed; None = the profile's (vgb: 8; rl4vla, rl4vla-paper: 64, as the paper)."""
    seeds: tuple[int, ...] | None = None
    """Manifest seeds (episode k of seed s is the same configuration in every run); None = the profile's (vgb: 0;
    rl4vla, rl4vla-paper: 0 1 2, as the paper)."""
    workers: int = 1
    """Simulator processes (each pays a ~10 s render-pipeline compile)."""
    policy_server: Literal["auto", "on", "off"] = "auto"
    """on: with --workers >= 2, a batched policy (openvla:<dir>, a module:Class with act_batch) is loaded once, in
    one policy process (on the GPU when there is one), and answers all workers in dynamic batches; off: each worker
    loads its own copy; auto: on when there is a GPU or the checkpoint is over 2 GiB. Results are the same either
    way (greedy: identical actions; sampling: per-episode streams)."""
    max_batch: int = 32
    """Policy process: largest batch per forward pass."""
    max_wait_ms: float | None = None
    """Policy process: how long a batch waits for more requests unless every worker is already in it; None = a
    quarter of the recent forward-pass time (at most 250 ms)."""
    policy_timeout: float = 600.0
    """Seconds one policy call may take: a watchdog on in-process policies, the reply timeout for the policy process
    and ws:// servers. A call that takes longer stops the run, naming variant, seed, episode and step (resumable)."""
    backend: Literal["local", "ray"] = "local"
    address: str | None = None
    """Ray cluster address for --backend ray (default: start a local Ray)."""
    num_envs: int = 1
    """Parallel envs per worker (GPU simulation; the CPU simulator runs one env per process)."""
    camera: CameraName | None = None
    """Policy camera; None = the profile's (vgb: default)."""
    robot: str | None = None
    """None = the profile's (vgb: panda)."""
    sim_freq: int | None = None
    """Physics rate in Hz; None = the profile's (vgb: 100)."""
    asset_pack: str | None = None
    """Generated table pack (name under $VGB_CACHE/assets/packs or a path); default: the built-in procedural pack."""
    videos: int = 2
    """Policy-view videos kept per variant: this many successes and this many failures."""
    check: bool = True
    """Run the conventions check (probe steps) before scoring."""
    report: bool = True
    """Write summary.csv, report.md and report.html at the end."""
    profile: str = "vgb"
    """vgb | rl4vla | rl4vla-paper (the paper's robot, camera, physics rate and assets). --camera/--robot/--sim-freq,
    when given, override the profile's values. See docs/paper_profile.md."""
    profile_options: Annotated[ProfileOptions, tyro.conf.arg(name="profile")] = field(
        default_factory=ProfileOptions
    )
    """The profile's quirks and settings changed one by one (--profile.random-episodes True)."""
    render_device: str = "auto"
    """Vulkan device SAPIEN renders the cameras with: auto (the GPU when it has a Vulkan driver, else lavapipe on
    the CPU, saying so in one line) | cpu (lavapipe) | cuda | cuda:<i>. run.json's render_device records the one
    used."""
    rl4vla_assets: Path | None = None
    """RL4VLA asset folder (ManiSkill/mani_skill/assets/carrot of a gen-robot/RL4VLA clone, or the clone) for the
    rl4vla profiles; default $VGB_RL4VLA_ASSETS."""

    @cached_property
    def spec(self):
        """``policy`` parsed, once (a :class:`vla_gen_bench.policies.registry.PolicySpec`; PolicyError if bad)."""
        from vla_gen_bench.policies.registry import PolicySpec

        return PolicySpec.parse(self.policy)


@dataclass(frozen=True)
class Item:
    variant: str
    seed: int
    episode: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.variant, self.seed, self.episode)


class RunDirError(ValueError):
    """The run directory holds a different run or unreadable records."""


class EvalConfigError(ValueError):
    """Options that cannot work together (or on this machine); the message says what to change."""


# ---------------------------------------------------------------------------------------------- helpers
def policy_options(cfg: Evaluate) -> PolicyOptions:
    """The policy's options: those the command gave, the profile's protocol filling the rest (rl4vla: temperature
    0.6 for openvla: policies)."""
    prof = run_profile(cfg)
    return prof.policy_options(cfg.spec, cfg.policy_options) if prof is not None else cfg.policy_options


def policy_kwargs(cfg: Evaluate) -> dict[str, Any]:
    """The options given to the policy's adapter, as run.json's ``policy_args`` records them."""
    return policy_options(cfg).kwargs()


def run_profile(cfg: Evaluate):
    """The run's profile (None for ``vgb`` as it is, which changes nothing and needs no simulator import)."""
    if cfg.profile == "vgb" and not cfg.profile_options.given():
        return None
    from vla_gen_bench.eval.profiles import get_profile

    try:
        return get_profile(cfg.profile, cfg.profile_options)
    except ProfileError as e:
        raise EvalConfigError(str(e)) from None


def profile_name(cfg: Evaluate) -> str:
    """The profile as run.json records it: its name, with the settings changed (``rl4vla:random_episodes=true``)."""
    prof = run_profile(cfg)
    return prof.name if prof is not None else cfg.profile


def env_settings(cfg: Evaluate) -> dict[str, Any]:
    """camera, robot, sim_freq and lighting of the run: the profile's, with the options the user gave on top."""
    prof = run_profile(cfg)
    out = prof.env_kwargs() if prof is not None else {"robot": "panda", "camera": "default", "sim_freq": 100,
                                                       "lighting": "default"}  # fmt: skip
    out.update({k: v for k, v in {"camera": cfg.camera, "robot": cfg.robot, "sim_freq": cfg.sim_freq}.items()
                if v is not None})  # fmt: skip
    return out


def load_store(asset_pack: str | None, profile: str = "vgb", rl4vla_assets: Path | None = None):
    """The run's assets: the RL4VLA folder for the rl4vla profiles (``profile`` as run.json records it), else the
    procedural pack or ``asset_pack``."""
    if profile != "vgb":
        from vla_gen_bench.eval.profiles import get_profile

        if get_profile(profile).assets == "rl4vla":
            if asset_pack is not None:
                raise EvalConfigError(f"--asset-pack cannot be combined with --profile {profile}: the tables come "
                                      "from the RL4VLA folder (--rl4vla-assets)")  # fmt: skip
            from vla_gen_bench.assets.rl4vla import load_rl4vla

            return load_rl4vla(rl4vla_assets)
    if asset_pack is None:
        from vla_gen_bench.assets.store import default_store

        return default_store()
    from vla_gen_bench.assets.packs import load_pack

    return load_pack(asset_pack)


def check_pack_view(store, camera: str) -> None:
    """A generated table pack must have been rendered from this run's camera (else tables would not line up)."""
    if getattr(store, "table_pack", None):
        from vla_gen_bench.assets.packs import check_view
        from vla_gen_bench.envs.cameras import camera_spec

        check_view(store, camera_spec(camera))


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("vla-gen-bench", "mani_skill", "sapien", "numpy", "torch", "transformers", "peft"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def policy_id(spec: str, metadata: dict[str, Any]) -> str:
    """A short hash of what identifies the policy: the --policy string and what the adapter reports about itself
    (e.g. an OpenVLA checkpoint's weight hash)."""
    payload = json.dumps({"policy": spec, "metadata": metadata}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_done(path: Path) -> dict[tuple[str, int, int], EpisodeRecord]:
    """Finished episodes by (variant, seed, episode), read by :func:`.records.read`; a torn last line is cut off
    first (it never counted: its episode is simply run again)."""
    records.cut_torn(path)
    try:
        return {r.key: r for r in records.read(path).records}
    except records.RecordError as e:
        raise RunDirError(f"{e}") from None


def chain_state(path: Path, run: RunInfo | dict[str, Any]) -> dict[str, Any]:
    """``run.json``'s ``episodes_chain`` for the lines now in ``path`` (the chain starts from ``run``'s identity);
    RunDirError when a line was edited."""
    from vla_gen_bench.eval.chain import FORMAT, genesis, verify

    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    chk = verify(lines, genesis(run.to_dict() if isinstance(run, RunInfo) else run))
    if chk.broken is not None:
        raise RunDirError(f"{path}:{chk.broken}: this line is not what 'vgb evaluate' wrote (its hash-chain link does "
                          f"not match: edited, inserted, moved or from another run). Restore it, or delete line "
                          f"{chk.broken} and every line after it and re-run the same command (those episodes are "
                          f"run again), or start over with a new --out")  # fmt: skip
    return {"format": FORMAT, "lines": chk.lines, "head": chk.head, "unbound_lines": len(chk.unbound)}


def protocol(cfg: Evaluate) -> tuple[int, tuple[int, ...]]:
    """Episodes per seed and the seeds of the run: the options given, else the profile's defaults."""
    prof = run_profile(cfg)
    # vgb's defaults (eval.profiles.PROFILES["vgb"]) without importing the simulator for the default profile
    episodes, seeds = (prof.episodes, prof.seeds) if prof is not None else (8, (0,))
    if cfg.episodes is not None:
        episodes = cfg.episodes
    return episodes, tuple(seeds if cfg.seeds is None else cfg.seeds)


MAX_SEED = 2**32 - 1  # numpy and ManiSkill seeds are 32-bit
MAX_ITEMS = 1_000_000  # far beyond any useful run (the paper: 3 seeds x 64 episodes per variant)


def check_protocol(cfg: Evaluate) -> tuple[int, tuple[int, ...]]:
    """Episodes and seeds of the run, refused with a one-line EvalConfigError when they cannot work."""
    from vla_gen_bench.variants import get_suite

    episodes, seeds = protocol(cfg)
    if episodes < 1:
        raise EvalConfigError("--episodes must be >= 1")
    if not seeds or any(s < 0 or s > MAX_SEED for s in seeds):
        raise EvalConfigError(f"--seeds must be integers in [0, {MAX_SEED}] (32-bit simulator seeds), got "
                              f"{' '.join(map(str, seeds)) or 'none'}")  # fmt: skip
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise EvalConfigError(f"--seeds lists {', '.join(map(str, twice))} more than once: the same episodes would "
                              f"run twice; give each seed once")  # fmt: skip
    others = sorted({v.family for v in get_suite(cfg.suite)} - {"put_on"})
    if others and cfg.profile != "vgb":
        raise EvalConfigError(f"--profile {cfg.profile} has one family (put_on, the paper's task); the suite "
                              f"{cfg.suite!r} has {', '.join(others)} variants: run those with --profile vgb")  # fmt: skip
    n = len(get_suite(cfg.suite)) * len(seeds) * episodes
    if n > MAX_ITEMS:
        raise EvalConfigError(f"{n:,} episodes planned (--episodes {episodes} x {len(seeds)} seed(s) x the suite's "
                              f"variants) exceeds {MAX_ITEMS:,}; lower --episodes (the paper uses 64 per seed)")  # fmt: skip
    return episodes, seeds


def plan(cfg: Evaluate, store) -> list[Item]:
    from vla_gen_bench.variants import get_suite

    episodes, seeds = check_protocol(cfg)
    return [Item(v.name, int(s), k) for v in get_suite(cfg.suite) for s in seeds for k in range(episodes)]


def run_config(cfg: Evaluate, store, policy_meta: dict) -> RunInfo:
    """The run.json of a new run of ``cfg`` with a policy reporting ``policy_meta``."""
    from vla_gen_bench.variants import CONTROL, catalog_hash, get_suite

    variants = get_suite(cfg.suite)
    episodes, seeds = protocol(cfg)
    prof = run_profile(cfg)
    args = policy_kwargs(cfg)
    # which settings the profile chose because the command left them out (the paper's protocol under rl4vla)
    by_profile = [k for k in ("episodes", "seeds") if getattr(cfg, k) is None]
    if "temperature" in args and cfg.policy_options.temperature is None:
        by_profile.append("temperature")
    pack = getattr(store, "table_pack", None) or {}
    table_pack = {k: v for k, v in pack.items() if k in ("name", "hash", "source")}
    return RunInfo(
        policy=cfg.policy,
        policy_id=policy_id(cfg.policy, policy_meta),
        policy_metadata=policy_meta,
        policy_args=args,
        suite=cfg.suite,
        suite_hash=catalog_hash(variants, store),
        catalog_hash=catalog_hash(store=store),
        asset_pack=cfg.asset_pack or ("rl4vla" if getattr(store, "source", None) else "procedural"),
        asset_source=getattr(store, "source", None),
        asset_pack_hash=store.pack_hash,
        table_pack=table_pack or None,
        control=CONTROL,
        variants={
            v.name: {
                "axis": v.axis,
                "split": v.split,
                "severity": v.severity,
                "description": v.summary,
                "paper": v.paper,
                **_family_meta(v),
            }
            for v in variants
        },
        seeds=tuple(seeds),
        episodes_per_seed=episodes,
        defaults_from_profile=tuple(by_profile),
        **{k: v for k, v in env_settings(cfg).items() if k not in ("lighting", "rules")},
        profile=profile_name(cfg),
        profile_settings=prof.to_dict(env_settings(cfg)["camera"]) if prof is not None else None,
        config=json.loads(json.dumps(asdict(cfg), default=str)),
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _family_meta(v) -> dict[str, Any]:
    """run.json's family keys of a variant: none for put_on (its run.json stays as before families), else the
    family, its control arm and the content hash of its own assets."""
    if v.family == "put_on":
        return {}
    from vla_gen_bench.assets.family_store import family_assets_hash
    from vla_gen_bench.families import get_family

    f = get_family(v.family)
    return {"family": f.name, "control": f.control, "family_assets_hash": family_assets_hash(f)}


def family_batches(todo: list[Item], size: int) -> list[list[Item]]:
    """``todo`` in batches of at most ``size`` items, each of one family (a worker's env runs one family)."""
    from vla_gen_bench.variants import get_variant

    out: list[list[Item]] = []
    for it in todo:
        fam = get_variant(it.variant).family
        if out and len(out[-1]) < size and get_variant(out[-1][0].variant).family == fam:
            out[-1].append(it)
        else:
            out.append([it])
    return out


# ---------------------------------------------------------------------------------------------- worker
_ENVS: dict[tuple, Any] = {}  # in-process envs kept for repeated evaluate() calls (tests, notebooks)


@dataclass
class Worker:
    """Owns one env (``num_envs`` parallel copies) and one policy instance per env; runs items it is given."""

    cfg: Evaluate
    index: int = 0
    videos_per_kind: int = 0
    shared: bool = False
    """Keep the env open for later in-process runs with the same settings (the render-pipeline compile is paid once)."""
    policy_url: str | None = None
    """The policy process to ask for actions (``ws://127.0.0.1:<port>``) instead of loading the policy here."""
    render: Any = None
    """The :class:`vla_gen_bench.envs.render_device.RenderDevice` the parent chose; None: chosen here."""
    _saved: dict = field(default_factory=dict)

    def setup(self) -> dict:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from vla_gen_bench.envs import make_env
        from vla_gen_bench.eval.guard import GuardedPolicy, construct
        from vla_gen_bench.policies.registry import resolve_policy
        from vla_gen_bench.policies.remote import RemotePolicy

        self.store = load_store(self.cfg.asset_pack, profile_name(self.cfg), self.cfg.rl4vla_assets)
        self.profile = run_profile(self.cfg)
        options = policy_options(self.cfg)

        def guard(p):  # a remote client has its own per-reply timeout; anything else gets the watchdog
            return GuardedPolicy(
                p, self.cfg.policy, None if isinstance(p, RemotePolicy) else self.cfg.policy_timeout
            )

        if self.policy_url is not None:  # the model lives in the policy process; this worker only simulates
            remote = RemotePolicy(self.policy_url, timeout_s=self.cfg.policy_timeout)
            # identify the policy by what it reports about itself, as when it is loaded in-process (same policy id)
            remote.metadata = dict(remote._server_meta.get("metadata") or {})
            self.policies = [guard(remote)]
        else:  # the policy is built before the env, so a policy that cannot load is refused before the simulator
            # the ws:// client waits --policy-timeout for each reply unless told otherwise
            more = {"timeout_s": self.cfg.policy_timeout} if self.cfg.spec.kind == "ws" else {}
            more = {k: v for k, v in more.items() if k not in options.extra}

            def build():  # under the same watchdog as reset/act: a constructor that never returns stops the run
                return construct(lambda: resolve_policy(self.cfg.spec, options, **more), self.cfg.policy,
                                 self.cfg.policy_timeout)  # fmt: skip

            first = build()
            if hasattr(first, "act_batch"):  # one model shared by all envs, queried in one batch
                self.policies = [guard(first)] * self.cfg.num_envs
            else:  # one instance per env (policies may keep per-episode state)
                self.policies = [guard(first)] + [guard(build()) for _ in range(self.cfg.num_envs - 1)]
        from vla_gen_bench.envs.render_device import render_device_used, resolve_render_device, vulkan_drivers
        from vla_gen_bench.variants import families_of, get_suite

        render = self.render or resolve_render_device(self.cfg.render_device)
        s = env_settings(self.cfg)
        self.envs = {}  # one env per task family of the suite, the first family's also as self.env
        for family in families_of(get_suite(self.cfg.suite)):
            key = (s["camera"], s["robot"], self.store.pack_hash, s["sim_freq"], self.cfg.num_envs, s["lighting"],
                   s.get("rules", "vgb"), render.backend, family)  # fmt: skip
            if self.shared and key in _ENVS:
                self.envs[family] = _ENVS[key]
                continue
            light = {"lighting": s["lighting"]} if s["lighting"] != "default" else {}
            light.update(
                {"rules": s["rules"]} if "rules" in s else {}
            )  # the paper profiles' reset and success
            with vulkan_drivers(render.requested):  # --render-device cpu: lavapipe, even beside a GPU
                self.envs[family] = make_env(camera=s["camera"], robot=s["robot"], asset_store=self.store,
                                             sim_freq=s["sim_freq"], num_envs=self.cfg.num_envs,
                                             render_backend=render.backend, family=family, **light)  # fmt: skip
            if self.shared:
                _ENVS[key] = self.envs[family]
        self.env = next(iter(self.envs.values()))
        p = self.policies[0]
        return {"spec": p.spec.to_dict(), "metadata": dict(getattr(p, "metadata", {}) or {}),
                "render_device": render_device_used(self.env, render).to_dict()}  # fmt: skip

    def probe(self, steps: int = 3) -> dict:
        """The conventions check: a few steps of the control arm's episode 0 (not scored)."""
        from vla_gen_bench.envs.robots import ACTION_HIGH, ACTION_LOW
        from vla_gen_bench.eval.conventions import check_moves, check_spec, validate_action
        from vla_gen_bench.eval.runner import policy_observation
        from vla_gen_bench.families import get_family
        from vla_gen_bench.variants import CONTROL, episode

        p = self.policies[0]
        check_spec(p.spec)
        env = self.env
        b = env.unwrapped.num_envs
        # the control arm of the env's family (the suite's first family; put_on: CONTROL)
        family = next((f for f, e in getattr(self, "envs", {}).items() if e is env), "put_on")
        spec = episode(get_family(family).control if family != "put_on" else CONTROL, 0, 0, self.store)
        obs, _ = env.reset(seed=[0] * b if b > 1 else 0, options={"episode": [spec] * b if b > 1 else spec})
        p.reset(env.unwrapped.instructions[0])
        states = [env.unwrapped.proprio()[0].copy()]
        shapes = []
        for _ in range(steps):
            a = validate_action(
                p.act(policy_observation(env, obs, p.spec.privileged, 0)), p.spec, ACTION_LOW, ACTION_HIGH
            )
            shapes.append(list(a.shape))
            for row in a:
                full = row[None].repeat(b, 0) if b > 1 else row
                obs, *_ = env.step(full.astype("float32"))
                states.append(env.unwrapped.proprio()[0].copy())
        moved = check_moves(states)
        return {"steps": len(states) - 1, "action_shapes": shapes, "max_state_change": round(moved, 6)}

    def run(self, items: list[Item], out_dir: Path | None) -> list[dict]:
        from vla_gen_bench.envs.robots import ACTION_HIGH, ACTION_LOW
        from vla_gen_bench.eval.conventions import validate_action
        from vla_gen_bench.eval.runner import episode_key, run_batch, write_video
        from vla_gen_bench.variants import episode, get_variant

        # the profile's quirks act on the manifest's episodes; the catalog is untouched
        make = self.profile.episode if self.profile is not None else episode
        specs = [make(it.variant, it.seed, it.episode, self.store) for it in items]
        pad = self.cfg.num_envs - len(items)
        check = lambda i, a: validate_action(a, self.policies[i].spec, ACTION_LOW, ACTION_HIGH)  # noqa: E731
        want_video = self.videos_per_kind > 0
        keys = [episode_key(*it.key) for it in items]
        desc = lambda it: f"variant {it.variant}, seed {it.seed}, episode {it.episode}"  # noqa: E731
        if all(
            p is self.policies[0] for p in self.policies
        ):  # one policy answers every env (named in errors)
            self.policies[0].where = "; ".join(map(desc, items))
        else:
            for p, it in zip(self.policies, items, strict=False):
                p.where = desc(it)
        env = self.envs[get_variant(items[0].variant).family] if hasattr(self, "envs") else self.env
        results = run_batch(env, self.policies, [it.seed for it in items] + [0] * pad, specs + [specs[0]] * pad,
                            record_frames=want_video, on_action=check, episode_keys=keys + keys[:1] * pad,
                            )[: len(items)]  # fmt: skip
        out: list[tuple[EpisodeRecord, bytes | None]] = []
        for it, spec, res in zip(items, specs, results, strict=True):
            v = get_variant(it.variant)
            success = (
                res.success if self.profile is None else self.profile.success(res.success, res.success_once)
            )
            rec = EpisodeRecord.from_result(res, variant=v, seed=it.seed, episode=it.episode, policy=self.cfg.policy,
                                            success=success, matched=spec.meta.get("matched"), worker=self.index)  # fmt: skip
            data = None
            kind = "success" if res.success else "failure"
            if want_video and self._saved.get((v.name, kind), 0) < self.videos_per_kind:
                rel = Path("videos") / f"{v.name}_s{it.seed}_e{it.episode}_{kind}.mp4"
                if out_dir is None:  # a remote (Ray) worker: the bytes travel back with the record
                    import tempfile

                    with tempfile.TemporaryDirectory() as tmp:
                        write_video(res.frames, Path(tmp) / "v.mp4")
                        data = (Path(tmp) / "v.mp4").read_bytes()
                else:
                    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                    write_video(res.frames, out_dir / rel)
                self._saved[(v.name, kind)] = self._saved.get((v.name, kind), 0) + 1
                rec = replace(rec, video=str(rel))
            out.append((rec, data))
        return out

    def close(self) -> None:
        envs = getattr(self, "envs", None) or (
            {"env": self.env} if getattr(self, "env", None) is not None else {}
        )
        if not self.shared:
            for env in envs.values():
                env.close()


class _PoolWorker:
    """A :class:`Worker` in a worker process of the pool (:mod:`.pool`): set up (and probe) once, then run the
    batches it is given, writing videos into the run directory."""

    def __init__(
        self, cfg: Evaluate, videos: int, out_dir: str, policy_url: str | None, render, index: int
    ) -> None:
        import logging

        logging.getLogger("mani_skill").setLevel(logging.ERROR)
        self.w = Worker(cfg, index, videos, policy_url=policy_url, render=render)
        self.out_dir = Path(out_dir)

    def setup(self) -> dict:
        info = self.w.setup()
        if self.w.cfg.check:
            info["probe"] = self.w.probe()
        return info

    def run(self, batch: list[Item]) -> list[tuple[EpisodeRecord, bytes | None]]:
        return self.w.run(batch, self.out_dir)

    def close(self) -> None:
        self.w.close()


# ---------------------------------------------------------------------------------------------- backends
class _Local:
    """Worker processes (the shared :class:`.pool.WorkerPool`, spawn), each fed its own queue; in-process when
    workers == 1.

    The pool knows which batch each worker holds, so a worker process that dies (killed, segfault, out of memory)
    is replaced and its batch handed to the replacement: nothing is lost and, since only the parent writes records,
    nothing is written twice. A policy process (``policy``), when there is one, is watched too: its death stops the
    run with a message saying how to resume.
    """

    MAX_RESTARTS = 3  # per run: a worker that keeps dying points at a real problem

    def __init__(self, cfg: Evaluate, out_dir: Path, videos: int, policy=None, render=None):
        self.cfg, self.out_dir, self.videos, self.policy = cfg, out_dir, videos, policy
        url = policy.url if policy is not None else None
        if cfg.workers == 1:
            self.w = Worker(cfg, 0, videos, shared=url is None, policy_url=url, render=render)
            self.info = [self.w.setup()]
            if cfg.check:
                self.info[0]["probe"] = self.w.probe()
            return
        from functools import partial

        from vla_gen_bench.eval.pool import WorkerPool

        self.pool = WorkerPool(partial(_PoolWorker, cfg, videos, str(out_dir), url, render), cfg.workers,
                               restarts=self.MAX_RESTARTS, watch=policy.died if policy is not None else None,
                               poll_s=2.0, name="worker", describe=lambda batch: f"{len(batch)} episode(s)")  # fmt: skip
        self.info = self.pool.info

    def run(self, batches: list[list[Item]]):
        if self.cfg.workers == 1:
            for b in batches:
                if self.policy is not None and (err := self.policy.died()) is not None:
                    raise err
                try:
                    yield self.w.run(b, self.out_dir)
                except Exception as e:
                    if self.policy is not None and (err := self.policy.died()) is not None:
                        raise err from e
                    raise
            return
        yield from self.pool.imap_unordered(batches)

    def close(self) -> None:
        if self.cfg.workers == 1:
            self.w.close()
            return
        self.pool.close(wait_s=30)


class _Ray:
    """The same Worker as Ray actors (one per --workers), on a local Ray or the cluster at --address."""

    def __init__(self, cfg: Evaluate, out_dir: Path, videos: int):
        try:
            import ray
        except ImportError as e:
            raise RuntimeError(
                "--backend ray needs Ray: pip install 'ray>=2.9' (or: pip install -e '.[cluster]')"
            ) from e
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self.actors = [actor.remote(cfg, i, videos) for i in range(cfg.workers)]
        self.info = ray.get([a.ready.remote() for a in self.actors])

    def run(self, batches: list[list[Item]]):
        ray = self.ray
        pending, queue = {}, list(batches)
        for a in self.actors:
            if queue:
                pending[a.run.remote(queue.pop(0))] = a
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            a = pending.pop(ref)
            if queue:
                pending[a.run.remote(queue.pop(0))] = a
            yield ray.get(ref)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()


class _RayWorker:
    def __init__(self, cfg: Evaluate, index: int, videos: int):
        self.w = Worker(cfg, index, videos)
        self.info = self.w.setup()
        if cfg.check:
            self.info["probe"] = self.w.probe()

    def ready(self) -> dict:
        return self.info

    def run(self, batch: list[Item]) -> list[tuple[EpisodeRecord, bytes | None]]:
        return self.w.run(batch, None)  # may run on another machine: videos come back as bytes


# a worker's exception (message "Type: text", the worker's traceback in ``trace``) or a worker process that died with
# no restarts left: the pool's error, under the name this module has always raised
WorkerError = PoolError


# ---------------------------------------------------------------------------------------------- main
def evaluate(cfg: Evaluate, console=None) -> Path:
    """Run (or resume) an evaluation; returns the run directory."""
    from rich.console import Console

    console = console or Console(stderr=True)
    if cfg.workers < 1 or cfg.num_envs < 1:
        raise EvalConfigError("--workers and --num-envs must be >= 1")
    if cfg.max_batch < 1 or (cfg.max_wait_ms is not None and cfg.max_wait_ms < 0) or cfg.policy_timeout <= 0:
        raise EvalConfigError("--max-batch must be >= 1, --max-wait-ms >= 0 and --policy-timeout > 0")
    from vla_gen_bench.policies.registry import check_policy

    # everything that can be refused from the options alone is refused here, before any env or model starts
    check_policy(cfg.spec, policy_options(cfg))
    check_protocol(cfg)
    from vla_gen_bench.options import RenderDeviceError, check_render_device

    try:
        check_render_device(cfg.render_device)
    except RenderDeviceError as e:
        raise EvalConfigError(str(e)) from None
    from vla_gen_bench.eval.lock import RunLockedError, run_lock

    created = check_out_dir(cfg.out)
    try:
        with contextlib.ExitStack() as held:
            # one writer per run folder, from before anything there is read or written until the report is out
            try:
                held.enter_context(run_lock(cfg.out, "vgb evaluate"))
            except RunLockedError as e:
                raise RunDirError(str(e)) from None
            except OSError as e:
                raise EvalConfigError(f"--out {cfg.out} is not writable ({e.strerror or e}); choose a writable "
                                      f"folder") from None  # fmt: skip
            try:
                check_writable(cfg.out)
                return _evaluate(cfg, console, created)
            except BaseException:
                if created:
                    _remove_lock_if_alone(cfg.out)
                raise
    except BaseException:
        if created and cfg.out.is_dir() and not any(cfg.out.iterdir()):
            cfg.out.rmdir()  # a refused run leaves no empty folder behind
        raise


def _remove_lock_if_alone(out: Path) -> None:
    """The lock file of a folder this run created and leaves with nothing in it (removed while still held)."""
    from vla_gen_bench.eval.lock import LOCK_NAME, remove_lock_file

    if out.is_dir() and [p.name for p in out.iterdir()] == [LOCK_NAME]:
        remove_lock_file(out)


def check_out_dir(out: Path) -> bool:
    """Refuse an --out that cannot hold this run; create it. Returns whether it was created now.

    An existing folder is accepted only when it is empty (but for a lock file) or holds a run (run.json or
    episodes.jsonl): files a user keeps there (a summary.csv, a report.md of their own) are never overwritten.
    Nothing is written into an existing folder here: its lock comes first (:func:`evaluate`), then
    :func:`check_writable`.
    """
    from vla_gen_bench.eval.lock import LOCK_NAME

    if out.exists() and not out.is_dir():
        raise EvalConfigError(f"--out {out} is a file; give a folder for the run (it is created if missing)")
    if out.is_dir():
        names = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
        if names and not ({RUN_JSON, EPISODES} & set(names)):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise RunDirError(f"--out {out} already holds files that are not a vgb run ({shown}); nothing there is "
                              f"overwritten: give a new folder, e.g. --out {out / 'run'}")  # fmt: skip
        created = False
    else:
        try:
            out.mkdir(parents=True)
        except OSError as e:
            raise EvalConfigError(
                f"cannot create --out {out}: {e.strerror or e}; choose a writable folder"
            ) from None
        created = True
    return created


def check_writable(out: Path) -> None:
    """Refuse a run folder new files cannot be made in (EvalConfigError)."""
    probe = out / f".vgb-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        probe.unlink(missing_ok=True)
        raise EvalConfigError(
            f"--out {out} is not writable ({e.strerror or e}); choose a writable folder"
        ) from None


def _evaluate(cfg: Evaluate, console, created: bool) -> Path:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from vla_gen_bench.eval.policy_process import PolicyProcess, wants_policy_process

    try:
        serve_policy = cfg.backend == "local" and wants_policy_process(cfg.spec, cfg.workers, cfg.num_envs,
                                                                       cfg.policy_server)  # fmt: skip
    except ValueError as e:
        raise EvalConfigError(str(e)) from None
    if cfg.num_envs > 1:
        import torch

        if not torch.cuda.is_available():
            raise EvalConfigError("--num-envs > 1 needs ManiSkill's GPU simulator (CUDA); on a CPU machine run "
                                  "parallel episodes with --workers N instead")  # fmt: skip
    # refuse before any worker starts (and before ManiSkill could prompt or download)
    if env_settings(cfg)["robot"] == "widowx250s":
        from vla_gen_bench.envs.robots import check_widowx_assets

        try:
            check_widowx_assets()
        except FileNotFoundError as e:
            raise EvalConfigError(str(e)) from None
    try:
        store = load_store(cfg.asset_pack, profile_name(cfg), cfg.rl4vla_assets)
    except OSError as e:
        from vla_gen_bench.paths import cache_dir_hint

        raise EvalConfigError(f"cannot prepare the assets: {e.strerror or e} ({getattr(e, 'filename', '')}); "
                              f"{cache_dir_hint()}") from None  # fmt: skip
    check_pack_view(store, env_settings(cfg)["camera"])
    render = None
    if cfg.backend == "local":  # chosen once here (Ray workers, maybe on other machines, choose their own)
        from vla_gen_bench.envs.render_device import RenderDeviceError, resolve_render_device

        try:
            render = resolve_render_device(cfg.render_device)
        except RenderDeviceError as e:
            raise EvalConfigError(str(e)) from None
    items = plan(cfg, store)
    out = cfg.out
    jsonl = out / EPISODES
    done = read_done(jsonl)
    todo = [it for it in items if it.key not in done]
    previous = None
    if (out / RUN_JSON).exists():
        try:
            previous = records.read_run(out)
        except records.RecordError as e:
            raise RunDirError(f"{e}; restore it or use another --out") from None
    if previous is not None:
        chain_state(jsonl, previous)  # refuse to extend a file whose lines were edited

    meta = run_config(cfg, store, {})
    if previous is not None:
        clash = resume_clash(previous, meta)
        if clash:
            raise RunDirError(
                f"{out} holds a run with different {', '.join(clash)} "
                f"({'; '.join(f'{k}: was {was!r}, now {now!r}' for k, (was, now) in clash.items())}); "
                "use another --out to start a new run")  # fmt: skip
    # half-written files of a run killed mid-write (this process holds the lock)
    records.remove_temporaries(out)
    if todo:
        videos = math.ceil(cfg.videos / cfg.workers) if cfg.videos else 0
        already: dict[tuple[str, str], int] = {}
        for r in done.values():
            if r.video:
                k = (r.variant, "success" if r.success else "failure")
                already[k] = already.get(k, 0) + 1
        t_setup = time.perf_counter()
        policy = None
        if serve_policy:
            console.print(f"loading {cfg.policy} once, in a policy process serving {cfg.workers} simulator workers "
                          f"(batches of <= {cfg.max_batch}, wait <= {'auto' if cfg.max_wait_ms is None else cfg.max_wait_ms})")  # fmt: skip
            policy = PolicyProcess(cfg.spec, policy_options(cfg), cfg.max_batch, cfg.max_wait_ms,
                                   start_timeout_s=cfg.policy_timeout)  # fmt: skip
        try:
            if cfg.backend == "ray":
                backend = _Ray(cfg, out, videos)
            else:
                backend = _Local(cfg, out, videos, policy, render)
        except BaseException:
            if policy is not None:
                policy.close()
            raise
        try:
            if getattr(backend, "w", None) is not None:
                backend.w._saved.update(already)  # keep the per-variant video budget across resumes
            info = backend.info[0]
            meta = replace(run_config(cfg, store, info["metadata"]), action_spec=info["spec"],
                           conventions_check=info.get("probe", "skipped (--no-check)"),
                           policy_timeout_s=cfg.policy_timeout, render_device=info.get("render_device"))  # fmt: skip
            if previous is not None:
                if previous.policy_id != meta.policy_id:
                    raise RunDirError(f"{out} was run with policy id {previous.policy_id} but {cfg.policy} now "
                                      f"reports {meta.policy_id} (different weights or metadata); use another --out")  # fmt: skip
                meta = replace(meta, created=previous.created, resumed=(previous.resumed or 0) + 1)
            chain = chain_state(jsonl, meta)  # the link new lines continue from
            # the same dict as ``chain``: it counts the lines as they are written
            meta = replace(meta, episodes_chain=chain)
            head = chain["head"]
            records.write_run(out, meta)
            if render is not None and render.note:  # said once the workers are up (a refusal stays one line)
                console.print(render.note, markup=False)
            console.print(f"{len(items)} episodes planned, {len(done)} already in {jsonl}; running {len(todo)} "
                          f"({cfg.backend}, {cfg.workers} worker(s) x {cfg.num_envs} env(s))")  # fmt: skip
            batches = family_batches(todo, cfg.num_envs)
            wins = sum(r.success for r in done.values())
            n = len(done)
            t0 = time.perf_counter()
            setup_s = t0 - t_setup
            cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn())  # fmt: skip
            with Progress(*cols, console=console) as bar:
                task = bar.add_task(cfg.policy, total=len(items), completed=len(done))
                for batch in backend.run(batches):
                    for r, data in batch:
                        if r.key in done:  # a re-run batch of a worker that died after reporting: never twice
                            continue
                        done[r.key] = r
                        if data is not None and r.video:  # whole or not at all, before its record
                            (out / r.video).parent.mkdir(parents=True, exist_ok=True)
                            records.write_atomic(out / r.video, data)
                        head = records.append(jsonl, r, head)
                        chain["lines"] += 1
                        chain["head"] = head
                        wins += r.success
                        n += 1
                    bar.update(task, advance=len(batch),
                               description=f"{cfg.policy} | success {wins}/{n} ({wins / max(n, 1):.0%})")  # fmt: skip
            run_s = time.perf_counter() - t0
            console.print(f"ran {len(todo)} episodes in {run_s:.0f} s ({60 * len(todo) / max(run_s, 1e-9):.1f} "
                          f"episodes/min after {setup_s:.0f} s of set-up)")  # fmt: skip
            timing = {"setup_s": round(setup_s, 1), "run_s": round(run_s, 1), "episodes": len(todo),
                      "episodes_per_min": round(60 * len(todo) / max(run_s, 1e-9), 2),
                      "policy_process": policy is not None}  # fmt: skip
            if policy is not None:
                timing["policy_load_s"] = policy.load_s
                timing["batching"] = policy.stats()
            records.write_run(out, replace(meta, timing=timing))
        finally:
            backend.close()
            if policy is not None:
                policy.close()
    else:
        console.print(f"all {len(items)} episodes already in {jsonl}")
        if previous is None:
            raise RunDirError(f"{out} has episodes but no {RUN_JSON}; cannot tell what was run")
        chain = chain_state(jsonl, previous)
        if previous.episodes_chain != chain:  # killed after the last episode: seal the run now
            records.write_run(out, replace(previous, episodes_chain=chain))
    # and of a worker process killed mid-video (and replaced) in this run
    records.remove_temporaries(out)
    if cfg.report:
        from vla_gen_bench.eval.report import write_outputs

        for p in write_outputs(out).values():
            console.print(f"wrote {p}")
    return out


def evaluate_command(cfg: Evaluate) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)  # a refusal is one line, however narrow the terminal
    from vla_gen_bench.assets.store import AssetError
    from vla_gen_bench.eval.conventions import ActionError
    from vla_gen_bench.eval.guard import PolicyCallError
    from vla_gen_bench.eval.policy_process import PolicyProcessError
    from vla_gen_bench.policies.registry import PolicyError
    from vla_gen_bench.policies.remote import RemotePolicyError
    from vla_gen_bench.variants import VariantError

    def kept() -> str:
        n = 0
        if (cfg.out / EPISODES).is_file():
            n = sum(1 for line in (cfg.out / EPISODES).read_bytes().splitlines() if line.strip())
        if not n:
            return "No episode had finished yet; re-run the same command to resume (it starts from the beginning)"
        return f"{n} finished episode(s) are kept in {cfg.out / EPISODES}; re-run the same command to resume"

    try:
        evaluate(cfg, console)
    except (ActionError, RunDirError, EvalConfigError, PolicyError, PolicyOptionError, VariantError,
            AssetError) as e:  # fmt: skip
        console.print(f"refused: {e}", style="red", markup=False)
        return 2
    except PolicyProcessError as e:
        console.print(str(e), style="red", markup=False)
        return 1
    except (PolicyCallError, RemotePolicyError) as e:  # a timeout, a policy exception, a server gone
        console.print(f"{e}. {kept()}.", style="red", markup=False)
        return 1
    except WorkerError as e:
        if (err := _worker_os_error(e.args[0])) is not None:  # a worker could not write a video
            console.print(f"{cannot_write(err, cfg.out)}. {kept()}.", style="red", markup=False)
            return 1
        if e.args[0].startswith(("ActionError", "PolicyError")):
            console.print(f"refused: {e.args[0].split(': ', 1)[1]}", style="red", markup=False)
            return 2
        if e.args[0].startswith(("RemotePolicyError", "PolicyCallError")):  # the message says it all
            console.print(f"{e.args[0].split(': ', 1)[1]}. {kept()}.", style="red", markup=False)
            return 1
        if e.trace:
            console.print(e.trace, markup=False)
        console.print(f"a worker failed: {e}. {kept()}.", style="red", markup=False)
        return 1
    except KeyboardInterrupt:
        console.print(f"interrupted. {kept()}.", style="yellow", markup=False)
        return 130
    except OSError as e:  # a disk that filled up or turned read-only mid-run
        console.print(f"{cannot_write(e, cfg.out)}. {kept()}.", style="red", markup=False)
        return 1
    return 0


def cannot_write(e: OSError, out: Path) -> str:
    """One line for a write that failed mid-run: the path, why, and the free space where the run is written."""
    import shutil

    path = e.filename or out
    why = " ".join(str(e.strerror or e).split())  # ffmpeg's message, on one line
    try:
        free = _size(shutil.disk_usage(out if out.exists() else out.parent).free)
        free = f"{free} free on the disk of {out}"
    except OSError:
        free = f"free space of {out} unknown"
    hint = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space", errno.EROFS: "remount it writable",
            errno.EACCES: "make it writable"}.get(e.errno, "fix that")  # fmt: skip
    return f"cannot write {path}: {why} ({free}); {hint} or choose another --out"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _worker_os_error(message: str) -> OSError | None:
    """A worker process's OSError, rebuilt from the pool's "Type: [Errno N] text: 'path'" message."""
    import builtins
    import re

    m = re.match(r"(\w+): \[Errno (\d+)\] (.*?)(?:: '(.*)')?$", message, re.DOTALL)
    kind = getattr(builtins, m.group(1), None) if m else None
    if not (isinstance(kind, type) and issubclass(kind, OSError)):
        return None
    return OSError(int(m.group(2)), m.group(3), m.group(4))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(evaluate_command(tyro.cli(Evaluate)))
