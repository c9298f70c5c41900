"""HF-layout checkpoints: round trip, sharding, dtypes, the key map, unnorm keys and malformed folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.models.conftest import INSTRUCTIONS, copy_checkpoint
from vla_gen_bench.models.action_tokenizer import UnnormKeyError
from vla_gen_bench.models.checkpoint import (
    CheckpointError,
    init_checkpoint,
    load_openvla,
    map_key,
    save_checkpoint,
)
from vla_gen_bench.models.modeling import OpenVLA, build_model
from vla_gen_bench.models.presets import get_preset
from vla_gen_bench.models.processor import ImageProcessor
from vla_gen_bench.models.tokenizer import build_tokenizer

HF_FILES = {
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "preprocessor_config.json", "generation_config.json",
}  # fmt: skip


def in_memory_tiny(seed: int = 0) -> OpenVLA:
    cfg = get_preset("tiny").config
    return OpenVLA(build_model(cfg, seed=seed), cfg, build_tokenizer(1024), ImageProcessor.from_config(cfg))


def test_layout_and_identical_outputs_after_round_trip(tiny_ckpt, tiny_vla, images):
    assert {p.name for p in tiny_ckpt.iterdir()} == HF_FILES
    config = json.loads((tiny_ckpt / "config.json").read_text())
    assert config["model_type"] == "openvla" and "auto_map" not in config
    assert config["text_config"]["vocab_size"] == 1088 and config["pad_to_multiple_of"] == 64
    original = in_memory_tiny(seed=0)  # what init_checkpoint built before writing
    loaded = tiny_vla.network.state_dict()
    for k, v in original.network.state_dict().items():
        assert torch.equal(v, loaded[k]), k
    a = original.predict_action(images, INSTRUCTIONS)
    b = tiny_vla.predict_action(images, INSTRUCTIONS)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.log_probs, b.log_probs)


def test_sharded_checkpoint_loads_identically(tiny_vla, tmp_path, images):
    out = save_checkpoint(tiny_vla, tmp_path / "sharded", max_shard_size="4MB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (out / "model.safetensors").exists()
    assert set(index["weight_map"]) == set(tiny_vla.network.state_dict())
    back = load_openvla(out, device="cpu")
    a, b = tiny_vla.predict_action(images, INSTRUCTIONS), back.predict_action(images, INSTRUCTIONS)
    assert np.array_equal(a.log_probs, b.log_probs)


def test_seed_determines_the_weights(tmp_path):
    a = init_checkpoint("tiny", tmp_path / "a", seed=3)
    b = init_checkpoint("tiny", tmp_path / "b", seed=3)
    c = init_checkpoint("tiny", tmp_path / "c", seed=4)
    wa, wb, wc = (load_file(str(p / "model.safetensors")) for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["projector.fc1.weight"], wc["projector.fc1.weight"])
    with pytest.raises(FileExistsError, match="overwrite"):
        init_checkpoint("tiny", a, seed=3)


def test_bf16_on_disk_and_in_memory(tiny_vla, tmp_path, images):
    out = save_checkpoint(tiny_vla, tmp_path / "bf16", dtype="bfloat16")
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    as_fp32 = load_openvla(out, device="cpu", dtype="float32")
    w = as_fp32.network.projector.fc1.weight
    assert w.dtype == torch.float32
    assert torch.equal(w, tiny_vla.network.projector.fc1.weight.to(torch.bfloat16).float())
    as_bf16 = load_openvla(out, device="cpu", dtype="bfloat16")
    assert as_bf16.network.dtype == torch.bfloat16
    pred = as_bf16.predict_action(images, INSTRUCTIONS)
    assert pred.actions.shape == (4, 7) and np.isfinite(pred.log_probs).all()


def test_dataset_statistics_json_adds_keys(tiny_ckpt, tmp_path, images):
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "ck")
    stats = {"bridge_orig": {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}}}
    (ck / "dataset_statistics.json").write_text(json.dumps(stats))
    vla = load_openvla(ck, device="cpu")
    assert sorted(vla.norm_stats) == ["bridge_orig", "random_init"]
    with pytest.raises(UnnormKeyError, match="unnorm_key is required.*available: bridge_orig, random_init"):
        vla.predict_action(images[:1], INSTRUCTIONS[:1])
    a = vla.predict_action(images[:1], INSTRUCTIONS[:1], unnorm_key="bridge_orig")
    assert np.allclose(a.actions[0, :6], a.normalized[0, :6])  # q01 = -1, q99 = 1: identity


def test_wrong_unnorm_key_lists_the_available_ones(tiny_ckpt):
    with pytest.raises(UnnormKeyError, match="unknown unnorm_key 'bridge_orig'; available: random_init"):
        load_openvla(tiny_ckpt, device="cpu", unnorm_key="bridge_orig")


def test_key_map_renames_older_spellings():
    assert (
        map_key("vision_backbone.featurizer.blocks.3.ls1.gamma")
        == "vision_backbone.featurizer.blocks.3.ls1.scale_factor"
    )
    assert map_key("vision_backbone.fused_featurizer.blocks.0.ls2.gamma").endswith("ls2.scale_factor")
    assert map_key("projector.0.weight") == "projector.fc1.weight"
    assert map_key("projector.4.bias") == "projector.fc3.bias"
    assert map_key("llm_backbone.llm.model.norm.weight") == "language_model.model.norm.weight"
    assert map_key("vision_backbone.dino_featurizer.cls_token") == "vision_backbone.featurizer.cls_token"
    assert (
        map_key("vision_backbone.siglip_featurizer.pos_embed") == "vision_backbone.fused_featurizer.pos_embed"
    )
    assert map_key("language_model.lm_head.weight") == "language_model.lm_head.weight"


def test_checkpoint_with_older_names_loads_identically(tiny_ckpt, tiny_vla, tmp_path, images):
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "legacy")
    tensors = load_file(str(ck / "model.safetensors"))
    renamed = {}
    for k, v in tensors.items():
        k = k.replace(".scale_factor", ".gamma").replace("projector.fc1.", "projector.0.")
        k = k.replace("projector.fc2.", "projector.2.").replace("projector.fc3.", "projector.4.")
        renamed[k.replace("language_model.", "llm_backbone.llm.", 1)] = v
    save_file(renamed, str(ck / "model.safetensors"))
    back = load_openvla(ck, device="cpu")
    a, b = tiny_vla.predict_action(images, INSTRUCTIONS), back.predict_action(images, INSTRUCTIONS)
    assert np.array_equal(a.log_probs, b.log_probs)


# --- malformed folders ---------------------------------------------------------------------------------------------
def _edit_weights(ck, fn):
    tensors = load_file(str(ck / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(ck / "model.safetensors"))


def _drop(name):
    return lambda t: t.pop(name)


def _add(t):
    t["projector.extra.weight"] = torch.zeros(2)


def _reshape(t):
    t["projector.fc3.weight"] = torch.zeros(3, 3)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda ck: [p.unlink() for p in ck.iterdir()] and ck.rmdir(), "does not exist"),
        (lambda ck: (ck / "config.json").unlink(), "has no config.json"),
        (lambda ck: (ck / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda ck: (ck / "config.json").write_text('{"model_type": "llava"}'), "model_type 'llava'; expected 'openvla'"),
        (lambda ck: (ck / "model.safetensors").unlink(), "has no weights: expected model.safetensors"),
        (lambda ck: (ck / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{"), "not a readable safetensors"),
        (lambda ck: (ck / "tokenizer.json").unlink(), "has no tokenizer"),
        (lambda ck: (ck / "preprocessor_config.json").write_text('{"interpolations": ["bilinear"]}'),
         "only bicubic"),
        (lambda ck: _edit_weights(ck, _drop("language_model.model.norm.weight")),
         "1 tensors missing from the checkpoint: language_model.model.norm.weight"),
        (lambda ck: _edit_weights(ck, _add), "1 unexpected tensors: projector.extra.weight"),
        (lambda ck: _edit_weights(ck, _reshape),
         r"1 shape mismatches: projector.fc3.weight \(3, 3\) \(model expects \(256, 256\)\)"),
    ],
    ids=["no-folder", "no-config", "bad-json", "not-openvla", "no-weights", "corrupt-weights", "no-tokenizer", "bad-preprocessor",
         "missing-tensor", "unexpected-tensor", "shape-mismatch"],
)  # fmt: skip
def test_malformed_checkpoints_fail_clearly(tiny_ckpt, tmp_path, breakage, message):
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "ck")
    breakage(ck)
    with pytest.raises(CheckpointError, match=message):
        load_openvla(ck, device="cpu")


def test_index_naming_a_missing_shard_fails(tiny_vla, tmp_path):
    out = save_checkpoint(tiny_vla, tmp_path / "sharded", max_shard_size="4MB")
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 2
    shards[1].unlink()
    with pytest.raises(
        CheckpointError, match=f"lists shard files that are not in the folder: {shards[1].name}"
    ):
        load_openvla(out, device="cpu")


def test_tokenizer_that_does_not_fit_the_config_fails(tiny_ckpt, tmp_path):
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "ck")
    build_tokenizer(2048).save(ck)
    with pytest.raises(CheckpointError, match="tokenizer has 2048 base tokens.*1024"):
        load_openvla(ck, device="cpu")
