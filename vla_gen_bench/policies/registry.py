"""Resolve a ``--policy`` string to a Policy: ``scripted``, ``random``, ``zero``, ``openvla:<dir>``,
``ws://host:port`` (openpi websocket client) or ``package.module:ClassName`` (your own class)."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from vla_gen_bench.policies.base import Policy

BUILTIN = ("scripted", "scripted-smooth", "random", "zero")
FORMS = "scripted | scripted-smooth | random | zero | openvla:<checkpoint dir> | ws://host:port | package.module:ClassName"


class PolicyError(ValueError):
    """A --policy string that cannot be resolved; the message says what is accepted."""


def resolve_policy(spec: str, **kwargs: Any) -> Policy:
    """Build the policy a ``--policy`` string names. ``kwargs`` go to adapters that accept them."""
    if spec == "scripted":
        from vla_gen_bench.policies.scripted import ScriptedPolicy

        return ScriptedPolicy()
    if spec == "scripted-smooth":
        from vla_gen_bench.policies.scripted import SmoothScriptedPolicy

        return SmoothScriptedPolicy()
    if spec == "random":
        from vla_gen_bench.policies.simple import RandomPolicy

        return RandomPolicy(seed=int(kwargs.get("seed", 0)))
    if spec == "zero":
        from vla_gen_bench.policies.simple import ZeroPolicy

        return ZeroPolicy()
    if spec.startswith("openvla:"):
        try:
            from vla_gen_bench.policies.openvla import OpenVLAPolicy
        except ImportError as e:
            raise PolicyError(f"the OpenVLA adapter is not available in this version ({e})") from e

        from vla_gen_bench.models.checkpoint import CheckpointError

        try:
            return OpenVLAPolicy.from_path(spec.split(":", 1)[1], **kwargs)
        except CheckpointError as e:
            raise PolicyError(f"--policy {spec}: {e}") from e
    if spec.startswith(("ws://", "wss://")):
        try:
            from vla_gen_bench.policies.remote import RemotePolicy
        except ImportError as e:
            raise PolicyError(f"remote policies are not available in this version ({e})") from e
        from vla_gen_bench.policies.remote import RemotePolicyError

        try:
            return RemotePolicy(spec, **kwargs)
        except RemotePolicyError as e:
            raise PolicyError(str(e)) from e
    if ":" in spec and not spec.startswith(("/", ".")):
        module, _, name = spec.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise PolicyError(f"cannot import module {module!r} for --policy {spec!r}: {e}") from e
        cls = getattr(mod, name, None)
        if cls is None:
            raise PolicyError(f"module {module!r} has no attribute {name!r} (--policy {spec!r})")
        policy = cls(**kwargs) if kwargs else cls()
        missing = [m for m in ("reset", "act") if not callable(getattr(policy, m, None))]
        if missing:
            raise PolicyError(
                f"{spec} does not implement the Policy protocol: missing {', '.join(missing)}()"
            )
        return policy
    close = difflib.get_close_matches(spec, BUILTIN, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise PolicyError(f"unknown policy {spec!r}{hint}; accepted forms: {FORMS}")
