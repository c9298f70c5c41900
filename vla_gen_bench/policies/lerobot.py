"""``--policy lerobot:<checkpoint dir>``: a LeRobot checkpoint served from the LeRobot environment, spoken to with
vgb's openpi websocket client.

The policy starts ``vla_gen_bench/lerobot/server.py`` (see there) with ``.venv-lerobot/bin/python`` on a free port of 127.0.0.1, waits
for it to load the checkpoint, and is then a :class:`~vla_gen_bench.policies.remote.RemotePolicy` connected to it:
the same reply timeout, reset flag (the first observation of each episode carries ``"reset": True``), action
checks and conventions check as ``--policy ws://...``. The server replies with the first ``n_action_steps`` actions
of each predicted chunk, which vgb's runner executes open-loop, as lerobot's ``select_action`` would; it is ended
when the policy is closed, when this process exits, or (it watches its standard input) when this process dies.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from vla_gen_bench.lerobot import PACKAGE_DIR, lerobot_python, worker_env
from vla_gen_bench.policies.remote import RemotePolicy

LOAD_TIMEOUT_S = 600.0


class LerobotCheckpointError(ValueError):
    """A folder that is not a LeRobot checkpoint, or a server that could not load it."""


def check_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder, checked for lerobot's ``save_pretrained`` files (no lerobot import).

    Raises:
        LerobotCheckpointError: the folder or one of its files is missing, or config.json names no policy type.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise LerobotCheckpointError(f"checkpoint folder {folder} does not exist (lerobot:<folder with config.json "
                                     "and model.safetensors>, e.g. <lerobot-train output>/checkpoints/last/"
                                     "pretrained_model)")  # fmt: skip
    missing = [f for f in ("config.json", "model.safetensors") if not (folder / f).is_file()]
    if missing:
        hint = " (pass its pretrained_model folder)" if (folder / "pretrained_model").is_dir() else ""
        raise LerobotCheckpointError(f"{folder} is not a LeRobot checkpoint: no {' or '.join(missing)}{hint}")
    try:
        kind = json.loads((folder / "config.json").read_text()).get("type")
    except (OSError, ValueError, AttributeError) as e:
        raise LerobotCheckpointError(f"{folder / 'config.json'} is not a JSON object ({e})") from None
    if not isinstance(kind, str) or not kind:
        raise LerobotCheckpointError(f"{folder / 'config.json'} names no policy 'type' (act, diffusion, smolvla, "
                                     "...); is it a LeRobot policy config?")  # fmt: skip
    return folder


class LerobotServer:
    """The server process; ``url`` once it serves. Ended by :meth:`close` (also at exit)."""

    def __init__(self, checkpoint: Path, name: str, device: str = "cpu", load_timeout_s: float = LOAD_TIMEOUT_S,
                 threads: int = 1):  # fmt: skip
        py = lerobot_python()
        self.log = Path(tempfile.mkstemp(prefix="vgb-lerobot-server-", suffix=".log")[1])
        cmd = [str(py), str(PACKAGE_DIR / "server.py"), "--checkpoint", str(checkpoint), "--device", device,
               "--name", name, "--threads", str(threads)]  # fmt: skip
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         env=worker_env(), cwd=PACKAGE_DIR)  # fmt: skip
        self._finalizer = weakref.finalize(self, _stop, self.proc)
        atexit.register(self._finalizer)
        self.port = self._wait_ready(load_timeout_s)
        self.url = f"ws://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout_s: float) -> int:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        buf = b""
        while time.monotonic() < deadline:
            if not sel.select(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                if self.proc.poll() is not None:
                    break
                continue
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode("utf-8", "replace").splitlines():
                if line.startswith("READY "):
                    return int(line.split()[1])
                if line.startswith("ERROR "):
                    self.close()
                    raise LerobotCheckpointError(line[len("ERROR ") :])
        self.close()
        if time.monotonic() >= deadline:
            raise LerobotCheckpointError(f"the LeRobot policy server did not load its checkpoint within {timeout_s:g} s "
                                         f"(raise --policy-timeout); its log: {self.log}")  # fmt: skip
        tail = " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        raise LerobotCheckpointError(f"the LeRobot policy server exited with code {self.proc.returncode} before "
                                     f"serving ({tail}); full log: {self.log}")  # fmt: skip

    def close(self) -> None:
        self._finalizer()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.stdin.close()  # the server stops serving when its standard input closes
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


class LerobotPolicy(RemotePolicy):
    """A LeRobot ``PreTrainedPolicy`` checkpoint, served from the LeRobot environment.

    Args:
        path: the checkpoint folder (``config.json``, ``model.safetensors``, and the ``policy_preprocessor.json`` /
            ``policy_postprocessor.json`` that lerobot-train saves with them).
        timeout_s: seconds to wait for each reply (and for the server to load the checkpoint).
        device: torch device of the server (default cpu).
        **ignored: options of other adapters.
    """

    def __init__(self, path: str | Path, timeout_s: float = 300.0, device: str | None = None, **ignored: Any):
        folder = check_checkpoint(path)
        self.server = LerobotServer(folder.resolve(), name=f"lerobot:{path}", device=device or "cpu",
                                    load_timeout_s=max(float(timeout_s), 60.0))  # fmt: skip
        try:
            super().__init__(self.server.url, timeout_s=timeout_s, connect_retries=2)
        except BaseException:
            self.server.close()
            raise

    def _connect(self) -> None:
        super()._connect()
        # identified by what the server reports (weights hash, type, chunking), not by its port of the day
        self.metadata = dict(self._server_meta.get("metadata") or {})

    def close(self) -> None:
        super().close()
        self.server.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a LeRobot policy owns its server process and cannot be sent to another process; build it "
                        "there with resolve_policy('lerobot:<dir>')")  # fmt: skip
