"""Run in the LeRobot environment by the bridge tests (imports only lerobot, torch, numpy).

make-act <dataset root> <repo id> <out>   a tiny randomly initialised ACT (no pretrained backbone) with the
                                          dataset's features and normalisation statistics, saved as lerobot-train
                                          saves a checkpoint (save_pretrained + pre/post-processors)
read <dataset root> <repo id>             the dataset as LeRobotDataset loads it: JSON with per-frame actions,
                                          states, tasks, episode indices and the decoded images (.npy beside)
make-act <dataset root> <repo id> <out> ensemble   the same with temporal ensembling (n_action_steps 1)
select <checkpoint> <image.npy> <state.npy> [steps]  lerobot's own loop: reset(), then select_action n_action_steps
                                          (or ``steps``) times on one observation; JSON list of the actions
"""

from __future__ import annotations

import json
import sys

import numpy as np


def make_act(root: str, repo_id: str, out: str, ensemble: str = "") -> None:
    import torch
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    meta = LeRobotDatasetMetadata(repo_id, root=root)
    feats = dataset_to_policy_features(meta.features)
    cfg = ACTConfig(
        input_features={k: f for k, f in feats.items() if f.type is not FeatureType.ACTION},
        output_features={k: f for k, f in feats.items() if f.type is FeatureType.ACTION},
        chunk_size=4,
        # ensemble: temporal ensembling, one action per step from a per-episode state (the server's step mode)
        n_action_steps=1 if ensemble else 3,
        temporal_ensemble_coeff=0.01 if ensemble else None,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=8,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    policy = ACTPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    print(json.dumps({"out": out, "n_action_steps": cfg.n_action_steps}))


def read(root: str, repo_id: str, images_out: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id, root=root, video_backend="pyav")
    rows = [ds[i] for i in range(len(ds))]
    key = ds.meta.camera_keys[0]
    images = np.stack([(r[key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for r in rows])
    np.save(images_out, images)
    print(
        json.dumps(
            {
                "fps": ds.fps,
                "num_episodes": ds.num_episodes,
                "image_key": key,
                "features": {
                    k: {"dtype": v["dtype"], "shape": list(v["shape"])} for k, v in ds.meta.features.items()
                },
                "action": [r["action"].tolist() for r in rows],
                "state": [r["observation.state"].tolist() for r in rows],
                "task": [r["task"] for r in rows],
                "episode_index": [int(r["episode_index"]) for r in rows],
                "frame_index": [int(r["frame_index"]) for r in rows],
            }
        )
    )


def select(checkpoint: str, image: str, state: str, steps: str = "") -> None:
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    cfg = PreTrainedConfig.from_pretrained(checkpoint)
    policy = get_policy_class(cfg.type).from_pretrained(checkpoint, config=cfg).eval()
    pre, post = make_pre_post_processors(cfg, pretrained_path=checkpoint)
    img = torch.from_numpy(np.load(image)).permute(2, 0, 1).float()[None] / 255.0
    key = next(k for k in cfg.input_features if k.startswith("observation.images."))
    batch = {key: img, "observation.state": torch.from_numpy(np.load(state))[None].float(), "task": ["x"]}
    policy.reset()
    out = []
    with torch.inference_mode():
        for _ in range(int(steps) if steps else cfg.n_action_steps):
            out.append(post(policy.select_action(pre(dict(batch)))).reshape(-1).tolist())
    print(json.dumps(out))


if __name__ == "__main__":
    {"make-act": make_act, "read": read, "select": select}[sys.argv[1]](*sys.argv[2:])
