"""Serve a LeRobot ``PreTrainedPolicy`` checkpoint over the openpi websocket protocol that ``vgb serve`` speaks.

Runs in the LeRobot environment (``.venv-lerobot/bin/python server.py --checkpoint <dir>``), started and stopped by
``vgb evaluate --policy lerobot:<dir>``; it imports only the standard library, numpy, torch, msgpack, websockets and
lerobot. The checkpoint is lerobot's ``save_pretrained`` layout (``config.json`` + ``model.safetensors``; the policy
type from ``config.json``), with the ``policy_preprocessor.json`` / ``policy_postprocessor.json`` pipelines that
``lerobot-train`` saves beside it: images and state are normalised, actions de-normalised, with the checkpoint's own
statistics.

Protocol (see ``vla_gen_bench/policies/remote.py``): on connect one metadata frame (``vgb_protocol`` 2,
``vgb_reset_flag``), then one reply per observation frame ``{"image": (H, W, 3) uint8, "state": (S,) float32,
"instruction": str, "reset": bool}``: ``{"actions": (n, 7) float32}``. Errors are answered with a one-line text
frame. ``GET /healthz`` answers ``ok``.

Two ways to answer, chosen from the checkpoint:

* ``chunk`` (ACT, and any policy that reads one observation and no temporal ensembling): the reply is the first
  ``n_action_steps`` rows of ``predict_action_chunk``, which the client executes open-loop (exactly what lerobot's
  ``select_action`` queue does). The server then keeps no per-episode state, so observations from all connections
  are batched into one forward pass: batched evaluation is correct by construction.
* ``step`` (policies with an observation history, ``n_obs_steps`` > 1 as Diffusion Policy, or ACT's temporal
  ensembling): one policy state per connection (a copy of the policy, reset on the ``reset`` flag, as lerobot's own
  ``reset()``), ``select_action`` per step; not batched across connections.

The process exits when its standard input closes, so it never outlives the ``vgb`` process that started it. Once
serving it prints ``READY <port>`` on stdout; a checkpoint that cannot be loaded prints ``ERROR <one line>`` and
exits with code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

_REFUSED = ("O", "V", "c")
PROTOCOL = 2


# ---------------------------------------------------------------------------- openpi's msgpack-numpy layout
def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {
            b"__ndarray__": True,
            b"data": obj.tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj or b"__npgeneric__" in obj:
        dt = np.dtype(obj[b"dtype"].decode() if isinstance(obj[b"dtype"], bytes) else obj[b"dtype"])
        if dt.kind in _REFUSED or dt.hasobject:
            raise ValueError(f"refusing numpy dtype {dt.str}")
        if b"__npgeneric__" in obj:
            return dt.type(obj[b"data"])
        shape = [int(d) for d in obj[b"shape"]]
        if len(obj[b"data"]) != math.prod(shape) * dt.itemsize:
            raise ValueError(f"ndarray of shape {tuple(shape)} has {len(obj[b'data'])} bytes")
        return np.frombuffer(obj[b"data"], dtype=dt).reshape(shape).copy()
    return obj


def packb(obj: Any) -> bytes:
    import msgpack

    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(data, object_hook=_decode, raw=False)


# ---------------------------------------------------------------------------- the policy
class LerobotRunner:
    """A loaded checkpoint with its pre/post-processors; turns vgb observations into actions."""

    def __init__(self, checkpoint: Path, device: str = "cpu"):
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self.torch = torch
        self.checkpoint = Path(checkpoint)
        cfg = PreTrainedConfig.from_pretrained(str(self.checkpoint))
        cfg.device = device
        self.cfg = cfg
        self.policy = get_policy_class(cfg.type).from_pretrained(str(self.checkpoint), config=cfg)
        self.policy.to(device).eval()
        over = {"device_processor": {"device": device}}
        if (self.checkpoint / "policy_preprocessor.json").is_file():
            self.pre, self.post = make_pre_post_processors(
                cfg, pretrained_path=str(self.checkpoint), preprocessor_overrides=over
            )
        else:
            raise FileNotFoundError(
                f"{self.checkpoint} has no policy_preprocessor.json (the normalisation statistics lerobot-train saves "
                "beside the weights); pass the 'pretrained_model' folder of a lerobot-train checkpoint"
            )
        feats = cfg.input_features
        self.image_keys = [k for k, f in feats.items() if str(getattr(f.type, "value", f.type)) == "VISUAL"]
        if len(self.image_keys) != 1:
            raise ValueError(f"the checkpoint reads {len(self.image_keys)} images ({', '.join(self.image_keys)}); vgb "
                             "sends one camera: train on one observation.images.<camera> feature")  # fmt: skip
        self.image_shape = tuple(int(d) for d in feats[self.image_keys[0]].shape)  # (3, H, W)
        self.state_dim = int(feats["observation.state"].shape[0]) if "observation.state" in feats else None
        out = cfg.output_features.get("action")
        if out is None or int(out.shape[0]) != 7:
            raise ValueError(f"the checkpoint's action has shape {None if out is None else tuple(out.shape)}; vgb "
                             "executes 7-D actions (end-effector delta xyz + rpy + gripper)")  # fmt: skip
        n_obs = int(getattr(cfg, "n_obs_steps", 1) or 1)
        ensemble = getattr(cfg, "temporal_ensemble_coeff", None)
        self.mode = (
            "chunk"
            if n_obs == 1 and ensemble is None and hasattr(self.policy, "predict_action_chunk")
            else "step"
        )
        self.n_action_steps = int(getattr(cfg, "n_action_steps", 1) or 1)
        self.copies: dict[int, Any] = {}

    def metadata(self) -> dict[str, Any]:
        h = hashlib.sha256()
        with open(self.checkpoint / "model.safetensors", "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        return {"lerobot_type": self.cfg.type, "checkpoint": str(self.checkpoint), "weights_sha256": h.hexdigest(),
                "mode": self.mode, "n_action_steps": self.n_action_steps, "gripper": "clipped to [-1, 1]",
                "chunk_size": int(getattr(self.cfg, "chunk_size", 0) or 0), "image_key": self.image_keys[0],
                "image_shape": list(self.image_shape), "state_dim": self.state_dim,
                "lerobot_version": _version("lerobot"), "torch_version": self.torch.__version__}  # fmt: skip

    def _batch(self, observations: list[dict[str, Any]]) -> dict[str, Any]:
        """Observations -> lerobot's batch (what ``lerobot.envs.utils.preprocess_observation`` makes): images
        (B, 3, H, W) float in [0, 1], resized to the checkpoint's shape when they differ; state (B, S)."""
        torch = self.torch
        imgs = []
        for o in observations:
            img = o.get("image")
            if not (
                isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            ):
                raise ValueError("'image' must be an (H, W, 3) uint8 array")
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0
            if tuple(t.shape) != self.image_shape:
                t = torch.nn.functional.interpolate(t[None], size=self.image_shape[1:], mode="bilinear",
                                                    align_corners=False, antialias=True)[0]  # fmt: skip
            imgs.append(t)
        batch: dict[str, Any] = {self.image_keys[0]: torch.stack(imgs)}
        if self.state_dim is not None:
            states = [np.asarray(o.get("state", ()), dtype=np.float32).reshape(-1) for o in observations]
            bad = [s.shape[0] for s in states if s.shape[0] != self.state_dim]
            if bad:
                raise ValueError(f"'state' has {bad[0]} values, the checkpoint reads {self.state_dim}")
            batch["observation.state"] = torch.from_numpy(np.stack(states))
        batch["task"] = [str(o.get("instruction", "")) for o in observations]
        return batch

    def act_chunks(self, observations: list[dict[str, Any]]) -> list[np.ndarray]:
        """``chunk`` mode: (n_action_steps, 7) float32 per observation, in one forward pass."""
        with self.torch.inference_mode():
            batch = self.pre(self._batch(observations))
            chunk = self.policy.predict_action_chunk(batch)[:, : self.n_action_steps]  # (B, n, 7)
            chunk = self.post(chunk)
        a = clip_gripper(chunk.detach().float().cpu().numpy())
        return [a[i] for i in range(len(observations))]

    def act_step(self, conn: int, obs: dict[str, Any], reset: bool) -> np.ndarray:
        """``step`` mode: one action from this connection's own policy state."""
        if conn not in self.copies:
            self.copies[conn] = copy.deepcopy(self.policy)
            reset = True
        policy = self.copies[conn]
        if reset:
            policy.reset()
        with self.torch.inference_mode():
            action = self.post(policy.select_action(self.pre(self._batch([obs]))))
        return clip_gripper(action.detach().float().cpu().numpy().reshape(1, -1))


def clip_gripper(actions: np.ndarray) -> np.ndarray:
    """The gripper column clipped to [-1, 1]: a regression policy overshoots the +1 open / -1 close targets it was
    trained on (1.24 is "open"), and vgb refuses actions beyond the env's bounds. The arm's deltas are left as they
    are, so a policy whose actions are not de-normalised is still refused by vgb's conventions check."""
    actions = np.array(actions, dtype=np.float32)
    actions[..., 6] = np.clip(actions[..., 6], -1.0, 1.0)
    return actions


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


# ---------------------------------------------------------------------------- the server
class Server:
    def __init__(self, runner: LerobotRunner, name: str, max_batch: int, max_message_bytes: int):
        self.runner, self.max_batch, self.max_message_bytes = runner, max_batch, max_message_bytes
        self.meta = {"policy": name, "action_spec": {"dim": 7, "chunk": runner.n_action_steps if runner.mode == "chunk" else 1},
                     "metadata": runner.metadata(), "vgb_protocol": PROTOCOL, "vgb_reset_flag": True,
                     "batching": {"max_batch": max_batch, "max_wait_ms": 0} if runner.mode == "chunk" else None}  # fmt: skip
        self.queue: asyncio.Queue | None = None
        self.ids = iter(range(1 << 62))
        self.stats = {"requests": 0, "batches": 0, "failed": 0}

    async def handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        conn = next(self.ids)
        await ws.send(packb(self.meta))
        try:
            async for frame in ws:
                try:
                    if isinstance(frame, str):
                        raise ValueError("expected a binary msgpack frame")
                    msg = unpackb(frame)
                    if not isinstance(msg, dict):
                        raise ValueError(f"an observation must be a msgpack map, got {type(msg).__name__}")
                    msg.setdefault("instruction", msg.get("prompt", ""))
                    for ours, theirs in (("image", "observation/image"), ("state", "observation/state")):
                        if ours not in msg and theirs in msg:
                            msg[ours] = msg.pop(theirs)
                    reset = msg.get("reset", False) is True
                    if "image" not in msg:
                        if reset:
                            self.runner.copies.pop(conn, None)
                            await ws.send(packb({"reset": True}))
                            continue
                        raise ValueError("the observation has no 'image'")
                    self.stats["requests"] += 1
                    if self.runner.mode == "chunk":
                        fut = asyncio.get_running_loop().create_future()
                        await self.queue.put((msg, fut))
                        actions = await fut
                    else:
                        actions = await asyncio.to_thread(self.runner.act_step, conn, msg, reset)
                    await ws.send(packb({"actions": np.asarray(actions, dtype=np.float32)}))
                except ConnectionClosed:
                    raise
                except Exception as e:  # noqa: BLE001 - answered to the client as one line, the server goes on
                    self.stats["failed"] += 1
                    await ws.send(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        except ConnectionClosed:
            pass
        finally:
            self.runner.copies.pop(conn, None)

    async def batcher(self) -> None:
        """Answer everything queued with one forward pass (up to ``max_batch``); new requests queue meanwhile."""
        while True:
            items = [await self.queue.get()]
            while len(items) < self.max_batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            try:
                rows = await asyncio.to_thread(self.runner.act_chunks, [m for m, _ in items])
                self.stats["batches"] += 1
                for (_, fut), a in zip(items, rows, strict=True):
                    fut.done() or fut.set_result(a)
            except Exception as e:  # noqa: BLE001 - each waiting client gets the error line
                for _, fut in items:
                    fut.done() or fut.set_exception(e)

    async def http(self, connection, request):
        if request.path == "/healthz":
            return connection.respond(200, "ok\n")
        if request.path == "/stats":
            return connection.respond(200, json.dumps(self.stats) + "\n")
        return None

    async def main(self, host: str, port: int) -> None:
        from websockets.asyncio.server import serve

        self.queue = asyncio.Queue()
        task = asyncio.create_task(self.batcher())
        stop = asyncio.get_running_loop().create_future()
        _watch_stdin(asyncio.get_running_loop(), stop)
        async with serve(self.handle, host, port, max_size=self.max_message_bytes, compression=None,
                         process_request=self.http) as server:  # fmt: skip
            print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
            await stop
        task.cancel()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Future) -> None:
    """Stop serving once standard input closes (the process that started this one is gone)."""

    def run():
        while sys.stdin.buffer.read(1):
            pass
        loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

    threading.Thread(target=run, daemon=True, name="stdin-watch").start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--name", default="")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-message-bytes", type=int, default=32 * 2**20)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        import torch

        torch.set_num_threads(max(1, a.threads))
        runner = LerobotRunner(a.checkpoint, a.device)
    except Exception as e:  # noqa: BLE001 - the parent reads this one line
        text = " ".join(str(e).split())
        print(
            f"ERROR cannot load the LeRobot checkpoint {a.checkpoint}: {type(e).__name__}: {text}", flush=True
        )
        return 2
    print(f"loaded {runner.cfg.type} ({runner.mode} mode, n_action_steps {runner.n_action_steps}) in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)  # fmt: skip
    asyncio.run(
        Server(runner, a.name or f"lerobot:{a.checkpoint}", a.max_batch, a.max_message_bytes).main(
            a.host, a.port
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
