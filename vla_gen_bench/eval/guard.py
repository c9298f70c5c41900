"""Every policy call under a timeout, and every policy failure named by variant, seed, episode and step.

:class:`GuardedPolicy` wraps a policy inside a simulator worker. ``act``/``act_batch``/``reset`` run on a daemon
thread that the worker waits for at most ``--policy-timeout`` seconds; a call that does not return in time, or that
raises, becomes a :class:`PolicyCallError` saying where (variant, seed, episode, control step) and what to do. The
error is raised in the worker before its batch returns, and records are written only by the parent after a batch
returns, so a timeout or an exception can never leave a half-written record: finished episodes are kept, the
episodes in flight are simply run again on resume. A hung call's thread is abandoned (Python cannot kill a thread);
being a daemon it ends with the process, which exits after reporting the error.

:func:`construct` puts building the policy (importing its module, its ``__init__``, loading a checkpoint) under the
same watchdog: a constructor that never returns stops the run with one line instead of hanging it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from vla_gen_bench.policies.base import describe_exception as _describe

T = TypeVar("T")


class PolicyCallError(RuntimeError):
    """A policy call that timed out or raised; the message names where and how to resume."""


def construction_timeout(name: str, timeout_s: float, where: str = "") -> str:
    """The one line for a policy whose construction did not finish (shared with the policy process)."""
    return (f"{name}: building the policy{where} did not finish within {timeout_s:g} s (its __init__, its module's "
            f"import or the model load hangs; raise --policy-timeout if the model is just slow to load)")  # fmt: skip


def construct(fn: Callable[[], T], name: str, timeout_s: float | None) -> T:
    """Build a policy, ``fn()`` (e.g. ``resolve_policy`` of the --policy string), under the watchdog.

    ``fn`` runs on a daemon thread that is waited for at most ``timeout_s`` seconds (None: run here, no watchdog). A
    thread stuck in a constructor is abandoned; being a daemon it does not keep the process alive at exit (only a C
    extension that never releases the GIL could still block the process, and no Python code can stop that).

    Args:
        fn: builds and returns the policy.
        name: the ``--policy`` string (for messages).
        timeout_s: seconds the construction may take (the ``--policy-timeout``).

    Returns:
        What ``fn`` returned.

    Raises:
        PolicyError: unchanged from ``fn`` (a refused policy string, option or checkpoint).
        PolicyCallError: ``fn`` did not return in time, or raised anything else (named with its file:line).
    """
    from vla_gen_bench.policies.registry import PolicyError

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread below
            box["err"] = e

    if timeout_s is None:
        run()
    else:
        t = threading.Thread(target=run, name="vgb-policy-init", daemon=True)
        t.start()
        t.join(timeout_s)
        if t.is_alive():
            raise PolicyCallError(construction_timeout(name, timeout_s))
    if "err" in box:
        e = box["err"]
        if isinstance(e, (PolicyError, KeyboardInterrupt)):
            raise e
        raise PolicyCallError(f"{name}: building the policy raised {_describe(e)}; fix its constructor (or the "
                              f"checkpoint it loads)") from e  # fmt: skip
    return box["out"]


class GuardedPolicy:
    """A policy whose calls are timed and whose failures say where they happened.

    Args:
        inner: the policy.
        name: the ``--policy`` string (for messages).
        timeout_s: seconds one call may take; None = no watchdog (a remote policy has its own timeout).
    """

    def __init__(self, inner: Any, name: str, timeout_s: float | None):
        self._inner = inner
        self._name = name
        self._timeout = timeout_s
        self.where = "the conventions check (control arm, seed 0, episode 0)"
        self.step = 0
        if callable(getattr(inner, "act_batch", None)):  # present only when the inner policy batches
            # keep the inner signature visible (the runner asks whether act_batch takes sample_keys)
            @functools.wraps(inner.act_batch)
            def act_batch(*args: Any, **kwargs: Any) -> Any:
                return self._act_batch(*args, **kwargs)

            self.act_batch = act_batch

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:  # spec, metadata, anything else the runner reads
        return getattr(self._inner, name)

    def reset(self, instruction: str) -> None:
        self.step = 0
        self._call("reset", self._inner.reset, instruction)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        a = self._call("act", self._inner.act, obs)
        self.step += _rows(a)
        return a

    def _act_batch(self, *args: Any, **kwargs: Any) -> Any:
        out = self._call("act_batch", self._inner.act_batch, *args, **kwargs)
        self.step += _rows(out[0]) if len(out) else 1
        return out

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        if self._timeout is None:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                raise self._error(what, e) from e
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread below
                box["err"] = e

        t = threading.Thread(target=run, name=f"vgb-policy-{what}", daemon=True)
        t.start()
        t.join(self._timeout)
        if t.is_alive():
            raise PolicyCallError(f"{self._name}: {what}() did not return within {self._timeout:g} s at {self.where}, "
                                  f"step {self.step} (raise --policy-timeout if the model is just slow)")  # fmt: skip
        if "err" in box:
            e = box["err"]
            if isinstance(e, KeyboardInterrupt):
                raise e
            raise self._error(what, e) from e
        return box["out"]

    def _error(self, what: str, e: BaseException) -> PolicyCallError:
        return PolicyCallError(
            f"{self._name}: {what}() raised {_describe(e)} at {self.where}, step {self.step}"
        )


def _rows(a: Any) -> int:
    n = np.ndim(a)
    return int(np.shape(a)[0]) if n == 2 else 1
