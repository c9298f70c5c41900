"""The options of the policy a run drives (:class:`PolicyOptions`, ``--policy.<name>``), and the deprecated
command-line spellings kept for one release (``--policy-arg k=v``, ``--set k=v``, ``--profile name:k=v`` and the
shortcut flags), each rewritten to its typed flag with one line on stderr saying the new spelling.

Training passes a :class:`PolicyOptions` to evaluation as an object; nothing is formatted into a string to be parsed
again. The command line is the only place text becomes options.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Annotated, Any, Literal

try:  # the command line's reading of --policy.extra; benchmarks/gpu_openvla.py imports the configs without tyro
    from tyro.constructors import PrimitiveConstructorSpec
except ImportError:  # pragma: no cover - exercised by tests/test_gpu_benchmark.py
    PrimitiveConstructorSpec = None


class PolicyOptionError(ValueError):
    """A policy option of the wrong type or out of range; the message names the flag and what it takes."""


def parse_key_values(items, flag: str = "--policy.extra") -> dict[str, Any]:
    """``["seed=3", "name=x"]`` -> ``{"seed": 3, "name": "x"}`` (values parsed as JSON when they are JSON).

    Raises:
        ValueError: an item without ``=`` or with an empty key; the message names ``flag``.
    """
    out: dict[str, Any] = {}
    for kv in items:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} must be key=value, got {kv!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# KEY=VALUE ... on the command line <-> a dict (``--policy.extra speed=2 name=x``)
KEY_VALUES = (
    PrimitiveConstructorSpec(
        nargs="*",
        metavar="KEY=VALUE",
        instance_from_str=lambda args: parse_key_values(args),
        is_instance=lambda x: isinstance(x, dict),
        str_from_instance=lambda d: [f"{k}={json.dumps(v)}" for k, v in d.items()],
    )
    if PrimitiveConstructorSpec is not None
    else None
)


@dataclass(frozen=True)
class PolicyOptions:
    """Options of the policy a run drives (``--policy.<name>``), handed to its adapter as keyword arguments.

    An option is None until it is given; a policy then uses its own default, stated here once. Only the options
    given reach the adapter and run.json's ``policy_args``, so a ``module:Class`` policy is never handed an option
    it did not ask for, and a profile can fill in what the command left out (rl4vla: temperature 0.6).
    """

    temperature: float | None = None
    """Action sampling temperature: 0 = greedy (the default); > 0 samples, each step's random numbers keyed by
    (seed, variant, manifest seed, episode, step). Not given, a run under a profile uses its protocol's (rl4vla:
    0.6). RL rollouts sample, so their recipes set it (RL4VLA: 1.0)."""
    seed: int | None = None
    """Seed of a sampling policy's random numbers (openvla:, random; default 0)."""
    unnorm_key: str | None = None
    """OpenVLA: which dataset statistics de-normalise actions (default: the checkpoint's only key)."""
    execute: int | None = None
    """OpenVLA, chunking checkpoints: how many actions of each decoded chunk run before the next forward pass
    (1 .. chunk; 0 = the whole chunk; default: the checkpoint's ``vgb.execute``, else the whole chunk)."""
    decode: Literal["actions", "unconstrained"] | None = None
    """OpenVLA: ``actions`` (only the 256 action tokens can be emitted; the default) or ``unconstrained`` (any
    token, decoded as the official ``predict_action`` does; docs/openvla.md §4)."""
    device: str | None = None
    """OpenVLA: auto (the default: CUDA when present), cpu, cuda:0 ..."""
    dtype: str | None = None
    """OpenVLA: auto (the default: bf16 on CUDA, fp32 on CPU), float32, bfloat16."""
    lora: str | None = None
    """OpenVLA: a peft adapter folder merged into the weights (default: none)."""
    center_crop: bool | None = None
    """OpenVLA: crop 90 % of the image area first, for fine-tunes trained with random crops (default: no)."""
    fingerprint: bool | None = None
    """OpenVLA: record a sha256 of the checkpoint files in the run's policy metadata (default: yes)."""
    extra: Annotated[dict[str, Any], KEY_VALUES] = field(default_factory=dict)
    """Other keyword arguments of the policy's constructor (a ``module:Class`` policy, the ``ws://`` client) as
    KEY=VALUE, values read as JSON when they are JSON: ``--policy.extra speed=2 name=x``."""

    def __post_init__(self):
        def bad(name: str, takes: str) -> PolicyOptionError:
            return PolicyOptionError(f"--policy.{name.replace('_', '-')} takes {takes}, got "
                                     f"{getattr(self, name)!r}")  # fmt: skip

        t = self.temperature
        if t is not None:
            if isinstance(t, bool) or not isinstance(t, int | float) or not t >= 0:
                raise bad("temperature", "a number >= 0 (0 = greedy)")
            object.__setattr__(self, "temperature", float(t))
        for name in ("seed", "execute"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise bad(name, "an integer >= 0")
        if self.decode not in (None, "actions", "unconstrained"):
            raise bad("decode", "'actions' or 'unconstrained'")
        for name in ("unnorm_key", "device", "dtype", "lora"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise bad(name, "a string")
        for name in ("center_crop", "fingerprint"):
            if getattr(self, name) not in (None, True, False):
                raise bad(name, "true or false")
        if not isinstance(self.extra, dict):
            raise bad("extra", "KEY=VALUE pairs")
        typed = [k for k in self.extra if k in self.names()]
        if typed:
            raise PolicyOptionError(f"--policy.extra {typed[0]}=...: {typed[0]} is a policy option of its own; "
                                    f"pass --policy.{typed[0].replace('_', '-')} instead")  # fmt: skip

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The typed options (every field but ``extra``)."""
        return tuple(f.name for f in fields(cls) if f.name != "extra")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any] | None) -> PolicyOptions:
        """Options from keyword arguments (run.json's ``policy_args``): typed names to their fields, the rest to
        ``extra``."""
        kwargs = dict(kwargs or {})
        typed = {k: kwargs.pop(k) for k in cls.names() if k in kwargs}
        return cls(**typed, extra=kwargs)

    def kwargs(self) -> dict[str, Any]:
        """The options given, as the adapter's keyword arguments (and run.json's ``policy_args``)."""
        out = {k: getattr(self, k) for k in self.names() if getattr(self, k) is not None}
        return {**out, **self.extra}

    def with_defaults(self, **defaults: Any) -> PolicyOptions:
        """These options, with ``defaults`` filling the ones not given (a profile's protocol, a caller's device)."""
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})


# ---------------------------------------------------------------------------------------------- profile
class ProfileError(ValueError):
    """Unknown profile or quirk, or a profile whose files are missing; the message says what to do."""


@dataclass(frozen=True)
class ProfileOptions:
    """The profile's settings changed one by one (``--profile rl4vla --profile.random-episodes True``); None keeps
    the profile's. What each one does: ``vla_gen_bench.eval.profiles`` (``Quirks``, ``Profile``)."""

    eval_temperature: float | None = None
    """The protocol's sampling temperature for openvla: policies not given --policy.temperature (Quirks)."""
    success: Literal["at_end", "once"] | None = None
    """Which success a record scores: at the final step, or at any step (Quirks)."""
    duplicate_target: bool | None = None
    """RL4VLA's MultiCarrot test bug: the distractor repeats the target in 1 of (n-1) episodes (Quirks)."""
    random_episodes: bool | None = None
    """Each variant draws its episodes independently, unmatched to the control arm, as the paper (Quirks)."""
    reposition: Literal["place", "drop"] | None = None
    """Mid-episode reposition: set down (place) or RL4VLA's drop (Profile)."""
    third_cells: Literal["vgb", "rl4vla"] | None = None
    """Cells of the distractor / reposition target: ours or RL4VLA's triples (Profile)."""

    def given(self) -> dict[str, Any]:
        """The settings given, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def text(self) -> str:
        """``key=value,...`` as run.json's profile string holds them (``random_episodes=true``)."""
        return ",".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.given().items()
        )

    @classmethod
    def parse(cls, text: str) -> ProfileOptions:
        """``"random_episodes=true,reposition=place"`` (run.json's form; ``--profile rl4vla:k=v`` on the command
        line, deprecated) -> the options.

        Raises:
            ProfileError: an unknown key (did-you-mean), a value of the wrong type.
        """
        names = [f.name for f in fields(cls)]
        out: dict[str, Any] = {}
        for item in text.split(","):
            key, eq, raw = item.partition("=")
            key = key.strip()
            if key not in names or not eq:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProfileError(
                    f"bad quirk {item.strip()!r}{hint}: expected key=value with key in {', '.join(names)}"
                )
            out[key] = _parse_setting(key, raw.strip())
        return cls(**out)


def _parse_setting(key: str, raw: str) -> Any:
    if key in ("duplicate_target", "random_episodes"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ProfileError(f"quirk {key} is true/false, got {raw!r}")
    if key == "eval_temperature":
        try:
            return float(raw)
        except ValueError:
            raise ProfileError(f"quirk {key} is a number, got {raw!r}") from None
    return raw


# ---------------------------------------------------------------------------------------------- deprecated spellings
def _tyro_tokens(value: Any) -> list[str]:
    """A JSON value as tyro reads it from the command line."""
    if isinstance(value, bool) or value is None:
        return [str(value)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tyro_tokens(v)]
    if isinstance(value, dict):
        return [f"{k}={json.dumps(v)}" for k, v in value.items()]
    return [str(value)]


def _tokens(value: Any, item: str) -> list[str]:
    """The tokens of ``key=value`` item's value: a number as it was typed (``1e-4``), anything else as tyro reads it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [item.partition("=")[2]]
    return _tyro_tokens(value)


def _flag(path: str) -> str:
    return "--" + path.replace("_", "-")


def _take(args: list[str], i: int, old: str) -> tuple[str, int]:
    """The value of the option at ``args[i]`` (``--old value`` or ``--old=value``) and the index after it."""
    if args[i].startswith(old + "="):
        return args[i][len(old) + 1 :], i + 1
    if i + 1 >= len(args):
        raise ValueError(f"{old} needs a value")
    return args[i + 1], i + 2


def _check_path(target, path: str, flag: str) -> None:
    """Refuse a dotted setting ``path`` that is not a field of the dataclass ``target`` (did-you-mean)."""
    cls = target
    parts = path.split(".")
    for i, part in enumerate(parts):
        names = {f.name: f for f in fields(cls)}
        if part not in names:
            close = difflib.get_close_matches(part, list(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = ".".join(parts[:i])
            raise ValueError(f"{flag} {path}=...: unknown setting {where + '.' if where else ''}{part!r}{hint}; "
                             f"allowed: {', '.join(names)}")  # fmt: skip
        if i < len(parts) - 1:
            default = _field_default(names[part])
            if not is_dataclass(default):
                raise ValueError(f"{flag} {path}=...: {part!r} has no settings of its own")
            cls = type(default)


def _field_default(f):
    from dataclasses import MISSING

    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def upgrade_args(
    args: list[str],
    renames: dict[str, str] | None = None,
    policy_arg: str | None = None,
    sets: type | None = None,
    profile: bool = False,
) -> tuple[list[str], list[str]]:
    """Rewrite the deprecated spellings in ``args`` to the typed flags; returns (new args, one note per rewrite).

    Args:
        renames: old flag -> new flag, both taking one value (``--unnorm-key`` -> ``--policy.unnorm-key``).
        policy_arg: the prefix ``--policy-arg k=v`` becomes (``--policy.``): typed options get their own flag,
            other keys go to ``<prefix>extra``.
        sets: the dataclass ``--set key=value`` overrides (nested with dots): ``--set rollout.workers=1`` becomes
            ``--rollout.workers 1``, placed first so that flags given as flags win, as before.
        profile: rewrite ``--profile name:k=v,...`` to ``--profile name --profile.k v ...``.

    Raises:
        ValueError: a malformed deprecated option, or a ``--set`` key the command does not have (did-you-mean).
    """
    renames = renames or {}
    out: list[str] = []
    front: list[str] = []
    notes: list[str] = []
    extras: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        name = a.split("=", 1)[0]
        if a in ("--", "-h", "--help") or not a.startswith("--"):
            out.append(a)
            i += 1
        elif name in renames:
            value, i = _take(args, i, name)
            out += [renames[name], value]
            notes.append(f"{name} is deprecated; use {renames[name]} {value}")
        elif policy_arg and name == "--policy-arg":
            value, i = _take(args, i, name)
            (key, v), = parse_key_values([value], "--policy-arg").items()  # fmt: skip
            if key in PolicyOptions.names():
                new = [policy_arg + key.replace("_", "-"), *_tokens(v, value)]
                out += new
            else:  # gathered below: one --policy.extra flag holds every pair
                extras.append(value)
                new = [policy_arg + "extra", value]
            notes.append(f"--policy-arg {value} is deprecated; use {' '.join(new)}")
        elif sets is not None and name == "--set":
            value, i = _take(args, i, name)
            (key, v), = parse_key_values([value], "--set (e.g. lr=1e-4, rollout.workers=1)").items()  # fmt: skip
            _check_path(sets, key, "--set")
            new = [_flag(key), *_tokens(v, value)]
            front += new
            notes.append(f"--set {value} is deprecated; use {' '.join(new)}")
        elif profile and name == "--profile":
            value, i = _take(args, i, name)
            base, sep, rest = value.partition(":")
            if not sep or not rest.strip():
                out += [name, value]
                continue
            new = ["--profile", base.strip()]
            for item in rest.split(","):
                key, eq, raw = item.partition("=")
                if not eq or not key.strip():
                    raise ValueError(f"--profile {value}: expected name:key=value,... (e.g. rl4vla:random_episodes="
                                     f"true), got {item.strip()!r}")  # fmt: skip
                new += [f"--profile.{key.strip().replace('_', '-')}", _profile_token(raw.strip())]
            out += new
            notes.append(f"--profile {value} is deprecated; use {' '.join(new)}")
        else:
            out.append(a)
            i += 1
    if extras:  # one flag holds every pair (tyro keeps only the last of a repeated flag)
        flag = policy_arg + "extra"
        rest, values = _split_flag(out, flag)
        out = [*rest, flag, *values, *extras]
    return front + out, notes


def _profile_token(raw: str) -> str:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return "True"
    if low in ("0", "false", "no", "off"):
        return "False"
    return raw


def _split_flag(args: list[str], flag: str) -> tuple[list[str], list[str]]:
    """``args`` without ``flag`` and the values that follow it (up to the next option), and those values."""
    rest, values, taking = [], [], False
    for a in args:
        if a == flag:
            taking = True
        elif taking and not a.startswith("--"):
            values.append(a)
        else:
            taking = False
            rest.append(a)
    return rest, values


# ---------------------------------------------------------------------------- --render-device
# Checked here, in a leaf module, so that a malformed value is refused before anything imports the simulator.
RENDER_DEVICE_CHOICES = "auto | cpu | cuda | cuda:<i>"


class RenderDeviceError(ValueError):
    """A --render-device value that is malformed or names no device this machine can render with."""


def check_render_device(value: str) -> None:
    """Refuse a malformed ``--render-device`` (RenderDeviceError) without touching Vulkan."""
    if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value):
        return
    hint = "'auto' renders on the GPU when it has a Vulkan driver, else with lavapipe"
    if value.startswith("pci:"):
        hint = "ManiSkill 3.0.1 cannot take a pci: device; name the GPU by its CUDA index"
    elif value in ("gpu", "lavapipe", "llvmpipe"):
        hint = f"did you mean '{'cuda' if value == 'gpu' else 'cpu'}'?"
    raise RenderDeviceError(f"--render-device {value!r} is not one of {RENDER_DEVICE_CHOICES}; {hint}")
