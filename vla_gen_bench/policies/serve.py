"""``vgb serve``: serve any Policy over the openpi websocket protocol (see :mod:`vla_gen_bench.policies.remote`).

On connect the server sends its metadata: ``{"policy": <--policy string>, "action_spec": spec.to_dict(),
"metadata": policy.metadata, "vgb_reset_flag": True, "vgb_protocol": 1}``. Each binary frame is one observation
dict; the reply is ``{"actions": array}``. ``GET /healthz`` answers 200 ``ok``. Frames larger than
``max_message_bytes`` close the connection with code 1009 (message too big); the server keeps running.

Reset rule (openpi has no reset message, so both kinds of client work): the policy's ``reset(instruction)`` is called
before answering an observation when (a) it is the first observation on a connection, (b) the observation carries
``"reset": True`` (our client sets it on the first step of every episode), or (c) its instruction differs from the
previous observation's on that connection. A frame ``{"reset": True, "instruction": ...}`` without an ``image`` only
resets and is answered ``{"reset": True}``. The instruction is read from ``instruction``, else ``prompt`` (openpi's
name); ``observation/image`` and ``observation/state`` are accepted for ``image`` and ``state``.

Errors in a request (undecodable frame, missing image, the policy raising) are answered with a text frame holding one
line, ``<ExceptionType>: <message>`` (no traceback: clients never see the server's paths), which openpi clients raise
as an exception, and the connection stays open. The server logs a client's bad frame as one line and an exception of
the policy with its traceback, each at most :data:`LOG_LIMIT` times per :data:`LOG_WINDOW_S` seconds (then one line
counting the rest), so a client sending garbage in a loop cannot fill the disk. One policy object serves all
connections; calls are serialised by a lock, so serve a stateful policy to one client at a time.

**Dynamic batching** (``max_batch > 1`` and a policy that defines ``act_batch``, e.g. ``openvla:<dir>``): observations
from all connections go to one queue; a single loop takes what is queued (up to ``max_batch``), waits at most
``max_wait_ms`` for more unless every open connection already has a request in the batch, and answers them all with
one ``act_batch`` call. While the model runs, new requests queue up and form the next batch, so under load the batch
size follows the number of clients with no tuning. The default wait (``max_wait_ms=None``) is a quarter of the recent
forward-pass time, at most 250 ms: holding a batch for workers that are still stepping their simulator costs less
than the extra forward pass they would otherwise need. Measured on an H200 with OpenVLA-7B and 16 workers, a fixed
5 ms wait let the workers drift into two groups answered alternately (batches of 4 and 12, 21 actions/s).

A batched policy keeps no per-connection state: the instruction travels with each observation and ``reset`` is not
called. A ``sample_key`` (int) in an observation gives that row its own random stream when the policy samples (see
``OpenVLAPolicy.act_batch``); ``vgb evaluate`` sends one per episode step, so batching never changes what is sampled. The protocol is unchanged for openpi clients, which send
one observation per frame as before; the metadata frame says ``"vgb_protocol": 2`` and gives the batching settings.
``GET /stats`` answers JSON: ``requests`` (every well-formed observation or reset frame, batched or not),
``reset_frames`` (image-less reset frames among them), ``failed`` (requests the policy raised on), ``bad_frames``
(frames refused before the policy saw them), and for a batching server ``batches``, ``mean_batch`` and a histogram
of batch sizes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import tyro

from vla_gen_bench.options import PolicyOptions
from vla_gen_bench.policies.base import Policy, supports_batches, takes_sample_keys
from vla_gen_bench.policies.remote import packb, unpackb

log = logging.getLogger(__name__)
DEFAULT_SERVE_MAX_BYTES = 32 * 2**20
# Batching defaults (docs/evaluation.md §6): the batch is cut early once every open connection has a
# request in it, so the wait only matters when some clients are busy stepping their simulator.
DEFAULT_MAX_BATCH = 32
# None = auto: a quarter of the recent forward time (see the module docstring)
DEFAULT_MAX_WAIT_MS: float | None = None
AUTO_WAIT_FRACTION, AUTO_WAIT_CAP_S = 0.25, 0.25
_ALIASES = {"image": "observation/image", "state": "observation/state"}
# at most this many log lines per window for bad frames, and as many for policy exceptions
LOG_LIMIT, LOG_WINDOW_S = 10, 10.0


class RequestError(ValueError):
    """An observation the server cannot pass to the policy."""


def server_metadata(policy: Policy, name: str = "", batching: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata frame for ``policy`` (JSON-safe: anything else in policy.metadata is stringified)."""
    meta = json.loads(json.dumps(getattr(policy, "metadata", {}) or {}, default=str))
    spec = getattr(policy, "spec", None)
    return {
        "policy": name or type(policy).__name__,
        "action_spec": spec.to_dict() if hasattr(spec, "to_dict") else {},
        "metadata": meta,
        "vgb_protocol": 2,
        "vgb_reset_flag": True,
        "batching": batching,
    }


@dataclass
class _Request:
    obs: dict[str, Any]
    conn: int
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the server did: requests received (well-formed frames), failed and refused ones, and how many batches
    of each size the batcher ran."""

    requests: int = 0
    reset_frames: int = 0
    failed: int = 0
    bad_frames: int = 0
    sizes: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        n = sum(self.sizes.values())
        rows = sum(k * v for k, v in self.sizes.items())
        return {"requests": self.requests, "reset_frames": self.reset_frames, "failed": self.failed,
                "bad_frames": self.bad_frames, "batches": n, "mean_batch": round(rows / n, 3) if n else 0.0,
                "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())}}  # fmt: skip


class RateLimitedLog:
    """Log at most ``limit`` lines per ``window_s`` seconds for one kind of event; the events past the limit are
    counted and reported as one line when the window ends (at the next event, or at :meth:`flush`).

    Args:
        logger: where the lines go.
        what: the events' name in the summary line (``"bad frames"``).
        clock: seconds, monotonic (a test passes its own).
    """

    def __init__(self, logger: logging.Logger, what: str, limit: int = LOG_LIMIT, window_s: float = LOG_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.logger, self.what, self.limit, self.window_s, self._clock = logger, what, limit, window_s, clock
        self._start = clock()
        self._shown = 0
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: Any, exc_info: BaseException | None = None) -> bool:
        """Log one event unless the window's limit is reached; True when it was logged."""
        self.flush()
        if self._shown >= self.limit:
            self.suppressed += 1
            return False
        self._shown += 1
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def flush(self) -> None:
        """End the window if it is over, logging how many events it suppressed."""
        now = self._clock()
        if now - self._start < self.window_s:
            return
        if self.suppressed:
            self.logger.warning("... %d more %s suppressed (at most %d lines per %g s)", self.suppressed, self.what,
                                self.limit, self.window_s)  # fmt: skip
        self._start, self._shown, self.suppressed = now, 0, 0


def act_rows(policy: Policy, observations: list[dict[str, Any]]) -> list[np.ndarray]:
    """Answer several observations with ``policy.act_batch`` (one call per image shape): a list of float arrays,
    each (7,) or (chunk, 7). Rows carrying a ``sample_key`` pass it on when ``act_batch`` accepts keys."""
    out: list[np.ndarray | None] = [None] * len(observations)
    keyed = takes_sample_keys(policy.act_batch)
    groups: dict[tuple, list[int]] = {}
    for i, o in enumerate(observations):
        groups.setdefault(tuple(np.shape(o["image"])), []).append(i)
    for rows in groups.values():
        images = np.stack([observations[i]["image"] for i in rows])
        instructions = [observations[i]["instruction"] for i in rows]
        kw = {"sample_keys": [_key(observations[i].get("sample_key")) for i in rows]} if keyed else {}
        a = np.asarray(policy.act_batch(images, instructions, **kw))
        if a.dtype.kind not in "fiu" or a.ndim not in (2, 3) or a.shape[0] != len(rows):
            raise TypeError(f"act_batch returned {a.dtype} actions of shape {a.shape} for {len(rows)} observations; "
                            "expected (B, 7) or (B, chunk, 7) floats")  # fmt: skip
        for j, i in enumerate(rows):
            out[i] = a[j] if a.dtype.kind == "f" else a[j].astype(np.float64)
    return out  # type: ignore[return-value]


def _key(k: Any) -> int | None:
    if k is None:
        return None
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and 0 <= int(k) < 2**63:
        return int(k)
    raise RequestError(f"'sample_key' must be a non-negative integer < 2**63, got {k!r}")


def decode_observation(msg: Any, last_instruction: str | None) -> tuple[dict[str, Any], str, bool]:
    """(observation for the policy, instruction, reset requested) from a decoded frame; RequestError if unusable."""
    if not isinstance(msg, dict):
        raise RequestError(f"an observation must be a msgpack map, got {type(msg).__name__}")
    instruction = msg.get("instruction", msg.get("prompt", last_instruction or ""))
    if not isinstance(instruction, str):
        raise RequestError(f"'instruction'/'prompt' must be a string, got {type(instruction).__name__}")
    reset = msg.get("reset", False) is True
    obs = {k: v for k, v in msg.items() if k not in ("prompt", "reset")}
    for ours, theirs in _ALIASES.items():
        if ours not in obs and theirs in obs:
            obs[ours] = obs.pop(theirs)
    obs["instruction"] = instruction
    if "image" in obs:
        img = obs["image"]
        if not (
            isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        ):
            what = (
                f"{img.dtype} array of shape {img.shape}"
                if isinstance(img, np.ndarray)
                else type(img).__name__
            )
            raise RequestError(f"'image' must be an (H, W, 3) uint8 array, got {what}")
    if "state" in obs and not isinstance(obs["state"], np.ndarray):
        obs["state"] = np.asarray(obs["state"], dtype=np.float32)
    return obs, instruction, reset


class PolicyServer:
    """Websocket server for one policy. ``serve_forever()`` blocks; ``start()`` runs it on a background thread."""

    def __init__(self, policy: Policy, host: str = "127.0.0.1", port: int = 8000,
                 max_message_bytes: int = DEFAULT_SERVE_MAX_BYTES, name: str = "",
                 on_ready: Callable[[int], None] | None = None, max_batch: int = DEFAULT_MAX_BATCH,
                 max_wait_ms: float | None = DEFAULT_MAX_WAIT_MS):  # fmt: skip
        if max_batch < 1 or (max_wait_ms is not None and max_wait_ms < 0):
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0 (got {max_batch}, {max_wait_ms})")
        self.policy = policy
        self.host = host
        self.port = port
        self.max_message_bytes = int(max_message_bytes)
        self.max_batch = int(max_batch)
        self.max_wait_s = None if max_wait_ms is None else float(max_wait_ms) / 1000
        self._forward_s = 0.0  # moving average of one act_batch call
        self.batching = max_batch > 1 and supports_batches(policy)
        self.stats = BatchStats()
        self._queue: asyncio.Queue | None = None
        self._open: set[int] = set()
        self._ids = itertools.count()
        wait = "auto" if max_wait_ms is None else float(max_wait_ms)
        batching = {"max_batch": self.max_batch, "max_wait_ms": wait} if self.batching else None
        self.metadata = server_metadata(policy, name, batching)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._on_ready = on_ready
        self.bad_frame_log = RateLimitedLog(log, "bad frames")
        self.error_log = RateLimitedLog(log, "failed requests")

    # -- lifecycle
    def serve_forever(self) -> None:
        asyncio.run(self._main())

    def start(self, timeout_s: float = 10.0) -> int:
        """Serve on a daemon thread; returns the bound port (useful with ``port=0``)."""

        def run():
            try:
                self.serve_forever()
            except BaseException as e:  # reported to start()'s caller below
                self._error = e
                self._ready.set()

        self._thread = threading.Thread(target=run, name="vgb-policy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"policy server did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        self._queue = asyncio.Queue()
        batcher = asyncio.create_task(self._batch_loop()) if self.batching else None
        flusher = asyncio.create_task(self._flush_logs())
        async with serve(self._handle, self.host, self.port, max_size=self.max_message_bytes, compression=None,
                         process_request=self._http) as server:  # fmt: skip
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            if self._on_ready is not None:
                self._on_ready(self.port)
            await self._stop
        if batcher is not None:
            batcher.cancel()
        flusher.cancel()

    async def _flush_logs(self) -> None:
        """Report suppressed log lines when a window ends, even if no further bad frame comes to trigger it."""
        while True:
            await asyncio.sleep(min(self.bad_frame_log.window_s, self.error_log.window_s))
            self.bad_frame_log.flush()
            self.error_log.flush()

    def _http(self, connection, request):
        import http

        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if request.path == "/stats":
            return connection.respond(http.HTTPStatus.OK, json.dumps(self.stats.to_dict()) + "\n")
        return None

    # -- dynamic batching
    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            wait = self.max_wait_s
            if wait is None:
                wait = min(AUTO_WAIT_FRACTION * self._forward_s, AUTO_WAIT_CAP_S)
            deadline = loop.time() + wait
            while len(batch) < self.max_batch:
                while not self._queue.empty() and len(batch) < self.max_batch:
                    batch.append(self._queue.get_nowait())
                waiting = {r.conn for r in batch}
                remaining = deadline - loop.time()
                if len(batch) >= self.max_batch or waiting >= self._open or remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            batch = [r for r in batch if not r.future.done()]  # a client that left while queued
            if not batch:
                continue
            t0 = loop.time()
            try:
                actions = await asyncio.to_thread(act_rows, self.policy, [r.obs for r in batch])
            except Exception as e:  # noqa: BLE001 - every request of the batch gets the error
                self.error_log.log(logging.ERROR, "policy failed on a batch of %d", len(batch), exc_info=e)
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            dt = loop.time() - t0
            self._forward_s = dt if not self._forward_s else 0.8 * self._forward_s + 0.2 * dt
            self.stats.sizes[len(batch)] += 1
            for r, a in zip(batch, actions, strict=True):
                if not r.future.done():
                    r.future.set_result(a)

    # -- one connection
    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = ws.remote_address
        log.info("connection from %s", peer)
        last: str | None = None
        first = True
        conn = next(self._ids)
        self._open.add(conn)
        try:
            await ws.send(packb(self.metadata))
            while True:
                frame = await ws.recv()
                try:
                    msg, obs, instruction = self._decode(frame, last)
                except Exception as e:  # noqa: BLE001 - the client's bad input: one line, never a traceback
                    self.stats.bad_frames += 1
                    self.bad_frame_log.log(logging.WARNING, "bad frame from %s: %s", peer, client_error(e))
                    await ws.send(client_error(e))
                    continue
                self.stats.requests += 1
                try:
                    reset = msg.get("reset", False) is True or first or instruction != last
                    if "image" not in obs:
                        self.stats.reset_frames += 1
                        if not self.batching:  # a batched policy keeps no per-connection state to reset
                            await asyncio.to_thread(self._reset, instruction)
                        reply: dict[str, Any] = {"reset": True}
                    elif self.batching:
                        fut = asyncio.get_running_loop().create_future()
                        await self._queue.put(_Request(obs, conn, fut))
                        reply = {"actions": await fut}
                    else:
                        actions = await asyncio.to_thread(self._act, obs, instruction, reset)
                        reply = {"actions": actions}
                    data = packb(reply)
                except Exception as e:  # noqa: BLE001 - the policy failed: the client gets one line
                    self.stats.failed += 1
                    self.error_log.log(logging.ERROR, "request from %s failed", peer, exc_info=e)
                    await ws.send(client_error(e))
                    continue
                first, last = False, instruction
                await ws.send(data)
        except ConnectionClosed as e:
            log.info("connection from %s closed (%s)", peer, e)
        finally:
            self._open.discard(conn)

    def _decode(self, frame: Any, last: str | None) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(decoded frame, observation, instruction) from a websocket frame; raises on anything a client got
        wrong (kept apart from the policy's own errors, which are logged with their traceback)."""
        if isinstance(frame, str):
            raise RequestError("expected a binary msgpack frame, got a text frame")
        try:
            msg = unpackb(frame)
        except ValueError as e:
            raise RequestError(f"cannot decode the observation: {e}") from e
        obs, instruction, _ = decode_observation(msg, last)
        if "image" not in obs and msg.get("reset") is not True:
            raise RequestError("observation has no 'image' (nor 'observation/image')")
        if "image" in obs and self.batching:
            _key(obs.get("sample_key"))  # refuse a bad key here, not inside someone else's batch
        return msg, obs, instruction

    def _reset(self, instruction: str) -> None:
        with self._lock:
            self.policy.reset(instruction)

    def _act(self, obs: dict[str, Any], instruction: str, reset: bool) -> np.ndarray:
        with self._lock:
            if reset:
                self.policy.reset(instruction)
            a = np.asarray(self.policy.act(obs))
        if a.dtype.kind not in "fiu":
            raise TypeError(f"the policy returned actions of dtype {a.dtype}; expected floats")
        return a if a.dtype.kind == "f" else a.astype(np.float64)


def client_error(e: BaseException) -> str:
    """The one line a client gets for a failed request: the exception's type and first message line, no paths."""
    lines = [x for x in str(e).strip().splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else '(no message)'}"


def serve(policy: Policy, host: str = "127.0.0.1", port: int = 8000,
          max_message_bytes: int = DEFAULT_SERVE_MAX_BYTES, name: str = "", max_batch: int = DEFAULT_MAX_BATCH,
          max_wait_ms: float = DEFAULT_MAX_WAIT_MS) -> None:  # fmt: skip
    """Serve ``policy`` until interrupted (Ctrl-C)."""
    PolicyServer(policy, host, port, max_message_bytes, name, max_batch=max_batch,
                 max_wait_ms=max_wait_ms).serve_forever()  # fmt: skip


# ---------------------------------------------------------------------------- CLI (wired as `vgb serve`)
@dataclass(frozen=True)
class Serve:
    """Serve a policy over the openpi websocket protocol (point 'vgb evaluate --policy ws://host:port' at it)."""

    policy: str
    """scripted | scripted-smooth | random | zero | openvla:<dir> | package.module:ClassName (anything --policy accepts)"""
    policy_options: Annotated[PolicyOptions, tyro.conf.arg(name="policy")] = field(
        default_factory=PolicyOptions
    )
    """The policy's options (--policy.unnorm-key K, --policy.extra key=value ...), as in 'vgb evaluate'."""
    host: str = "127.0.0.1"
    """Interface to bind: local clients only by default; 0.0.0.0 accepts clients from other machines (anyone who
    can reach the port can then query the policy)."""
    port: int = 8000
    max_message_bytes: int = DEFAULT_SERVE_MAX_BYTES
    """Largest observation frame accepted; bigger ones close the connection with code 1009."""
    max_batch: int = DEFAULT_MAX_BATCH
    """Largest batch of observations answered by one act_batch call (policies with act_batch, e.g. openvla:<dir>);
    1 turns batching off."""
    max_wait_ms: float | None = DEFAULT_MAX_WAIT_MS
    """How long a batch waits for more requests, unless every connected client is already in it; None = a quarter
    of the recent forward-pass time (at most 250 ms)."""


def serve_command(cfg: Serve) -> int:
    from rich.console import Console

    from vla_gen_bench.policies.base import describe_exception
    from vla_gen_bench.policies.registry import PolicyError, PolicySpec, check_policy, resolve_policy

    console = Console(stderr=True)
    spec = PolicySpec.parse(cfg.policy)
    check_policy(spec, cfg.policy_options)  # a bad string or a module that does not import: one line, exit 2
    try:  # a constructor that raises is one line too (there is no timeout here: Ctrl-C stops a load that hangs)
        policy = resolve_policy(spec, cfg.policy_options)
    except PolicyError:
        raise
    except KeyboardInterrupt:
        console.print("stopped while loading the policy")
        return 130
    except Exception as e:  # noqa: BLE001 - the constructor's own error, as one line
        console.print(f"{cfg.policy}: building the policy raised {describe_exception(e)}; fix its constructor (or "
                      "the checkpoint it loads)", style="red", markup=False, soft_wrap=True)  # fmt: skip
        return 1
    # the server logs bad frames (one line each) and policy exceptions (with the traceback), rate-limited
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shown = "localhost" if cfg.host in ("0.0.0.0", "::", "") else cfg.host

    def ready(port: int) -> None:
        wait = "auto" if cfg.max_wait_ms is None else f"{cfg.max_wait_ms:g} ms"
        how = (f"dynamic batches of up to {cfg.max_batch}, waiting <= {wait}" if server.batching
               else "one observation at a time")  # fmt: skip
        console.print(f"serving {cfg.policy!r} on ws://{shown}:{port} ({how}; health: http://{shown}:{port}/healthz, "
                      f"batch statistics: /stats); Ctrl-C stops", markup=False)  # fmt: skip

    server = PolicyServer(policy, cfg.host, cfg.port, cfg.max_message_bytes, name=cfg.policy, on_ready=ready,
                          max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    except OSError as e:
        console.print(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e} (is another server using that "
                      f"port? choose another with --port)", style="red", markup=False)  # fmt: skip
        return 1
    return 0
