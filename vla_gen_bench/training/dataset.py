"""A PyTorch ``Dataset`` over a demonstration folder written by :mod:`vla_gen_bench.training.demos`.

Each item is one kept step: ``{"image": (H, W, 3) uint8, "instruction": str, "action": (7,) float32,
"state": (16,) float32, "scene": (4,) float32, "episode": int, "t": int}`` (``scene``: the first object's and the first
receptacle's initial table xy from the episode spec, zeros where the spec has none; training-only targets). The small per-episode arrays are read once at construction;
images stay on disk (one memory-mapped ``.npy`` per episode, opened on first use in each worker process), so a
dataset of any size costs almost no memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.training.demos import CARD_NAME, STATS_NAME, IdleFilter, action_statistics


def _scene_xy(spec_json: str) -> np.ndarray:
    """``[object x, y, receptacle x, y]`` at reset from an episode spec (JSON); zeros for what it does not name."""
    spec = json.loads(spec_json) if spec_json else {}
    out = np.zeros(4, np.float32)
    for j, key in enumerate(("object_xy", "receptacle_xy")):
        xy = spec.get(key) or []
        if xy:
            out[2 * j : 2 * j + 2] = xy[0]
    return out


class DatasetError(ValueError):
    """A folder that is not a (complete) demonstration dataset."""


class DemoDataset:
    """Kept steps of the first ``max_episodes`` episodes (sorted by name) of a demonstration folder.

    Args:
        root: the folder ``vgb collect-demos`` wrote.
        max_episodes: use only this many episodes (``--demos N``); None = all.
        filter: recompute the keep mask with this :class:`IdleFilter` instead of the one stored at collection.
        extra: more dataset folders whose episodes are appended (all of them; e.g. DAgger data written by
            ``vgb collect-demos --learner``).
        extra_until_close: keep an ``extra`` episode's steps only up to this many steps after its first label that
            closes the gripper (the reach and the grasp; the rest of the episode is dropped); None keeps them all.
    """

    def __init__(self, root: str | Path, max_episodes: int | None = None, filter: IdleFilter | None = None,
                 chunk: int = 1, extra: tuple[str | Path, ...] = (), extra_until_close: int | None = None):  # fmt: skip
        self.root = Path(root)
        self.extra = tuple(Path(r) for r in extra)
        files = _episode_files(self.root)
        if max_episodes is not None:
            if max_episodes > len(files):
                raise DatasetError(f"{self.root} has {len(files)} episodes, {max_episodes} were asked for")
            files = files[:max_episodes]
        if not files:
            raise DatasetError(f"{self.root} holds no episodes")
        own = len(files)
        if extra_until_close is not None and extra_until_close < 0:
            raise DatasetError(f"extra_until_close must be >= 0 or None, got {extra_until_close}")
        for r in self.extra:
            more = _episode_files(r)
            if not more:
                raise DatasetError(f"{r} holds no episodes")
            files += more
        self.files = files
        self.names: list[str] = []
        self.instructions: list[str] = []
        if chunk < 1:
            raise DatasetError(f"chunk must be >= 1, got {chunk}")
        self.chunk = int(chunk)
        actions, states, scenes, index, chunks = [], [], [], [], []
        for e, p in enumerate(files):
            with np.load(p) as z:
                keep = z["keep"].astype(bool) if filter is None else filter(z["actions"], z["success"])
                if e >= own and extra_until_close is not None:
                    closes = np.nonzero(z["actions"][:, 6] < 0)[0]
                    if len(closes):
                        keep[closes[0] + extra_until_close + 1 :] = False
                ts = np.nonzero(keep)[0]
                actions.append(z["actions"][ts].astype(np.float32))
                if chunk > 1:
                    chunks.append(future_actions(z["actions"].astype(np.float32), ts, chunk))
                states.append(z["states"][ts].astype(np.float32))
                scenes.append(np.repeat(_scene_xy(str(z["spec"]) if "spec" in z else "{}")[None], len(ts), 0))
                self.instructions.append(str(z["instruction"]))
            self.names.append(p.name.removesuffix(".npz"))
            index.append(np.stack([np.full(len(ts), e), ts], 1))
        self.actions = np.concatenate(actions)  # (N, 7)
        self.chunks = np.concatenate(chunks) if chunk > 1 else None  # (N, chunk, 7)
        self.states = np.concatenate(states)  # (N, 16)
        self.scenes = np.concatenate(scenes)  # (N, 4)
        self.index = np.concatenate(index).astype(np.int64)  # (N, 2): episode, step
        self._images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_episodes(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        e, t = self.index[i]
        arr = self._images.get(int(e))
        if arr is None:
            npz = self.files[int(e)]
            arr = np.load(npz.with_name(npz.name.removesuffix(".npz") + ".images.npy"), mmap_mode="r")
            self._images[int(e)] = arr
        return np.array(arr[t])  # copy one frame out of the memory map

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = int(i) % len(self)
        e, t = self.index[i]
        return {
            "image": self.image(i),
            "instruction": self.instructions[e],
            "action": self.actions[i],
            **({"chunk": self.chunks[i]} if self.chunks is not None else {}),
            "state": self.states[i],
            "scene": self.scenes[i],
            "episode": int(e),
            "t": int(t),
        }

    def __getstate__(self):  # memory maps are reopened in each DataLoader worker
        d = dict(self.__dict__)
        d["_images"] = {}
        return d

    def card(self) -> dict[str, Any]:
        p = self.root / CARD_NAME
        return json.loads(p.read_text()) if p.is_file() else {}

    def statistics(self, key: str | None = None) -> dict[str, Any]:
        """``dataset_statistics.json`` content for exactly these steps (a subset has its own q01/q99)."""
        key = key or self.card().get("config", {}).get("key") or "vgb_demos"
        return {
            key: {
                "action": action_statistics(self.actions),
                "num_transitions": len(self),
                "num_trajectories": self.num_episodes,
            }
        }

    def stored_statistics(self) -> dict[str, Any]:
        p = self.root / STATS_NAME
        if not p.is_file():
            raise DatasetError(
                f"{p} is missing; re-run 'vgb collect-demos' with the same options to finish it"
            )
        return json.loads(p.read_text())


def _episode_files(root: Path) -> list[Path]:
    folder = Path(root) / "episodes"
    if not folder.is_dir():
        raise DatasetError(f"{root} is not a demonstration dataset (no episodes/); run 'vgb collect-demos'")
    return sorted(p for p in folder.glob("*.npz") if ".tmp" not in p.name)


def future_actions(actions: np.ndarray, ts: np.ndarray, chunk: int) -> np.ndarray:
    """``(len(ts), chunk, 7)``: the demonstrator's actions at raw steps ``t .. t + chunk - 1`` for each ``t`` in
    ``ts`` (the idle filter chooses which frames start a chunk, not what follows them). Past the episode's end the
    chunk holds still: zero motion, the last gripper command."""
    hold = np.zeros(actions.shape[1], np.float32)
    hold[-1] = actions[-1, -1]
    padded = np.concatenate([actions, np.repeat(hold[None], chunk, 0)])
    idx = np.asarray(ts)[:, None] + np.arange(chunk)[None]
    return padded[idx]
