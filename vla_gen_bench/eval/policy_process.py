"""One policy process serving many simulator workers (``vgb evaluate --workers N`` with a batched policy).

The model is loaded once, in a child process (on the GPU when there is one), behind ``vgb serve``'s websocket
server bound to 127.0.0.1 on a free port with dynamic batching. Each simulator worker talks to it through the same
openpi client as ``--policy ws://...``, so the path from an observation to an action is the one users get from
``vgb serve`` too. Per-episode state (instruction, action chunks, the sampling key of each step) stays with the
workers; the server holds only the model.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any


class PolicyProcessError(RuntimeError):
    """The policy process failed to start or died; the message says what happened and how to resume."""


BIG_CHECKPOINT_BYTES = 2 * 2**30  # N copies of a bigger model would not fit in a CPU machine's memory


def wants_policy_process(policy, workers: int, num_envs: int, mode: str, gpu: bool | None = None) -> bool:
    """Whether ``vgb evaluate`` should serve the policy from one process (``--policy-server auto|on|off``).

    ``auto``: yes for ``openvla:<dir>`` and ``module:Class`` policies whose class defines ``act_batch``, when there
    are several simulator workers of one env each **and** there is a GPU (``gpu``; default: CUDA is available) or the
    checkpoint is over 2 GiB (one copy per worker would not fit). Without a GPU a small model is cheaper copied into
    each worker: on a 2-core machine the extra process competes with the simulators for the cores (measured in
    ``benchmarks/eval_throughput.py``). Scripted, random and remote policies keep running in the workers.
    ``on`` asks for it and refuses a policy that cannot be batched. ``policy``: the run's ``PolicySpec`` (or its
    ``--policy`` string).
    """
    if mode == "off" or workers < 2 or num_envs > 1:
        if mode == "on" and (workers < 2 or num_envs > 1):
            raise ValueError("--policy-server on needs --workers >= 2 and --num-envs 1 (with --num-envs > 1 each "
                             "worker already batches its envs through its own model)")  # fmt: skip
        return False
    ok = batchable(policy)
    if mode == "on" and not ok:
        raise ValueError(f"--policy-server on: {policy!r} cannot be batched (it needs an act_batch(images, "
                         "instructions) method: openvla:<dir> or a module:Class that defines one)")  # fmt: skip
    if mode == "on" or not ok:
        return ok
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    return gpu or checkpoint_bytes(policy) > BIG_CHECKPOINT_BYTES


def checkpoint_bytes(policy) -> int:
    """Size of the weights an ``openvla:<dir>`` policy loads (0 for other policies or a missing folder)."""
    from pathlib import Path

    from vla_gen_bench.policies.registry import PolicySpec

    spec = PolicySpec.parse(policy)
    if spec.kind != "openvla":
        return 0
    folder = Path(spec.path)
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0


def batchable(policy) -> bool:
    """Whether the policy (a ``PolicySpec`` or ``--policy`` string) declares batches (checked without building it)."""
    from vla_gen_bench.policies.base import supports_batches
    from vla_gen_bench.policies.registry import PolicyError, PolicySpec, policy_class

    try:
        spec = PolicySpec.parse(policy)
        if spec.kind != "plugin":
            return spec.kind == "openvla"
        return supports_batches(policy_class(spec))
    except PolicyError:  # check_policy / resolve_policy report it properly
        return False


def _main(spec, options, max_batch: int, max_wait_ms: float | None, conn) -> None:
    """Child process: build the policy once, serve it on 127.0.0.1, report the port (or the error) to the parent.

    Messages: ``("loading",)`` once vgb is imported, ``("built",)`` once the policy is built (the parent's
    --policy-timeout runs in between), ``("ready", port, metadata)`` once it serves; ``("error", "Type: message",
    traceback)`` instead at any point."""
    import logging
    import traceback

    logging.basicConfig(level=logging.WARNING, format="[policy process] %(levelname)s %(message)s")
    try:
        from vla_gen_bench.eval.guard import construct
        from vla_gen_bench.policies.registry import resolve_policy
        from vla_gen_bench.policies.serve import PolicyServer

        conn.send(("loading",))
        # no watchdog here: the parent times the load and ends this process
        p = construct(lambda: resolve_policy(spec, options), str(spec), None)
        conn.send(("built",))
        server = PolicyServer(p, "127.0.0.1", 0, name=str(spec), max_batch=max_batch, max_wait_ms=max_wait_ms,
                              on_ready=lambda port: conn.send(("ready", port, server.metadata)))  # fmt: skip
        server.serve_forever()
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which decides
        try:
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass


# at least this long for the child to import vgb, and to start serving once the policy is built
STARTUP_S = 300.0


class PolicyProcess:
    """The child process holding the model; ``url`` is what the workers connect to."""

    def __init__(
        self, spec, options, max_batch: int, max_wait_ms: float | None, start_timeout_s: float = 600.0
    ):
        """Start the child and wait until it serves.

        Args:
            spec / options: the policy (a ``PolicySpec``) and its ``PolicyOptions``, handed to the child as they are.
            start_timeout_s: seconds building the policy may take (``--policy-timeout``; a 7B checkpoint can take
                minutes). The child's own start-up (importing vgb) may take at least :data:`STARTUP_S`.

        Raises:
            PolicyError: the policy was refused (bad checkpoint, unknown unnorm key, ...), as in-process.
            PolicyProcessError: the load timed out, raised, or the child died; the child is ended.
        """
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        self.policy = str(spec)
        self.proc = ctx.Process(target=_main, args=(spec, options, max_batch, max_wait_ms, child), daemon=True,
                                name="vgb-policy")  # fmt: skip
        self.proc.start()
        child.close()
        t0 = time.monotonic()
        try:
            msg = self._wait(parent, max(STARTUP_S, start_timeout_s), "start")
            if msg[0] == "loading":
                msg = self._wait(parent, start_timeout_s, "load")
            if msg[0] == "built":
                msg = self._wait(parent, max(STARTUP_S, start_timeout_s), "serve")
        except BaseException:
            self.close()
            raise
        if msg[0] == "error":
            self.close()
            from vla_gen_bench.policies.registry import PolicyError

            kind, _, text = msg[1].partition(": ")
            if kind == "PolicyError":  # the same refusal an in-process load gives
                raise PolicyError(text)
            if kind == "PolicyCallError":  # the constructor raised: the message names it and its file:line
                raise PolicyProcessError(f"{text} (in the policy process); nothing was run")
            raise PolicyProcessError(f"the policy process for {self.policy} failed while starting: {msg[1]}; nothing was "
                                     "run")  # fmt: skip
        self.port, self.metadata = msg[1], msg[2]
        self.url = f"ws://127.0.0.1:{self.port}"
        self.load_s = round(time.monotonic() - t0, 1)

    def _wait(self, conn, timeout_s: float, stage: str) -> tuple:
        """The child's next message, waiting at most ``timeout_s``; PolicyProcessError if it dies or is late."""
        from vla_gen_bench.eval.guard import construction_timeout

        deadline = time.monotonic() + timeout_s
        while not conn.poll(min(1.0, max(deadline - time.monotonic(), 0.0))):
            if not self.proc.is_alive() and not conn.poll(0):
                self.proc.join(timeout=5)
                raise PolicyProcessError(f"the policy process for {self.policy} exited with code {self.proc.exitcode} "
                                         "while loading the model (out of memory?); nothing was run")  # fmt: skip
            if time.monotonic() >= deadline:
                if stage == "load":
                    raise PolicyProcessError(
                        construction_timeout(self.policy, timeout_s, " in the policy process")
                    )
                raise PolicyProcessError(f"the policy process for {self.policy} did not start within {timeout_s:g} s "
                                         "(is the machine overloaded?); nothing was run")  # fmt: skip
        try:
            return conn.recv()
        except EOFError:
            self.proc.join(timeout=5)
            raise PolicyProcessError(f"the policy process for {self.policy} exited with code "
                                     f"{self.proc.exitcode} while loading the model (out of memory?); nothing "
                                     "was run") from None  # fmt: skip

    def alive(self) -> bool:
        return self.proc.is_alive()

    def died(self) -> PolicyProcessError | None:
        """An error describing the death of the process, or None while it runs."""
        if self.proc.is_alive():
            return None
        return PolicyProcessError(f"the policy process serving {self.policy} died (exit code {self.proc.exitcode}; "
                                  "killed, or out of memory?). Finished episodes are saved: re-run the same command "
                                  "to resume")  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """The server's batch statistics (empty when it cannot be asked)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return {}

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=10)
            if self.proc.is_alive():
                self.proc.kill()
