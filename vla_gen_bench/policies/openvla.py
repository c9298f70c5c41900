"""``openvla:<dir>``: an HF OpenVLA checkpoint folder (real or a ``vgb model init`` one) as a benchmark Policy.

Action mapping (OpenVLA -> the benchmark's env convention, ``policies/base.py``):

* dims 0-5: the de-normalised deltas as they are — metres and radians in the robot base frame, rotation as an XYZ
  Euler delta — which is what Bridge-trained OpenVLA emits and RL4VLA feeds its controller. The env clips them to
  its per-step bounds.
* dim 6 (gripper): OpenVLA's gripper target is not normalised (mask False in ``bridge_orig``), and its datasets
  store it as 1 = open, 0 = close. The decoded value is thresholded at 0.5: ``> 0.5`` -> +1 (open), else -1
  (close), exactly as RL4VLA and SimplerEnv's WidowX wrapper do. Checkpoints trained on ±1 gripper labels map the
  same way.

Decoding: by default only the 256 action tokens can be emitted (``decode="actions"``); the official OpenVLA
``predict_action`` takes the arg-max over the whole vocabulary and decodes a non-action token by clipping it to an
edge bin. ``--policy.decode unconstrained`` decodes that way (docs/openvla.md §4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.policies.base import ActionSpec

GRIPPER_THRESHOLD = 0.5


class OpenVLAPolicy:
    """Closed-loop OpenVLA policy: one image + instruction -> one (7,) action (or a (chunk, 7) chunk).

    The defaults of ``temperature`` (0 = greedy), ``seed``, ``execute`` and ``decode`` are the ones
    :class:`vla_gen_bench.options.PolicyOptions` documents (``--policy.<name>``); they are declared here only.
    """

    def __init__(
        self,
        vla,
        unnorm_key: str | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        execute: int | None = None,
        decode: str = "actions",
    ) -> None:
        import torch

        from vla_gen_bench.models.modeling import DECODE_MODES

        if decode not in DECODE_MODES:
            raise ValueError(
                f"decode={decode!r}: choose 'actions' (only action tokens, the default) or 'unconstrained' (any "
                "token, decoded as the official OpenVLA predict_action does)"
            )
        self.decode = decode
        self.vla = vla
        self.unnorm_key = vla.resolve_unnorm_key(unnorm_key)
        stats = vla.action_stats(self.unnorm_key)
        if stats.dim != 7:
            raise ValueError(
                f"unnorm_key {self.unnorm_key!r} describes {stats.dim}-D actions; the benchmark needs 7 "
                "(dx, dy, dz, drx, dry, drz, gripper)"
            )
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.generator = torch.Generator(device=vla.device).manual_seed(self.seed)
        self.instruction: str | None = None
        if execute is None:  # the checkpoint's own choice (vgb.execute), else the whole chunk
            execute = int(getattr(vla.config, "execute", 0))
        if isinstance(execute, bool) or not isinstance(execute, int) or not 0 <= execute <= vla.chunk:
            raise ValueError(
                f"execute={execute}: this checkpoint decodes chunks of {vla.chunk} action(s); execute takes 1 to "
                f"{vla.chunk} (the first rows of each chunk run before the next forward pass), or 0 for all of them "
                "(omit it for the checkpoint's default)"
            )
        self.execute = execute or vla.chunk
        # (execute, 7) actions per call, run open-loop; then a new forward pass
        self.spec = ActionSpec(chunk=self.execute)
        self.metadata: dict[str, Any] = {
            "policy": "openvla",
            "checkpoint": vla.source,
            "preset": vla.config.preset,
            "unnorm_key": self.unnorm_key,
            "temperature": self.temperature,
            "seed": self.seed,
            "device": str(vla.device),
            "dtype": str(vla.network.dtype).removeprefix("torch."),
            "image_sizes": list(vla.processor.sizes),
            "prompt_template": "In: What action should the robot take to {instruction}?\nOut:",
            "gripper_mapping": f"+1 (open) if decoded gripper > {GRIPPER_THRESHOLD} else -1 (close)",
            "decode": self.decode,
        }
        if vla.chunk > 1:
            self.metadata["action_chunk"] = vla.chunk
            self.metadata["execute"] = self.execute

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        unnorm_key: str | None = None,
        device: str = "auto",
        dtype: str | None = "auto",
        lora: str | Path | None = None,
        center_crop: bool = False,
        fingerprint: bool = True,
        **options: Any,
    ) -> OpenVLAPolicy:
        """Load ``path`` (an HF OpenVLA folder) for evaluation.

        Args:
            unnorm_key: dataset statistics to de-normalise with; required when the checkpoint has several.
            device / dtype: ``"auto"`` = CUDA + bf16 when present, else CPU + fp32.
            lora: optional peft adapter folder, merged into the weights.
            center_crop: crop 90 % of the image area first (for fine-tunes trained with random crops, e.g. LIBERO).
            fingerprint: record a sha256 of the checkpoint files in ``metadata`` (reads the weights once more).
            options: ``temperature``, ``seed``, ``execute``, ``decode`` (the policy's own, see ``__init__``;
                :class:`vla_gen_bench.options.PolicyOptions` documents each); other runner options (e.g. a ws://
                client's ``timeout_s``) are accepted and ignored.
        """
        from dataclasses import replace

        from vla_gen_bench.models.checkpoint import checkpoint_fingerprint, load_openvla

        vla = load_openvla(path, unnorm_key=unnorm_key, device=device, dtype=dtype, lora=lora)
        if center_crop:
            vla.processor = replace(vla.processor, center_crop_scale=0.9)
        own = {k: options[k] for k in ("temperature", "seed", "execute", "decode") if k in options}
        policy = cls(vla, unnorm_key=unnorm_key, **own)
        policy.metadata["lora"] = str(lora) if lora is not None else None
        policy.metadata["center_crop"] = center_crop
        if fingerprint:
            policy.metadata["checkpoint_sha256"] = checkpoint_fingerprint(path)
        return policy

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def to_env_actions(self, actions: np.ndarray) -> np.ndarray:
        """De-normalised OpenVLA actions ``(..., 7)`` -> env actions (gripper mapped to ±1), float32."""
        out = np.array(actions, dtype=np.float32, copy=True)
        out[..., 6] = np.where(out[..., 6] > GRIPPER_THRESHOLD, 1.0, -1.0)
        return out

    def act_batch(
        self, images, instructions: list[str], sample_keys: list[int | None] | None = None
    ) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 images and B instructions -> ``(B, 7)`` env actions (one batched forward), or
        ``(B, chunk, 7)`` for a chunking checkpoint.

        ``sample_keys``: when sampling (temperature > 0), row ``i`` with a key draws its random numbers from
        ``numpy.random.default_rng([seed, key])`` instead of the policy's shared stream, so its action depends only on
        (seed, key, image, instruction) and not on the other rows of the batch. The evaluator passes one key per
        (variant, seed, episode, step).
        """
        pred = self.vla.predict_action(
            images,
            instructions,
            unnorm_key=self.unnorm_key,
            temperature=self.temperature,
            generator=self.generator,
            uniforms=self.uniforms(sample_keys),
            decode=self.decode,
        )
        actions = pred.actions if self.vla.chunk == 1 else pred.actions[:, : self.execute]
        return self.to_env_actions(actions)

    def uniforms(self, sample_keys: list[int | None] | None) -> np.ndarray | None:
        """``(B, dim)`` random numbers for sampling: row ``i`` from ``default_rng([seed, key_i])``, rows without a key
        from the policy's shared generator; None (the shared generator samples) when no row has a key or greedy."""
        if self.temperature <= 0 or sample_keys is None or all(k is None for k in sample_keys):
            return None
        dim = self.vla.action_stats(self.unnorm_key).dim * self.vla.chunk
        shared = torch_rand(len(sample_keys), dim, self.generator)
        return np.stack([
            np.random.default_rng([self.seed, int(k)]).random(dim) if k is not None else shared[i]
            for i, k in enumerate(sample_keys)
        ])  # fmt: skip

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        instruction = obs.get("instruction") or self.instruction
        if not instruction:
            raise ValueError("no instruction: call reset(instruction) or pass obs['instruction']")
        keys = None if obs.get("sample_key") is None else [obs["sample_key"]]
        return self.act_batch(np.asarray(obs["image"])[None], [instruction], keys)[0]


def torch_rand(b: int, k: int, generator) -> np.ndarray:
    """``(b, k)`` uniforms from a torch generator (the policy's shared stream, for rows without a sample key)."""
    import torch

    return torch.rand(b, k, generator=generator, device=generator.device).cpu().double().numpy()
