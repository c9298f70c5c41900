"""Contact sheets: what the policy sees, per variant (first frames) and over time (frame strips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CAPTION_H = 30


def _tile(img: np.ndarray, *lines: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    tile = Image.new("RGB", (w, h + CAPTION_H), (255, 255, 255))
    tile.paste(Image.fromarray(img), (0, 0))
    d = ImageDraw.Draw(tile)
    for i, text in enumerate(lines[:2]):
        d.text((3, h + 2 + 13 * i), text[: max(8, w // 6)], fill=(0, 0, 0) if i == 0 else (70, 70, 70))
    return np.asarray(tile)


def _grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    cols = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // cols)
    blank = np.full_like(tiles[0], 255)
    tiles = tiles + [blank] * (rows * cols - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], 1) for r in range(rows)], 0)


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    padded = [np.pad(p, ((0, 8), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in parts]
    return np.concatenate(padded, 0)


def _rgb(obs) -> np.ndarray:
    return obs["sensor_data"]["policy_camera"]["rgb"][0].cpu().numpy()


def strip_steps(variant) -> tuple[int, ...]:
    """Steps to show for a variant whose effect unfolds over time (reposition: around the move)."""
    if variant.reposition is not None:
        k = variant.reposition.at_step
        return tuple(sorted({0, max(0, k - 1), k, k + 1, k + 6}))
    return (0, 4, 8, 12, 16)


def acts_over_time(variant) -> bool:
    return variant.reposition is not None or variant.overlay is not None


def variant_sheet(env, variants, out: Path, seed: int = 0, episode: int = 0, columns: int = 4,
                  strips: bool = True) -> Path:  # fmt: skip
    """One captioned first frame per variant (episode ``episode`` of ``seed``), then, for variants that act over
    time (overlays, reposition), a strip of frames while the scripted oracle works."""
    from PIL import Image

    from vla_gen_bench.eval.runner import policy_observation
    from vla_gen_bench.policies.scripted import ScriptedPolicy
    from vla_gen_bench.variants.manifest import episode as make_episode

    store = env.unwrapped.store
    tiles, strip_rows = [], []
    for v in variants:
        spec = make_episode(v, seed, episode, store)
        obs, _ = env.reset(seed=seed, options={"episode": spec})
        tiles.append(_tile(_rgb(obs), f"{v.name} [{v.axis}]", spec.instruction))
        if strips and acts_over_time(v):
            steps = strip_steps(v)
            policy = ScriptedPolicy()
            policy.reset(spec.instruction)
            frames = {0: _rgb(obs)}
            for t in range(1, max(steps) + 1):
                obs, *_ = env.step(policy.act(policy_observation(env, obs, privileged=True)))
                frames[t] = _rgb(obs)
            strip_rows.append(np.concatenate([_tile(frames[t], f"{v.name}", f"step {t}") for t in steps], 1))
    parts = [_grid(tiles, columns)] + strip_rows
    sheet = _stack(parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return out


def episode_sheet(env, variant, entries, out: Path, columns: int = 4) -> Path:
    """First frames of the given manifest entries of one variant."""
    from PIL import Image

    tiles = []
    for e in entries:
        obs, _ = env.reset(seed=e.seed, options={"episode": e.spec})
        tiles.append(_tile(_rgb(obs), f"{variant.name} seed {e.seed} ep {e.episode}", e.spec.instruction))
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_grid(tiles, columns)).save(out)
    return out


def seed_sheet(env, variant, seeds: list[int], out: Path, columns: int = 4) -> Path:
    """First frames of episode 0 for several seeds of one variant."""
    from vla_gen_bench.variants.manifest import manifest

    entries = [e for s in seeds for e in manifest(variant, [s], 1, env.unwrapped.store)]
    return episode_sheet(env, variant, entries, out, columns)
