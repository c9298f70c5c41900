"""The one env <-> policy loop, and the stepping pieces demo collection and RL rollouts reuse.

``run_episode`` resets the task (optionally to a fixed EpisodeSpec), asks the policy for actions (a (chunk, 7)
array is executed open-loop, one row per control step) and returns what the episode store records.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.policies.base import Policy, takes_sample_keys


def policy_observation(env, obs: dict, privileged: bool = False, i: int = 0,
                       sample_key: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The observation a policy sees for env ``i``: image, instruction, proprio state (+ privileged poses, + the
    ``sample_key`` that seeds a sampling policy's random numbers for this step, when the caller has one)."""
    u = env.unwrapped
    out = {
        "image": obs["sensor_data"]["policy_camera"]["rgb"][i].cpu().numpy(),
        "instruction": u.instructions[i],
        "state": u.proprio()[i],
    }
    if privileged:
        out["privileged"] = u.privileged()[i]
    if sample_key is not None:
        out["sample_key"] = sample_key
    return out


def episode_key(variant: str, seed: int, episode: int) -> int:
    """A stable 40-bit id of one manifest episode; ``step_key`` derives each step's sampling key from it."""
    return int.from_bytes(hashlib.sha256(f"{variant}/{seed}/{episode}".encode()).digest()[:5], "big")


def step_key(episode: int, step: int) -> int:
    """The sampling key of control step ``step`` of the episode with key ``episode`` (< 2**56, non-negative)."""
    return (episode << 16) | (step & 0xFFFF)


@dataclass
class EpisodeResult:
    """One finished episode as the runner saw it, with :class:`~vla_gen_bench.eval.records.EpisodeRecord`'s field
    names (the record adds the variant, the policy and the success as the run's profile scores it)."""

    seed: int
    instruction: str
    success: bool
    """Success at the final step."""
    success_once: bool
    grasped: bool
    """Ever grasped during the episode."""
    consecutive_grasp: bool
    failure: str
    steps: int
    return_: float
    wall_s: float
    action_digest: str = ""
    """sha256 (16 hex) of the executed float32 actions: equal digests = the same trajectory of commands."""
    spec: dict = field(default_factory=dict)
    """The episode's initial configuration (:class:`~vla_gen_bench.episode.EpisodeSpec` as a dict)."""
    frames: list = field(default_factory=list, repr=False)

    def record(self) -> dict[str, Any]:
        """JSON-serialisable row (frames excluded)."""
        d = asdict(self)
        d.pop("frames")
        return d


def run_episode(env, policy: Policy, seed: int, episode=None, record_frames: bool = False,
                max_steps: int | None = None, on_action=None) -> EpisodeResult:  # fmt: skip
    """Run one full episode of ``policy`` on a single-env ``env`` and return its result."""
    return run_batch(env, [policy], [seed], [episode], record_frames, max_steps, on_action)[0]


def run_batch(env, policies: list[Policy], seeds: list[int], episodes: list | None = None,
              record_frames: bool = False, max_steps: int | None = None, on_action=None,
              on_step=None, episode_keys: list[int] | None = None) -> list[EpisodeResult]:  # fmt: skip
    """The env <-> policy loop: one episode per parallel env (``env.num_envs`` of them, one policy instance
    each), all to the fixed horizon (no early termination; success is read at the last step).

    Pass the same policy instance for every env when it has ``act_batch(images, instructions)`` (a model that
    keeps no per-episode state beyond the instruction): it is then queried once per step for all envs.
    ``on_action(i, action) -> action`` may check or transform each policy output before it is executed
    (the evaluator validates conventions there). A (chunk, 7) output is executed open-loop, one row per step.
    ``on_step(t, obs, action, next_obs, reward, info)`` sees every transition (``action`` (b, 7) as executed,
    ``reward`` (b,) numpy): demo collection and RL rollouts record what they need there.
    ``episode_keys`` (one per env, see :func:`episode_key`) give each policy call a ``sample_key`` (in the
    observation, or ``act_batch(..., sample_keys=...)``), so a sampling policy draws the same numbers for the same
    episode step however episodes are batched, ordered or resumed.
    """
    from vla_gen_bench.envs import MAX_EPISODE_STEPS
    from vla_gen_bench.episode import FAILURE_LABELS

    b = env.unwrapped.num_envs
    if len(policies) != b or len(seeds) != b:
        raise ValueError(
            f"need one policy and one seed per parallel env ({b}); got {len(policies)} and {len(seeds)}"
        )
    episodes = list(episodes) if episodes is not None else [None] * b
    t0 = time.perf_counter()
    options = {"episode": episodes if b > 1 else episodes[0]} if any(e is not None for e in episodes) else {}
    obs, info = env.reset(seed=list(seeds) if b > 1 else seeds[0], options=options)
    u = env.unwrapped
    instructions = list(u.instructions)
    for i, p in enumerate(policies):
        p.reset(instructions[i])
    privileged = [bool(getattr(p.spec, "privileged", False)) for p in policies]
    # the same instance for every env + act_batch(images, instructions) = a batched model (e.g. OpenVLA)
    batched = (
        all(p is policies[0] for p in policies) and hasattr(policies[0], "act_batch") and not privileged[0]
    )
    horizon = max_steps or MAX_EPISODE_STEPS
    frames: list[list[np.ndarray]] = [[] for _ in range(b)]
    totals = np.zeros(b)
    queues: list[list[np.ndarray]] = [[] for _ in range(b)]
    digests = [hashlib.sha256() for _ in range(b)]
    keyed = episode_keys is not None
    if keyed and len(episode_keys) != b:
        raise ValueError(f"need one episode key per parallel env ({b}); got {len(episode_keys)}")
    with_keys = keyed and batched and takes_sample_keys(policies[0].act_batch)
    steps = 0
    while steps < horizon:
        if record_frames:
            rgb = obs["sensor_data"]["policy_camera"]["rgb"].cpu().numpy()
            for i in range(b):
                frames[i].append(rgb[i])
        need = [i for i in range(b) if not queues[i]]
        if batched and len(need) > 1:  # one shared model: one forward pass for every env that needs an action
            imgs = obs["sensor_data"]["policy_camera"]["rgb"][need].cpu().numpy()
            kw = {"sample_keys": [step_key(episode_keys[i], steps) for i in need]} if with_keys else {}
            outs = list(policies[0].act_batch(imgs, [instructions[i] for i in need], **kw))
        else:
            outs = [policies[i].act(policy_observation(env, obs, privileged[i], i,
                                                       step_key(episode_keys[i], steps) if keyed else None))
                    for i in need]  # fmt: skip
        for i, a in zip(need, outs, strict=True):
            a = on_action(i, a) if on_action else a
            a = np.asarray(a, dtype=np.float32)
            queues[i] = list(a) if a.ndim == 2 else [a]
        action = np.stack([q.pop(0) for q in queues])  # (b, 7)
        for i in range(b):
            digests[i].update(np.ascontiguousarray(action[i], dtype=np.float32).tobytes())
        next_obs, reward, _term, _trunc, info = env.step(action if b > 1 else action[0])
        r = np.asarray(reward.cpu() if hasattr(reward, "cpu") else reward, dtype=np.float64).reshape(b)
        if on_step is not None:
            on_step(steps, obs, action, next_obs, r, info)
        obs = next_obs
        totals += r
        steps += 1
    if record_frames:
        rgb = obs["sensor_data"]["policy_camera"]["rgb"].cpu().numpy()
        for i in range(b):
            frames[i].append(rgb[i])
    wall = round((time.perf_counter() - t0) / b, 3)
    specs = u.episode_specs
    flag = lambda k, i: bool(info[k][i])  # noqa: E731
    return [
        EpisodeResult(
            seed=int(seeds[i]),
            instruction=instructions[i],
            success=flag("success", i),
            success_once=flag("success_once", i),
            grasped=flag("ever_grasped", i),
            consecutive_grasp=flag("consecutive_grasp", i),
            failure=getattr(u, "failure_labels", FAILURE_LABELS)[
                int(info["failure"][i])
            ],  # the family's labels
            steps=steps,
            return_=round(float(totals[i]), 6),
            wall_s=wall,
            action_digest=digests[i].hexdigest()[:16],
            spec=specs[i].to_dict() if specs[i] else {},
            frames=frames[i],
        )  # fmt: skip
        for i in range(b)
    ]


def write_video(frames, path, fps: int = 5) -> None:
    """Write frames (H, W, 3) uint8 as an H.264 mp4 with imageio-ffmpeg's bundled ffmpeg, whole or not at all.

    ffmpeg writes a hidden temporary file beside ``path`` (:func:`.records.temporary_name`), which is renamed onto
    ``path`` only once ffmpeg has finished it successfully; when anything fails (the frames, ffmpeg, a full disk)
    the temporary file is removed, so no truncated video ever exists under the final name. ffmpeg's own messages
    are kept out of the terminal: its last one ends up in the error.

    Raises:
        OSError: ffmpeg could not write the file (errno ENOSPC, EDQUOT, EFBIG, EACCES or EROFS when its message
            says so, else EIO); ``filename`` is ``path``.
        ValueError: no frames, or frames of different shapes.
    """
    import subprocess
    import threading

    import imageio_ffmpeg

    from vla_gen_bench.eval.records import temporary_name

    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    first = np.ascontiguousarray(first, dtype=np.uint8)
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) uint8 images, got shape {first.shape}")
    tmp = temporary_name(path)
    h, w = first.shape[:2]
    # crf 15 = imageio's quality 7; every dimension kept (no macro-block rescaling)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-an", "-vcodec", "libx264",
           "-pix_fmt", "yuv420p", "-crf", "15", "-f", "mp4", str(tmp)]  # fmt: skip
    # its own session: a Ctrl-C reaches Python, which stops ffmpeg and removes the temporary file
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    err: list[bytes] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    try:
        try:
            for f in _frames(first, frames):
                proc.stdin.write(f)
        except BrokenPipeError:  # ffmpeg stopped early; its messages say why
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        rc = proc.wait()
        drain.join()
        if rc != 0:
            raise _ffmpeg_error(b"".join(err).decode("utf-8", "replace"), rc, path)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tmp.unlink(missing_ok=True)
        raise


def _frames(first: np.ndarray, rest):
    """The raw bytes of each frame, all of ``first``'s shape."""
    yield first.tobytes()
    for f in rest:
        f = np.ascontiguousarray(f, dtype=np.uint8)
        if f.shape != first.shape:
            raise ValueError(f"video frames differ in shape: {f.shape} after {first.shape}")
        yield f.tobytes()


_FFMPEG_ERRNO = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                 "File too large": errno.EFBIG, "Permission denied": errno.EACCES,
                 "Read-only file system": errno.EROFS}  # fmt: skip


def _ffmpeg_error(stderr: str, rc: int, path: Path) -> OSError:
    """ffmpeg's failure as one OSError: the errno its messages name, and its last message."""
    code, said = next(((n, text) for text, n in _FFMPEG_ERRNO.items() if text in stderr), (errno.EIO, ""))
    # the line that names the cause: the last naming the errno, else the first (ffmpeg's later lines are generic,
    # e.g. "Conversion failed!")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    named = [line for line in lines if said in line] if said else lines[:1]
    last = named[-1] if named else ""
    how = f"exit status {rc}" if rc > 0 else f"killed by signal {-rc}"
    detail = os.strerror(code) if code != errno.EIO else "ffmpeg could not write the video"
    return OSError(code, f"{detail} (ffmpeg {how}{': ' + last if last else ''})", str(path))
