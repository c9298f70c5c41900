"""The ``--policy`` string, parsed once into a :class:`PolicySpec`, and the Policy it names: ``scripted``,
``scripted-smooth``, ``random``, ``zero``, ``openvla:<dir>``, ``ws://host:port`` (openpi websocket client) or
``package.module:ClassName`` (your own class). Options reach the adapter as a :class:`PolicyOptions`."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from dataclasses import dataclass
from typing import Any, Literal

from vla_gen_bench.options import PolicyOptions
from vla_gen_bench.policies.base import Policy

BUILTIN = ("scripted", "scripted-smooth", "random", "zero")
BUILTIN_OPTIONS: dict[str, tuple[str, ...]] = {
    "scripted": (),
    "scripted-smooth": (),
    "random": ("seed",),
    "zero": (),
}
FORMS = (
    "scripted | scripted-smooth | random | zero | openvla:<checkpoint dir> | lerobot:<checkpoint dir> | "
    "ws://host:port | package.module:ClassName"
)


class PolicyError(ValueError):
    """A --policy string that cannot be resolved; the message says what is accepted."""


PolicyKind = Literal["scripted", "scripted-smooth", "random", "zero", "openvla", "lerobot", "ws", "plugin"]


@dataclass(frozen=True)
class PolicySpec:
    """What a ``--policy`` string names, parsed once by :meth:`parse`; ``str(spec)`` gives that string back (what
    run.json records as ``policy``)."""

    kind: PolicyKind
    """A built-in (scripted, scripted-smooth, random, zero), openvla (a checkpoint folder), ws (a policy server) or
    plugin (a class of yours)."""
    path: str | None = None
    """openvla: the checkpoint folder, as given."""
    url: str | None = None
    """ws: ``ws://host:port`` or ``wss://...``, with its client options (``?timeout=600&map=...``)."""
    module: str | None = None
    """plugin: the dotted module name."""
    cls: str | None = None
    """plugin: the class name (dotted inside the module)."""

    @classmethod
    def parse(cls, text: str | PolicySpec) -> PolicySpec:
        """The spec of a ``--policy`` string (a spec is returned as it is).

        Raises:
            PolicyError: an unknown form (with a did-you-mean), ``openvla:`` without a folder, a ``module:Class``
                whose names are not dotted Python names.
        """
        if isinstance(text, PolicySpec):
            return text
        text = str(text)
        if text in BUILTIN:
            return cls(text)
        if text.startswith("openvla:"):
            path = text[len("openvla:") :]
            if not path:
                raise PolicyError("--policy openvla: needs the checkpoint folder: openvla:<folder with config.json "
                                  "and model.safetensors>")  # fmt: skip
            return cls("openvla", path=path)
        if text.startswith("lerobot:"):  # a LeRobot checkpoint, served from LeRobot's environment
            if not text[len("lerobot:") :]:
                raise PolicyError("--policy lerobot: needs the checkpoint folder: lerobot:<folder with config.json and "
                                  "model.safetensors>")  # fmt: skip
            return cls("lerobot", path=text[len("lerobot:") :])
        if text.startswith(("ws://", "wss://")):
            return cls("ws", url=text)
        if ":" in text and not text.startswith(("/", ".")):
            module, _, name = text.partition(":")
            if (
                not module
                or not name
                or not all(p.isidentifier() for p in [*module.split("."), *name.split(".")])
            ):
                raise PolicyError(
                    f"--policy {text!r}: expected package.module:ClassName (dotted Python names)"
                )
            return cls("plugin", module=module, cls=name)
        raise _unknown(text)

    def __str__(self) -> str:
        if self.kind in ("openvla", "lerobot"):
            return f"{self.kind}:{self.path}"
        if self.kind == "ws":
            return str(self.url)
        if self.kind == "plugin":
            return f"{self.module}:{self.cls}"
        return self.kind


def resolve_policy(
    spec: PolicySpec | str, options: PolicyOptions | dict[str, Any] | None = None, **kwargs: Any
) -> Policy:
    """Build the policy ``spec`` names, with ``options`` (a dict is read as run.json's ``policy_args``) and
    ``kwargs`` (e.g. ``timeout_s`` of the ws:// client) as its adapter's keyword arguments."""
    spec = PolicySpec.parse(spec)
    if not isinstance(options, PolicyOptions):
        options = PolicyOptions.from_kwargs(options)
    kwargs = {**options.kwargs(), **kwargs}
    if spec.kind == "scripted":
        from vla_gen_bench.policies.scripted import ScriptedPolicy

        return ScriptedPolicy()
    if spec.kind == "scripted-smooth":
        from vla_gen_bench.policies.scripted import SmoothScriptedPolicy

        return SmoothScriptedPolicy()
    if spec.kind == "random":
        from vla_gen_bench.policies.simple import RandomPolicy

        return RandomPolicy(**({"seed": int(kwargs["seed"])} if kwargs.get("seed") is not None else {}))
    if spec.kind == "zero":
        from vla_gen_bench.policies.simple import ZeroPolicy

        return ZeroPolicy()
    if spec.kind == "openvla":
        try:
            from vla_gen_bench.policies.openvla import OpenVLAPolicy
        except ImportError as e:
            raise PolicyError(f"the OpenVLA adapter is not available in this version ({e})") from e

        from vla_gen_bench.models.checkpoint import CheckpointError

        try:
            return OpenVLAPolicy.from_path(spec.path, **kwargs)
        except CheckpointError as e:
            raise PolicyError(f"--policy {spec}: {e}") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # unnorm-key errors, inconsistent norm stats, a config.json that is not UTF-8 JSON, a bad option value
            raise PolicyError(
                f"--policy {spec}: {type(e).__name__}: {e} (check the checkpoint's config.json / "
                "dataset_statistics.json and the --policy.<option> values)"
            ) from e
    if spec.kind == "lerobot":
        from vla_gen_bench.lerobot import LerobotEnvError
        from vla_gen_bench.policies.lerobot import LerobotCheckpointError, LerobotPolicy

        try:
            return LerobotPolicy(spec.path, **kwargs)
        except (LerobotCheckpointError, LerobotEnvError) as e:
            raise PolicyError(f"--policy {spec}: {e}") from e
    if spec.kind == "ws":
        try:
            from vla_gen_bench.policies.remote import RemotePolicy
        except ImportError as e:
            raise PolicyError(f"remote policies are not available in this version ({e})") from e
        from vla_gen_bench.policies.remote import RemotePolicyError

        try:
            return RemotePolicy(spec.url, **kwargs)
        except RemotePolicyError as e:
            raise PolicyError(str(e)) from e
    cls = policy_class(spec)
    _check_options(spec, cls, kwargs)
    return cls(**kwargs)


def _unknown(spec: str) -> PolicyError:
    close = difflib.get_close_matches(spec, BUILTIN, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return PolicyError(f"unknown policy {spec!r}{hint}; accepted forms: {FORMS}")


def policy_class(spec: PolicySpec | str) -> type:
    """The class a ``package.module:ClassName`` spec names, checked before anything of it is called: it must be a
    class defining ``reset`` and ``act`` (so ``os:system`` or any other function is refused, never run)."""
    spec = PolicySpec.parse(spec)
    if spec.kind != "plugin":
        raise PolicyError(f"--policy {spec} is not a package.module:ClassName")
    module, name, text = spec.module, spec.cls, str(spec)
    try:
        mod = importlib.import_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - whatever the user's module raises (SystemExit too) is one line
        raise _import_error(text, module, e) from None
    obj: Any = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise PolicyError(f"module {module!r} has no attribute {name!r} (--policy {text!r})")
    if not inspect.isclass(obj):
        raise PolicyError(f"--policy {text!r} names a {type(obj).__name__}, not a class; give the policy class "
                          f"(reset(instruction), act(obs), spec, metadata). Nothing was called")  # fmt: skip
    missing = [m for m in ("reset", "act") if not callable(getattr(obj, m, None))]
    if missing:
        raise PolicyError(f"{text} does not implement the Policy protocol: the class has no "
                          f"{', '.join(m + '()' for m in missing)}")  # fmt: skip
    return obj


def _import_error(spec: str, module: str, e: BaseException) -> PolicyError:
    """One line for a ``module:Class`` whose module does not import: not found (PYTHONPATH hint), a syntax error
    (file:line), or an exception raised while importing it (the line of the user's module it came from)."""
    if (
        isinstance(e, ModuleNotFoundError)
        and e.name
        and (module == e.name or module.startswith(e.name + "."))
    ):
        return PolicyError(f"cannot import module {module!r} for --policy {spec!r} ({e}); is the folder that holds "
                           f"{module.split('.')[0]!r} on PYTHONPATH? e.g. PYTHONPATH=/path/to/that/folder vgb ... "
                           f"(the current directory is {os.getcwd()})")  # fmt: skip
    if isinstance(e, SyntaxError):
        where = f"{e.filename}:{e.lineno}" if e.filename else "an unknown file"
        return PolicyError(f"cannot import module {module!r} for --policy {spec!r}: {type(e).__name__} at {where}: "
                           f"{e.msg}; fix that line (python -m py_compile {e.filename or '<file>'} "
                           "checks it)")  # fmt: skip
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.startswith("<frozen") and f.filename not in (__file__, importlib.__file__)]  # fmt: skip
    at = ""
    if frames:
        # the first frame is the top level of the module being imported (or of its package): the user's file
        user = [f for f in frames if f.filename == frames[0].filename][-1]
        at = f" at {user.filename}:{user.lineno}"
        if frames[-1] is not user:
            at += f" (raised in {frames[-1].filename}:{frames[-1].lineno})"
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    msg = f": {lines[0]}" if lines else ""
    return PolicyError(f"importing module {module!r} for --policy {spec!r} raised {type(e).__name__}{msg}{at}; fix "
                       f"the module or install what it imports (python -c 'import {module}' shows the full "
                       "traceback)")  # fmt: skip


def _refuse_unknown(
    spec: PolicySpec, unknown: list[str], accepted: list[str] | tuple[str, ...]
) -> PolicyError:
    flags = ", ".join(f"--policy.{k.replace('_', '-')}" if k in PolicyOptions.names() else f"--policy.extra {k}=..."
                      for k in unknown)  # fmt: skip
    return PolicyError(f"--policy {spec} does not accept option(s) {', '.join(map(repr, unknown))} ({flags}); it "
                       f"accepts: {', '.join(accepted) or 'none'}")  # fmt: skip


def _check_options(spec: PolicySpec, target: Any, kwargs: dict[str, Any]) -> None:
    """Refuse options the constructor does not accept (before it runs), naming the accepted ones."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise _refuse_unknown(spec, unknown, names)
    try:
        sig.bind_partial(**kwargs)
    except TypeError as e:
        raise PolicyError(f"--policy {spec}: {e}") from None


def check_policy(spec: PolicySpec | str, options: PolicyOptions | dict[str, Any] | None = None) -> None:
    """Validate a policy and its options without building the policy (nothing heavy is loaded and nothing of a
    user's class is called; a ``module:Class`` module is imported).

    Raises:
        PolicyError: unknown form, a module that does not import, a name that is not a policy class, an option the
            adapter does not take, a checkpoint folder that does not exist, a malformed ws:// URL.
    """
    spec = PolicySpec.parse(spec)
    kwargs = (options if isinstance(options, PolicyOptions) else PolicyOptions.from_kwargs(options)).kwargs()
    if spec.kind in BUILTIN:
        allowed = BUILTIN_OPTIONS[spec.kind]
        unknown = [k for k in kwargs if k not in allowed]
        if unknown:
            raise _refuse_unknown(spec, unknown, allowed)
        return
    if spec.kind == "openvla":
        from pathlib import Path

        path = Path(spec.path).expanduser()
        if not path.is_dir():
            raise PolicyError(f"--policy {spec}: checkpoint folder {path} does not exist (openvla:<folder with "
                              "config.json and model.safetensors>)")  # fmt: skip
        return
    if spec.kind == "lerobot":
        from vla_gen_bench.lerobot import LerobotEnvError, lerobot_python
        from vla_gen_bench.policies.lerobot import LerobotCheckpointError, check_checkpoint

        try:
            check_checkpoint(spec.path)
            lerobot_python()
        except (LerobotCheckpointError, LerobotEnvError) as e:
            raise PolicyError(f"--policy {spec}: {e}") from None
        return
    if spec.kind == "ws":
        from vla_gen_bench.policies.remote import RemotePolicyError, split_url_options

        try:
            split_url_options(spec.url)
        except RemotePolicyError as e:
            raise PolicyError(str(e)) from None
        return
    _check_options(spec, policy_class(spec), kwargs)
