"""A policy behind a websocket server, spoken to with the openpi wire protocol (``--policy ws://host:port``).

Protocol (what openpi's ``WebsocketPolicyServer`` / ``WebsocketClientPolicy`` speak, so either side interoperates):

1. The client opens a websocket; the server first sends one binary frame: a msgpack *metadata* dict.
2. The client sends one binary frame per step: a msgpack observation dict. Ours is
   ``{"image": (H, W, 3) uint8, "instruction": str, "prompt": str, "state": (S,) float32}`` (``prompt`` is openpi's
   name for the instruction; ``key_map`` adds more aliases such as ``observation/image`` for an openpi config).
3. The server replies one binary frame: a msgpack dict with ``"actions"``, shape ``(7,)`` or ``(chunk, 7)``; other
   keys (openpi adds ``server_timing``) are ignored.
4. On an error the server sends a *text* frame instead of a reply (``vgb serve``: one line, ``Type: message``).

numpy arrays travel as msgpack maps ``{b"__ndarray__": True, b"data": <raw bytes>, b"dtype": <dtype.str>,
b"shape": [...]}`` and numpy scalars as ``{b"__npgeneric__": True, b"data": <python value>, b"dtype": <dtype.str>}``
(bytes keys, msgpack bin type) — openpi's ``msgpack_numpy`` layout. Nothing is ever unpickled: object, void and
complex dtypes are refused in both directions.

Episode resets: openpi servers have no reset message. When the server's metadata advertises ``"vgb_reset_flag":
True`` (``vgb serve`` does), the first observation of each episode carries ``"reset": True``; with any other server
the observation is sent unchanged (a server can still reset on a change of instruction).
"""

from __future__ import annotations

import math
import time
from dataclasses import fields
from typing import Any

import numpy as np

from vla_gen_bench.policies.base import ACTION_DIM, ActionSpec

DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
_REFUSED_DTYPE_KINDS = ("O", "V", "c")  # object (would need pickle), void/structured, complex


class RemotePolicyError(RuntimeError):
    """The policy server could not be reached, failed, or answered something that is not an action."""


class WireError(ValueError):
    """A frame that is not a valid message (bad msgpack, refused dtype, inconsistent array)."""


# ---------------------------------------------------------------------------- msgpack + numpy (openpi layout)
def _encode_numpy(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REFUSED_DTYPE_KINDS:
        raise TypeError(
            f"cannot send a numpy array of dtype {obj.dtype} (object/void/complex dtypes are refused)"
        )
    if isinstance(obj, np.ndarray):
        return {
            b"__ndarray__": True,
            b"data": obj.tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode an object of type {type(obj).__name__} in a policy message")


def _safe_dtype(s: Any) -> np.dtype:
    if isinstance(s, bytes):
        s = s.decode("ascii", "replace")
    if not isinstance(s, str):
        raise WireError(f"numpy dtype must be a string, got {type(s).__name__}")
    try:
        dt = np.dtype(s)
    except TypeError as e:
        raise WireError(f"unknown numpy dtype {s!r}") from e
    if dt.kind in _REFUSED_DTYPE_KINDS or dt.hasobject:
        raise WireError(
            f"refusing numpy dtype {s!r} (object/void/complex dtypes would need pickle or are not data)"
        )
    return dt


def _decode_numpy(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dt = _safe_dtype(obj.get(b"dtype"))
        shape = obj.get(b"shape")
        data = obj.get(b"data")
        if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise WireError(f"bad ndarray shape {shape!r}")
        if not isinstance(data, bytes):
            raise WireError("ndarray data must be bytes")
        expected = math.prod(shape) * dt.itemsize
        if len(data) != expected:
            raise WireError(
                f"ndarray of shape {tuple(shape)} and dtype {dt.str} needs {expected} bytes, got {len(data)}"
            )
        return np.frombuffer(data, dtype=dt).reshape(shape).copy()
    if b"__npgeneric__" in obj:
        dt = _safe_dtype(obj.get(b"dtype"))
        return dt.type(obj.get(b"data"))
    return obj


def packb(obj: Any) -> bytes:
    """Serialise a message (dicts, lists, str, numbers, numpy arrays and scalars) in openpi's msgpack layout."""
    import msgpack

    return msgpack.packb(obj, default=_encode_numpy, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Inverse of :func:`packb`; raises WireError (a ValueError) on refused dtypes or inconsistent arrays (never unpickles)."""
    import msgpack

    try:
        return msgpack.unpackb(data, object_hook=_decode_numpy, raw=False)
    except WireError:
        raise
    except Exception as e:  # msgpack's own ExtraData / FormatError / StackError (ValueErrors too), ...
        raise WireError(f"not a msgpack message ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------------------- reply checks
def parse_actions(reply: Any, url: str = "the server") -> np.ndarray:
    """The ``actions`` of a server reply as float array of shape (7,) or (chunk, 7); RemotePolicyError otherwise."""
    if not isinstance(reply, dict):
        raise RemotePolicyError(
            f"malformed reply from {url}: expected a dict with key 'actions', got {type(reply).__name__}"
        )
    if "actions" not in reply:
        keys = ", ".join(repr(k) for k in list(reply)[:10]) or "none"
        raise RemotePolicyError(f"malformed reply from {url}: no 'actions' key (keys: {keys})")
    a = reply["actions"]
    if isinstance(a, (list, tuple)):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise RemotePolicyError(
                f"malformed reply from {url}: 'actions' is a list that is not numeric ({e})"
            ) from e
    if not isinstance(a, np.ndarray):
        raise RemotePolicyError(
            f"malformed reply from {url}: 'actions' must be a numpy array, got {type(a).__name__}"
        )
    if a.dtype.kind not in "fiu":
        raise RemotePolicyError(
            f"malformed reply from {url}: 'actions' has dtype {a.dtype}, expected a float array"
        )
    if not (a.shape == (ACTION_DIM,) or (a.ndim == 2 and a.shape[0] >= 1 and a.shape[1] == ACTION_DIM)):
        raise RemotePolicyError(
            f"malformed reply from {url}: 'actions' has shape {a.shape}, expected ({ACTION_DIM},) or (chunk, {ACTION_DIM})"
        )
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def spec_from_metadata(meta: dict[str, Any]) -> ActionSpec:
    """ActionSpec from a server's ``action_spec`` metadata entry (unknown or ill-typed fields fall back to defaults)."""
    raw = meta.get("action_spec") if isinstance(meta, dict) else None
    if not isinstance(raw, dict):
        return ActionSpec()
    default = ActionSpec()
    kw = {}
    for f in fields(ActionSpec):
        v = raw.get(f.name)
        if v is not None and type(v) is type(getattr(default, f.name)):
            kw[f.name] = v
    return ActionSpec(**kw)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {(k.decode() if isinstance(k, bytes) else str(k)): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return x


def split_url_options(url: str) -> tuple[str, dict[str, Any]]:
    """Strip client options from a ``--policy`` URL: ``?timeout=<s>`` and ``?map=image:observation/image,...``.

    The query string never reaches the server (openpi's ignores paths and queries anyway).
    """
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    opts: dict[str, Any] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k == "timeout":
            try:
                opts["timeout"] = float(v)
            except ValueError:
                raise RemotePolicyError(f"timeout={v!r} in {url!r} is not a number of seconds") from None
        elif k == "map":
            pairs = [p.split(":", 1) for p in v.split(",") if p]
            if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
                raise RemotePolicyError(f"map={v!r} in {url!r}: expected ours:theirs pairs, e.g. "
                                        f"map=image:observation/image,state:observation/state")  # fmt: skip
            opts["map"] = [tuple(p) for p in pairs]
        else:
            raise RemotePolicyError(
                f"unknown option {k!r} in {url!r}; accepted: timeout=<seconds>, map=ours:theirs,..."
            )
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), opts


# ---------------------------------------------------------------------------- the client policy
class RemotePolicy:
    """Client for a policy served over the openpi websocket protocol (``vgb serve`` or an openpi server).

    Args:
        url: ``ws://host:port`` (or ``wss://``); options may ride in the query string, so that a plain
            ``--policy`` string can carry them: ``ws://host:8000?timeout=600&map=image:observation/image``.
        timeout_s: seconds to wait for each reply (a model's first call may compile: be generous).
        connect_timeout_s: seconds for each connection attempt (TCP + websocket handshake + metadata frame).
        connect_retries: extra connection attempts after the first, with exponential backoff.
        backoff_s: wait before the first retry; doubles each retry.
        key_map: extra names for our observation keys, e.g. ``{"image": "observation/image", "state":
            "observation/state"}`` for an openpi LIBERO-style server config (the originals are sent too); a list of
            (ours, theirs) pairs may send one key under several names.
        max_message_bytes: largest reply accepted.
        **ignored: other ``--policy`` options (seed, unnorm_key, ...) that only apply to in-process adapters.
    """

    def __init__(self, url: str, timeout_s: float = 300.0, connect_timeout_s: float = 10.0, connect_retries: int = 3,
                 backoff_s: float = 0.5, key_map: dict[str, str] | list[tuple[str, str]] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, **ignored: Any):  # fmt: skip
        if not url.startswith(("ws://", "wss://")):
            raise RemotePolicyError(f"remote policy URL must start with ws:// or wss://, got {url!r}")
        url, opts = split_url_options(url)
        self.url = url
        timeout_s = opts.get("timeout", timeout_s)
        pairs = list(key_map.items()) if isinstance(key_map, dict) else list(key_map or [])
        pairs += opts.get("map", [])
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.connect_retries = int(connect_retries)
        self.backoff_s = float(backoff_s)
        self.key_map = [(str(a), str(b)) for a, b in pairs]
        self.max_message_bytes = int(max_message_bytes)
        self._ws = None
        self._server_meta: dict[str, Any] = {}
        self._instruction = ""
        self._pending_reset = True
        self._connect()

    # -- connection
    def _connect(self) -> None:
        from websockets.exceptions import InvalidHandshake, InvalidURI
        from websockets.sync.client import connect

        attempts = 1 + max(0, self.connect_retries)
        last: BaseException | None = None
        for i in range(attempts):
            if i:
                time.sleep(self.backoff_s * 2 ** (i - 1))
            try:
                ws = connect(self.url, open_timeout=self.connect_timeout_s, max_size=self.max_message_bytes,
                             compression=None)  # fmt: skip
            except InvalidURI as e:
                raise RemotePolicyError(f"invalid policy server URL {self.url!r}: {e}") from e
            except (OSError, TimeoutError, InvalidHandshake) as e:
                last = e
                continue
            try:
                first = ws.recv(timeout=self.connect_timeout_s)
            except TimeoutError as e:
                ws.close()
                last = e
                continue
            except Exception as e:  # closed during the handshake
                last = e
                continue
            if isinstance(first, str):
                ws.close()
                raise RemotePolicyError(
                    f"policy server at {self.url} sent an error instead of its metadata:\n{first}"
                )
            try:
                meta = unpackb(first)
            except ValueError as e:
                ws.close()
                raise RemotePolicyError(f"policy server at {self.url} sent unreadable metadata ({e})") from e
            if not isinstance(meta, dict):
                ws.close()
                raise RemotePolicyError(
                    f"policy server at {self.url} sent metadata of type {type(meta).__name__}, expected a dict"
                )
            self._ws = ws
            self._server_meta = meta
            self.spec = spec_from_metadata(meta)
            self.metadata = {**_jsonable(meta), "remote_url": self.url}
            return
        raise RemotePolicyError(
            f"cannot connect to a policy server at {self.url} after {attempts} attempt(s) "
            f"({type(last).__name__}: {last}). Start one with 'vgb serve --policy <policy> --port <port>' "
            f"(or an openpi server: 'uv run scripts/serve_policy.py ...') and check host and port."
        )

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def __getstate__(self) -> dict[str, Any]:  # a live socket does not cross process boundaries
        d = self.__dict__.copy()
        d["_ws"] = None
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)  # reconnects on the next reset()

    # -- Policy protocol
    def reset(self, instruction: str) -> None:
        if self._ws is None or self._ws.state.name != "OPEN":
            self._ws = None
            self._connect()
        self._instruction = instruction
        self._pending_reset = True

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._ws is None:
            raise RemotePolicyError(f"not connected to {self.url}; call reset(instruction) first")
        instruction = obs.get("instruction", self._instruction)
        # per-step sampling keys go only to servers that understand them (vgb serve, protocol 2)
        keys = int(self._server_meta.get("vgb_protocol") or 0) >= 2
        skip = ("instruction",) if keys else ("instruction", "sample_key")
        msg: dict[str, Any] = {k: v for k, v in obs.items() if k not in skip}
        msg["image"] = np.ascontiguousarray(obs["image"], dtype=np.uint8)
        msg["state"] = np.asarray(obs.get("state", np.zeros(0)), dtype=np.float32)
        msg["instruction"] = instruction
        msg["prompt"] = instruction
        for ours, theirs in self.key_map:
            if ours in msg:
                msg[theirs] = msg[ours]
        if self._pending_reset and self._server_meta.get("vgb_reset_flag"):
            msg["reset"] = True
        data = packb(msg)
        reply = self._roundtrip(data)
        self._pending_reset = False
        return parse_actions(reply, self.url)

    def _roundtrip(self, data: bytes) -> Any:
        from websockets.exceptions import ConnectionClosed

        try:
            self._ws.send(data)
            raw = self._ws.recv(timeout=self.timeout_s)
        except TimeoutError as e:
            self.close()  # a late reply would answer the next request: drop the connection
            raise RemotePolicyError(
                f"no reply from the policy server at {self.url} within {self.timeout_s:g} s "
                f"(if the model is slow, e.g. on its first, compiling call, raise it: '{self.url}?timeout=600')"
            ) from e
        except ConnectionClosed as e:
            self._ws = None
            rcvd = e.rcvd
            if rcvd is not None and rcvd.code == 1009:
                raise RemotePolicyError(
                    f"the policy server at {self.url} refused a {len(data)}-byte observation as too big (close code "
                    f"1009 '{rcvd.reason}'); start it with a larger --max-message-bytes or send smaller images"
                ) from e
            why = (
                f"code {rcvd.code} '{rcvd.reason}'"
                if rcvd is not None
                else "no close frame: the server died?"
            )
            raise RemotePolicyError(
                f"the policy server at {self.url} closed the connection mid-episode ({why})"
            ) from e
        if isinstance(raw, str):
            raise RemotePolicyError(f"the policy server at {self.url} raised an error: {raw.strip()}")
        try:
            return unpackb(raw)
        except ValueError as e:
            raise RemotePolicyError(f"malformed reply from {self.url}: {e}") from e
