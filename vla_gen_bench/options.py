"""``key=value`` command-line options (``--policy-arg``, ``--set``), shared by every command that takes them."""

from __future__ import annotations

import json
from typing import Any


def parse_key_values(items, flag: str = "--policy-arg") -> dict[str, Any]:
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
