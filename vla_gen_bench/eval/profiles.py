"""Run profiles (``--profile``): which robot, camera, physics rate, lighting and asset source a run uses, how its
episodes are built and at which temperature OpenVLA samples, and how the paper's quirks are set. The variant
catalog is the same under every profile; a profile only changes what RL4VLA did differently.

* ``vgb`` (default): the benchmark as designed (Panda, 224x224 camera, 100 Hz physics, procedural assets).
* ``rl4vla``: the paper's WidowX-250S with its controller, base pose and initial joints, 500 Hz physics, its
  640x480 third-person camera (intrinsics, mount pose, "default" shader), its lighting, and assets read from an RL4VLA
  folder (``more_carrot`` / ``more_plate`` / ``more_table``, see :mod:`vla_gen_bench.assets.rl4vla`); the paper's
  reset (robot parked, objects dropped and settled) and success test (at the model origins), the paper's
  reposition drop, third-cell triples and protocol (temperature 0.6, 3 seeds x 64 episodes). Quirks (the paper's
  bugs and unmatched draws) stay at our fixed behaviour.
* ``rl4vla-paper``: ``rl4vla`` with every quirk as the paper had it.

Quirks and the switchable settings can be set one by one, as typed fields (:class:`ProfileOptions`):
``--profile rl4vla --profile.random-episodes True --profile.reposition place``. run.json records the result as one
string, ``rl4vla:random_episodes=true,reposition=place`` (:attr:`Profile.name`), which :func:`get_profile` reads back.
This module is plain data plus pure functions (it imports the scene constants of :mod:`vla_gen_bench.envs.rl4vla`,
never builds an env); ``docs/paper_profile.md`` explains each field.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from vla_gen_bench.envs.rl4vla import (
    RL4VLA_REPOSITION_DROP,
    RL4VLA_REPOSITION_SETTLE_S,
    RL4VLA_SIM_FREQ,
    camera_shader,
)
from vla_gen_bench.options import ProfileError, ProfileOptions

# The paper's evaluation protocol: 64 parallel envs x seeds {0, 1, 2}, OpenVLA sampled at temperature 0.6.
RL4VLA_EPISODES = 64
RL4VLA_SEEDS = (0, 1, 2)
RL4VLA_EVAL_TEMPERATURE = 0.6


@dataclass(frozen=True)
class Quirks:
    """Where RL4VLA's evaluation differs from ours. Defaults are our fixed behaviour; the paper's value is named."""

    eval_temperature: float | None = None
    """The sampling temperature of the protocol: given to ``openvla:`` policies whose ``--policy.temperature`` is
    not given (other policies set their own). None (or 0) = none: the policy option's own default (greedy); the
    paper samples at 0.6, which both rl4vla profiles use."""
    success: Literal["at_end", "once"] = "at_end"
    """Which success a record scores: at the final step (ours and the paper's) or at any step (``once``)."""
    duplicate_target: bool = False
    """RL4VLA MultiCarrot-v1 test bug: in 1 of (n-1) episodes (n = unseen objects; 1/8 in the paper) the distractor
    equals the target, so the scene holds only the target, standing at the distractor's cell. Off = always a real
    distractor (ours); on = reproduce it in ``multi_object_unseen``-like variants."""
    random_episodes: bool = False
    """The paper draws every episode's configuration at random per run (``episode_id``), so variants are not matched
    to the control arm. Off = our fixed manifests (episode k of every variant shares the control arm's base draw);
    on = each variant draws independently (still deterministic from the seed, so resumable)."""

    def __post_init__(self):
        if self.eval_temperature is not None and not self.eval_temperature >= 0:
            raise ProfileError(f"eval_temperature must be >= 0, got {self.eval_temperature}")
        if self.success not in ("at_end", "once"):
            raise ProfileError(f"success must be 'at_end' or 'once', got {self.success!r}")


RL4VLA_QUIRKS = Quirks(eval_temperature=RL4VLA_EVAL_TEMPERATURE)
PAPER_QUIRKS = Quirks(eval_temperature=RL4VLA_EVAL_TEMPERATURE, success="at_end", duplicate_target=True,
                      random_episodes=True)  # fmt: skip

# Profile settings (besides the quirks) that a profile string may switch: "rl4vla:reposition=place".
SWITCHES = {"reposition": ("place", "drop"), "third_cells": ("vgb", "rl4vla")}


@dataclass(frozen=True)
class Profile:
    """One profile: env settings, the asset source, and the quirks."""

    name: str
    description: str
    robot: str = "panda"
    camera: str = "default"
    sim_freq: int = 100
    lighting: str = "default"
    rules: Literal["vgb", "rl4vla"] = "vgb"
    """How an episode starts and where success is measured (the env's ``rules``): ``vgb`` places objects 2 mm above
    their support at the exact rotation and tests bounding-box centres; ``rl4vla`` is RL4VLA's reset (robot parked
    1 m up, objects dropped from the paper's heights, 0.1 s of physics + 1.2 s while still moving) and its success
    test at the model origins with the settled rotation's bbox extents."""
    assets: Literal["procedural", "rl4vla"] = "procedural"
    """``procedural``: the built-in pack (or ``--asset-pack``); ``rl4vla``: a folder in RL4VLA's layout."""
    reposition: Literal["place", "drop"] = "place"
    """Mid-episode reposition: ``place`` sets the object down 1 cm above the table with no extra physics (ours);
    ``drop`` is RL4VLA's: the object's model origin 0.1305 m above the table, then 0.1 s of physics within the step
    (it is still falling when the step's observation is rendered and lands during the next step)."""
    third_cells: Literal["vgb", "rl4vla"] = "vgb"
    """Cells of the distractor / reposition target (``multi_object_*``, ``distractor_receptacle``,
    ``multi_receptacle_unseen``, ``reposition*``). ``vgb``: strictly farther than 15 cm by exact distance (1,896
    triples), drawn uniformly given the control arm's cell pair. ``rl4vla``: RL4VLA's 2,104 triples (its float64
    test admits part of the cells exactly 15 cm away), drawn uniformly over triples, keeping the control arm's cell
    pair whenever a maximal coupling allows (61 % of episodes)."""
    episodes: int = 8
    """Episodes per variant and seed when ``--episodes`` is not given."""
    seeds: tuple[int, ...] = (0,)
    """Manifest seeds when ``--seeds`` is not given."""
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self):
        for key, allowed in SWITCHES.items():
            if getattr(self, key) not in allowed:
                raise ProfileError(f"{key} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}")

    # ----------------------------------------------------------------- what a run uses
    def env_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``make_env`` / ``gym.make`` (``overrides`` win, e.g. ``robot="panda"``)."""
        kw = {
            "robot": self.robot,
            "camera": self.camera,
            "sim_freq": self.sim_freq,
            "lighting": self.lighting,
        }
        if self.rules != "vgb":  # the vgb profile's kwargs (and the envs a run shares) stay as they were
            kw["rules"] = self.rules
        kw.update(overrides)
        return kw

    def to_dict(self, camera: str | None = None) -> dict[str, Any]:
        """Every setting, plus the shader of the policy camera (``camera`` when a run overrides the profile's); what
        run.json records as ``profile_settings``."""
        return {**asdict(self), "shader": camera_shader(camera or self.camera)}

    # ----------------------------------------------------------------- quirks applied
    def episode(self, variant, seed: int, k: int, store):
        """Episode ``k`` of ``variant`` for ``seed`` under this profile's quirks (the catalog is untouched)."""
        from vla_gen_bench.variants import episode, get_variant

        v = get_variant(variant)
        if not self.quirks.random_episodes:
            spec = episode(v, seed, k, store, third_cells=self.third_cells)
        else:
            drawn = independent_seed(v.name, seed)
            spec = episode(v, drawn, k, store, third_cells=self.third_cells)
            spec.meta.update({"seed": int(seed), "manifest_seed": drawn, "matched": "none"})
        if self.quirks.duplicate_target:
            spec = duplicate_target(v, spec, seed, k, store)
        if self.reposition == "drop" and spec.reposition is not None:
            spec = replace(spec, reposition=replace(spec.reposition, drop=RL4VLA_REPOSITION_DROP,
                                                    settle_s=RL4VLA_REPOSITION_SETTLE_S))  # fmt: skip
        return spec

    def success(self, success_at_end: bool, success_once: bool) -> bool:
        return bool(success_at_end if self.quirks.success == "at_end" else success_once)

    def policy_options(self, spec, options):
        """The run's policy options (a ``PolicyOptions``) with the protocol's temperature where the command gave
        none (``openvla:`` policies only; ``spec`` is the run's ``PolicySpec`` or ``--policy`` string)."""
        from vla_gen_bench.policies.registry import PolicySpec

        if self.quirks.eval_temperature and PolicySpec.parse(spec).kind == "openvla":
            return options.with_defaults(temperature=self.quirks.eval_temperature)
        return options


def independent_seed(variant: str, seed: int) -> int:
    """A per-variant manifest seed: episodes of different variants stop sharing base draws (the paper's i.i.d. draws)."""
    h = hashlib.sha256(f"rl4vla-random:{variant}:{int(seed)}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def duplicate_target(variant, spec, seed: int, k: int, store):
    """RL4VLA's MultiCarrot-test quirk on an episode of a variant whose target and distractor objects are both drawn
    from the unseen pool: with probability 1/(n-1), the distractor slot repeats the target, so only the target is in
    the scene, at the distractor's cell. Other variants and other episodes are returned unchanged."""
    import numpy as np

    d = getattr(variant, "distractor", None)
    if d is None or d.kind != "object" or d.pool != "unseen" or variant.objects.split != "unseen":
        return spec
    if len(spec.objects) < 2:
        return spec
    n = len(store.ids("object", "unseen"))
    if n < 2 or int(np.random.default_rng([int(seed), int(k), 99]).integers(n - 1)) != 0:
        return spec
    meta = dict(spec.meta, quirk="duplicate_target")
    return replace(spec, objects=spec.objects[:1], object_xy=spec.object_xy[1:2], object_yaw=spec.object_yaw[:1],
                   meta=meta)  # fmt: skip


PROFILES: dict[str, Profile] = {
    "vgb": Profile("vgb", "the benchmark as designed: Panda, 224x224 camera, 100 Hz physics, procedural assets"),
    "rl4vla": Profile(
        "rl4vla",
        "RL4VLA's robot (WidowX-250S, its controller, base pose and initial joints), 5 Hz control on 500 Hz physics, "
        "its 640x480 camera, shader and lighting, assets from an RL4VLA folder, its reposition drop and third-cell "
        "triples, its protocol (temperature 0.6, 3 seeds x 64 episodes); fixed manifests matched to the control arm",
        robot="widowx250s", camera="rl4vla", sim_freq=RL4VLA_SIM_FREQ, lighting="rl4vla", rules="rl4vla", assets="rl4vla",
        reposition="drop", third_cells="rl4vla", episodes=RL4VLA_EPISODES, seeds=RL4VLA_SEEDS, quirks=RL4VLA_QUIRKS,
    ),
    "rl4vla-paper": Profile(
        "rl4vla-paper", "the rl4vla profile with every quirk as the paper had it (random draws, the duplicate-target "
        "bug)", robot="widowx250s", camera="rl4vla", sim_freq=RL4VLA_SIM_FREQ, lighting="rl4vla", rules="rl4vla", assets="rl4vla",
        reposition="drop", third_cells="rl4vla", episodes=RL4VLA_EPISODES, seeds=RL4VLA_SEEDS, quirks=PAPER_QUIRKS,
    ),
}  # fmt: skip


def get_profile(spec: str | Profile, options: ProfileOptions | None = None) -> Profile:
    """A profile by name (or run.json's ``name:key=value,...`` string), with ``options`` changing its settings.

    Raises:
        ProfileError: an unknown profile (did-you-mean) or setting, a value it does not take.
    """
    if isinstance(spec, Profile):
        name, given, prof = spec.name.partition(":")[0], {}, spec
    else:
        name, _, rest = str(spec).partition(":")
        name = name.strip()
        if name not in PROFILES:
            close = difflib.get_close_matches(name, list(PROFILES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ProfileError(f"unknown profile {name!r}{hint}; allowed: {', '.join(PROFILES)}")
        prof = PROFILES[name]
        given = ProfileOptions.parse(rest).given() if rest.strip() else {}
    given = {**given, **(options.given() if options is not None else {})}
    if not given:
        return prof
    merged = ProfileOptions(**given)
    quirks = {k: v for k, v in given.items() if k not in SWITCHES}
    switches = {k: v for k, v in given.items() if k in SWITCHES}
    return replace(prof, name=f"{name}:{merged.text()}", quirks=replace(prof.quirks, **quirks), **switches)
