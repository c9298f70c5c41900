"""OpenVLA ``predict_action`` latency on this machine, next to one rendered env step, measured in one run.

For each preset (default: tiny, tiny-conv, micro) it writes a random-init checkpoint, loads it through the real
loader and times batched ``predict_action`` (greedy, 7 constrained action tokens) at batch 1 and 8 on 128² camera
images, with a batch-1 breakdown (preprocessing, vision + projector, LLM prefill, 6 cached decode steps), and one
teacher-forced training step (batch 8: ``score_actions`` + backward + AdamW), the cost SFT / PPO pay per batch.
With the simulator available it also times ``env.step`` of VgbPutOnReceptacle-v1 at 128² (the camera feeding the
tiny presets) and 224², in alternating rounds with the policy so that load from other processes hits both alike,
and prints the ratio policy / env step. Medians over rounds; one torch thread.

    python benchmarks/policy_latency.py [--presets tiny micro] [--rounds 5] [--no-env] [--out result.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTRUCTION = "put the red cube on the plate"


def _median(xs: list[float]) -> float:
    import numpy as np

    return float(np.median(xs))


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def policy_timers(preset: str, workdir: Path):
    """Load a random-init checkpoint of ``preset``; return (info, {name: callable})."""
    import numpy as np
    import torch

    from vla_gen_bench.models.checkpoint import init_checkpoint, load_openvla
    from vla_gen_bench.models.modeling import count_parameters

    torch.set_num_threads(1)
    path = init_checkpoint(preset, workdir / preset, seed=0)
    vla = load_openvla(path, device="cpu", dtype="float32")
    net = vla.network
    size = vla.processor.sizes[0]
    camera = 128 if size <= 128 else 224  # the env camera that feeds this preset (the processor resizes)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, camera, camera, 3), dtype=np.uint8)
    inputs = vla.prepare(images[:1], [INSTRUCTION])

    def vision():
        with torch.inference_mode():
            net.embed_images(inputs["pixel_values"])

    def prefill():
        with torch.inference_mode():
            e, m, p = net.build_inputs(**inputs)
            net.run_language_model(e, m, p, use_cache=True)

    # one teacher-forced training step (batch 8): what SFT / PPO pay per batch
    train_net = copy.deepcopy(net).train()
    opt = torch.optim.AdamW(train_net.parameters(), lr=1e-4)
    batch = vla.prepare(images, [INSTRUCTION] * 8)
    targets = torch.randint(
        net.action_begin, net.action_end, (8, 7), generator=torch.Generator().manual_seed(0)
    )

    def train_step():
        loss = -train_net.score_actions(**batch, action_tokens=targets).log_probs.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    timers = {
        "bs1": lambda: vla.predict_action(images[:1], [INSTRUCTION]),
        "bs8": lambda: vla.predict_action(images, [INSTRUCTION] * 8),
        "preprocess": lambda: vla.prepare(images[:1], [INSTRUCTION]),
        "vision+projector": vision,
        "vision+prefill": prefill,
        "train_step_bs8": train_step,
    }
    info = {
        "preset": preset,
        "image_size": size,
        "camera": camera,
        "params_M": round(count_parameters(net)["total"] / 1e6, 2),
        "sequence_length": int(net.build_inputs(**inputs)[0].shape[1]),
    }
    for fn in timers.values():  # warm-up
        fn()
    return info, timers


def env_timer(camera: str):
    import numpy as np

    from vla_gen_bench.envs import make_env

    env = make_env(camera=camera)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    scale = np.array([0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 1.0])
    state = {"steps": 0}

    def step():
        if state["steps"] and state["steps"] % 80 == 0:
            env.reset(seed=state["steps"])
        env.step(rng.uniform(-1, 1, 7) * scale)
        state["steps"] += 1

    for _ in range(5):
        step()
    return env, step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "tiny-conv", "micro"])
    ap.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds (median taken)")
    ap.add_argument(
        "--no-env", action="store_true", help="skip the env-step measurement (no simulator needed)"
    )
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()

    envs = {}
    if not args.no_env:
        for name, camera in (("env_step_128", "fast"), ("env_step_224", "default")):
            envs[name] = env_timer(camera)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            info, timers = policy_timers(preset, Path(tmp))
            samples: dict[str, list[float]] = {k: [] for k in [*timers, *envs]}
            for _ in range(args.rounds):
                for k, fn in timers.items():
                    samples[k] += _time(fn, 3 if k in ("bs8", "train_step_bs8") else 10)
                for k, (_, step) in envs.items():
                    samples[k] += _time(step, 10)
            row = dict(info, **{f"{k}_ms": round(_median(v), 2) for k, v in samples.items()})
            row["bs8_per_sample_ms"] = round(row["bs8_ms"] / 8, 2)
            row["train_samples_per_s"] = round(8000 / row["train_step_bs8_ms"], 1)
            row["decode_ms"] = round(row["bs1_ms"] - row["preprocess_ms"] - row["vision+prefill_ms"], 2)
            if envs:
                own = f"env_step_{info['camera']}_ms"
                row["ratio_bs1_vs_env_step"] = round(row["bs1_ms"] / row[own], 2)
                row["ratio_bs8_per_sample_vs_env_step"] = round(row["bs8_per_sample_ms"] / row[own], 2)
            results.append(row)
    for env, _ in envs.values():
        env.close()

    print(
        f"OpenVLA predict_action latency, median ms, 1 torch thread ({platform.processor() or platform.machine()})"
    )
    cols = ["preset", "params_M", "camera", "image_size", "sequence_length", "bs1_ms", "bs8_ms", "bs8_per_sample_ms",
            "preprocess_ms", "vision+projector_ms", "vision+prefill_ms", "decode_ms", "train_step_bs8_ms",
            "train_samples_per_s"]  # fmt: skip
    if envs:
        cols += [
            "env_step_128_ms",
            "env_step_224_ms",
            "ratio_bs1_vs_env_step",
            "ratio_bs8_per_sample_vs_env_step",
        ]
    for r in results:
        print("  " + "  ".join(f"{c}={r[c]}" for c in cols))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}, indent=2)
        )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
