"""Checkpoints vgb writes in the official OpenVLA format (issue 41), pinned without a second environment: the
separator id, the tokenizer.json merges format, the config / processor fields the official loader reads, the
"loads in vgb only" label and its refusal, and unconstrained decoding as the official ``predict_action`` decodes.
``benchmarks/openvla_official_check.py`` runs the official code itself on such checkpoints."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.models.conftest import INSTRUCTIONS, copy_checkpoint
from vla_gen_bench.models.action_tokenizer import ActionTokenizer
from vla_gen_bench.models.checkpoint import (
    OFFICIAL_PROCESSOR_AUTO_MAP,
    CheckpointError,
    load_openvla,
    official_format_problems,
    read_config,
    save_checkpoint,
)
from vla_gen_bench.models.config import OFFICIAL_AUTO_MAP, VGB_ONLY, ConfigError, OpenVLAConfig
from vla_gen_bench.models.presets import PRESETS, get_preset
from vla_gen_bench.models.tokenizer import LLAMA2_SEPARATOR_ID, TextTokenizer, build_tokenizer

BUNDLES = sorted(p for p in (Path(__file__).parents[2] / "baselines" / "checkpoints").iterdir() if p.is_dir())


def official_small_for_tests() -> OpenVLAConfig:
    """``official-small`` with timm's smallest ViT (both backbones, 32 px) and a 64-wide Llama: still a config the
    official code builds (timm ids alone, 32000-token vocabulary), but built in about a second."""
    base = get_preset("official-small").config
    text = dict(base.text_config, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    return replace(base, timm_model_ids=("vit_tiny_patch16_224",) * 2, image_sizes=(32, 32), text_config=text)


@pytest.fixture(scope="module")
def tok32k() -> TextTokenizer:
    return build_tokenizer(32000)


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory, tok32k) -> Path:
    """A random-init checkpoint of :func:`official_small_for_tests`, written by save_checkpoint."""
    from vla_gen_bench.models.modeling import OpenVLA, build_model
    from vla_gen_bench.models.processor import ImageProcessor

    cfg = official_small_for_tests()
    vla = OpenVLA(build_model(cfg, seed=0), cfg, tok32k, ImageProcessor.from_config(cfg))
    return save_checkpoint(vla, tmp_path_factory.mktemp("official") / "ckpt")


# --- tokenizer -----------------------------------------------------------------------------------------------------
def test_separator_sits_at_llama2_id_29871_in_32000_token_vocabularies(tok32k):
    assert tok32k.separator_id == LLAMA2_SEPARATOR_ID == 29871
    ids = tok32k.prompt_ids("put the red cube on the plate")
    assert ids[0] == 1 and ids[-1] == 29871  # what the official predict_action appends
    assert tok32k.encode("In: What action should the robot take to push?\nOut: ")[-1] == 29871
    assert (tok32k.token_to_id("<action_0>"), tok32k.token_to_id("<action_255>"), tok32k.pad_token_id) == (
        31744, 31999, 32000,
    )  # fmt: skip


def test_small_vocabularies_keep_the_bundled_tokenizer(tok32k):
    """The tiny presets' tokenizer is unchanged: the bundled checkpoints hold exactly what build_tokenizer(1024)
    builds (same ids, same merges), separator included."""
    small = build_tokenizer(1024)
    assert small.separator_id == 288 and tok32k.backend.id_to_token(288).startswith("<unused_")
    merges = json.loads(small.backend.to_str())["model"]["merges"]
    assert BUNDLES
    for bundle in BUNDLES:
        t = TextTokenizer.from_dir(bundle)  # pairs in these files: still read
        assert t.backend.get_vocab() == small.backend.get_vocab(), bundle.name
        # pairs (bundles written before the official format) or "a b" strings (written since): the same merges
        saved = json.loads((bundle / "tokenizer.json").read_text())["model"]["merges"]
        as_pairs = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in saved]
        assert as_pairs == [list(m) for m in merges], bundle.name


def test_tokenizer_json_writes_merges_as_strings_that_read_back(tok32k, tmp_path):
    tok32k.save(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    merges = saved["model"]["merges"]
    assert merges and all(isinstance(m, str) and len(m.split(" ")) == 2 for m in merges)
    pairs = json.loads(tok32k.backend.to_str())["model"]["merges"]  # what tokenizers >= 0.20 would have saved
    assert [m.split(" ") for m in merges] == [list(p) for p in pairs]
    back = TextTokenizer.from_dir(tmp_path)
    for text in INSTRUCTIONS:
        assert back.prompt_ids(text) == tok32k.prompt_ids(text)
    assert back.backend.get_vocab() == tok32k.backend.get_vocab()


def test_string_merges_leaves_pairs_it_cannot_express():
    from vla_gen_bench.models.tokenizer import string_merges

    ok = {"model": {"type": "BPE", "merges": [["\u2581", "t"], "h e"]}}
    assert string_merges(ok)["model"]["merges"] == ["\u2581 t", "h e"]
    spaced = {"model": {"type": "BPE", "merges": [["a b", "c"], ["d", "e"]]}}
    assert string_merges(spaced)["model"]["merges"] == [["a b", "c"], ["d", "e"]]


def test_tokenizer_config_gives_the_official_processor_llama_inputs(tok32k, tmp_path):
    """The official PrismaticProcessor passes every tokenizer output to generate(), which refuses token_type_ids."""
    tok32k.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["model_input_names"] == ["input_ids", "attention_mask"]
    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    from transformers import AutoTokenizer

    assert set(AutoTokenizer.from_pretrained(str(tmp_path))("In: push?\nOut:")) == {
        "input_ids",
        "attention_mask",
    }


# --- config and processor files ------------------------------------------------------------------------------------
def test_official_presets_write_the_fields_the_official_loader_reads():
    for name in ("openvla-7b", "official-small"):
        cfg = get_preset(name).config
        assert cfg.vgb_only_reasons() == [], name
        d = cfg.to_dict()
        assert d["auto_map"] == OFFICIAL_AUTO_MAP and d["architectures"] == ["OpenVLAForActionPrediction"]
        assert d["model_type"] == "openvla" and d["vision_backbone_id"] == "dinosiglip-vit-so-224px"
        assert d["llm_backbone_id"] == "llama2-7b-pure" and d["arch_specifier"] == "no-align+fused-gelu-mlp"
        assert d["text_config"]["vocab_size"] == 32064 and d["pad_token_id"] == 32000
        assert d["pad_to_multiple_of"] == 64 and d["n_action_bins"] == 256
        assert len(d["timm_model_ids"]) == len(d["image_sizes"]) == 2 and "compatibility" not in d.get(
            "vgb", {}
        )
    small = get_preset("official-small").config
    assert small.timm_model_ids == ("vit_small_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224")
    assert small.image_sizes == (112, 112) and not any(small.featurizer_kwargs)


def test_official_format_checkpoint_files(official_ckpt):
    assert official_format_problems(official_ckpt) == []
    assert official_format_problems(official_ckpt, need_code=True) == [
        "remote code missing: configuration_prismatic.py, modeling_prismatic.py, processing_prismatic.py (copy them "
        "from openvla/openvla-7b on the Hub or prismatic/extern/hf/ of github.com/openvla/openvla)"
    ]
    pre = json.loads((official_ckpt / "preprocessor_config.json").read_text())
    assert pre["auto_map"] == OFFICIAL_PROCESSOR_AUTO_MAP and pre["processor_class"] == "PrismaticProcessor"
    assert (
        pre["input_sizes"] == [[3, 32, 32]] * 2 and pre["image_processor_type"] == "PrismaticImageProcessor"
    )
    proc = json.loads((official_ckpt / "processor_config.json").read_text())
    assert proc == {"auto_map": {"AutoProcessor": "processing_prismatic.PrismaticProcessor"},
                    "processor_class": "PrismaticProcessor"}  # fmt: skip
    assert json.loads((official_ckpt / "config.json").read_text())["auto_map"] == OFFICIAL_AUTO_MAP


def test_format_check_names_what_the_official_code_would_trip_on(official_ckpt, tmp_path):
    ck = copy_checkpoint(official_ckpt, tmp_path / "broken")
    tok = json.loads((ck / "tokenizer.json").read_text(encoding="utf-8"))
    tok["model"]["merges"] = [
        m.split(" ") for m in tok["model"]["merges"]
    ]  # as tokenizers >= 0.20 saves them
    (ck / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    pre = json.loads((ck / "preprocessor_config.json").read_text())
    (ck / "preprocessor_config.json").write_text(
        json.dumps({k: v for k, v in pre.items() if k != "auto_map"})
    )
    problems = official_format_problems(ck)
    assert len(problems) == 2
    assert "BPE merges are pairs" in problems[0] and "needs {'AutoImageProcessor'" in problems[1]


def test_official_format_checkpoint_loads_back_and_decodes_both_ways(official_ckpt, images):
    vla = load_openvla(official_ckpt, device="cpu", dtype="float32")
    assert vla.tokenizer.separator_id == 29871 and vla.network.action_begin == 31744
    inputs = vla.prepare(images, INSTRUCTIONS)
    assert (inputs["input_ids"][:, -1] == 29871).all()
    constrained = vla.predict_action(images, INSTRUCTIONS)
    assert ((constrained.tokens >= 31744) & (constrained.tokens < 32000)).all()
    free = vla.predict_action(images, INSTRUCTIONS, decode="unconstrained")
    assert free.tokens.shape == (4, 7) and np.isfinite(free.actions).all()


# --- the "loads in vgb only" label ---------------------------------------------------------------------------------
VGB_ONLY_CASES = {
    "tiny": (get_preset("tiny").config, ["featurizer_kwargs", "1024-token vocabulary"]),
    "tiny-conv": (get_preset("tiny-conv").config, ["featurizer_type 'conv'", "1024-token vocabulary"]),
    "chunk": (replace(get_preset("official-small").config, action_chunk=4), ["action_chunk 4"]),
    "vocab": (
        replace(
            get_preset("official-small").config, text_config={"model_type": "llama", "vocab_size": 2048 + 64}
        ),
        ["2048-token vocabulary"],
    ),
    "llm-id": (replace(get_preset("official-small").config, llm_backbone_id="my-llama"), ["'my-llama'"]),
}


@pytest.mark.parametrize("case", list(VGB_ONLY_CASES))
def test_vgb_only_configs_are_labelled_and_never_get_an_auto_map(case):
    cfg, expected = VGB_ONLY_CASES[case]
    reasons = cfg.vgb_only_reasons()
    assert len(reasons) == len(expected) and all(e in r for e, r in zip(expected, reasons, strict=True))
    d = cfg.to_dict()
    assert "auto_map" not in d and d["vgb"]["compatibility"] == VGB_ONLY and d["vgb"]["vgb_only"] == reasons
    assert OpenVLAConfig.from_dict(json.loads(json.dumps(d))) == cfg
    with pytest.raises(ConfigError, match=f"auto_map.*{VGB_ONLY}"):  # the label cannot be overridden
        replace(cfg, extra={"auto_map": dict(OFFICIAL_AUTO_MAP)})
    # nor claimed in a config.json
    with pytest.raises(ConfigError, match=f"{VGB_ONLY}: {re.escape(reasons[0][:20])}"):
        OpenVLAConfig.from_dict({**d, "auto_map": dict(OFFICIAL_AUTO_MAP)})


def test_every_preset_is_labelled_one_way_or_the_other():
    for name in PRESETS:
        d = get_preset(name).config.to_dict()
        assert ("auto_map" in d) != (d.get("vgb", {}).get("compatibility") == VGB_ONLY), name


def test_tiny_checkpoint_says_vgb_only_and_a_false_claim_is_refused(tiny_ckpt, tmp_path):
    config = json.loads((tiny_ckpt / "config.json").read_text())
    assert config["vgb"]["compatibility"] == VGB_ONLY and "auto_map" not in config
    problems = official_format_problems(tiny_ckpt)
    assert any("1024-token vocabulary" in p for p in problems) and not any("merges" in p for p in problems)
    ck = copy_checkpoint(tiny_ckpt, tmp_path / "claims-official")
    (ck / "config.json").write_text(json.dumps({**config, "auto_map": OFFICIAL_AUTO_MAP}))
    with pytest.raises(CheckpointError, match=f"has an auto_map .* {VGB_ONLY}: featurizer_kwargs"):
        load_openvla(ck, device="cpu")


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_bundled_checkpoints_still_read_and_keep_their_fingerprint(bundle):
    """Bundles written before the label existed: unlabelled, no auto_map, same files (card.json's sha256)."""
    from vla_gen_bench.models.checkpoint import checkpoint_fingerprint

    cfg = read_config(bundle)
    assert cfg.vgb_only_reasons() and "auto_map" not in json.loads((bundle / "config.json").read_text())
    assert (
        checkpoint_fingerprint(bundle) == json.loads((bundle / "card.json").read_text())["checkpoint_sha256"]
    )


# --- decoding as the official predict_action -----------------------------------------------------------------------
def test_unconstrained_decoding_follows_the_official_formula():
    at = ActionTokenizer(32000, 256)
    top = 1 - 1 / 255  # the last bin centre: (edges[254] + edges[255]) / 2 with edges[i] = -1 + 2 i / 255
    tokens = np.array([5, 29871, 31743, 31744, 31745, 31872, 31999, 32000, 32063])
    # official: idx = clip(32000 - token - 1, 0, 254); 31872 -> 127, the centre 0
    expected = [top, top, top, top, top, 0.0, -top, -top, -top]
    assert np.allclose(at.decode_unconstrained(tokens), expected)
    inside = tokens[3:7]
    assert np.array_equal(at.decode_unconstrained(inside), at.decode(inside))
    with pytest.raises(ValueError, match="not action tokens"):
        at.decode(tokens)


def test_unconstrained_greedy_takes_the_argmax_over_the_whole_vocabulary(tiny_vla, images):
    """A random-init model mostly prefers non-action tokens: unconstrained decoding emits them (as the official
    code does) and each is the arg-max of the full logits given the tokens before it."""
    import torch

    pred = tiny_vla.predict_action(images, INSTRUCTIONS, decode="unconstrained")
    begin, end = tiny_vla.network.action_begin, tiny_vla.network.action_end
    assert ((pred.tokens < begin) | (pred.tokens >= end)).any()
    assert np.allclose(pred.normalized, tiny_vla.action_tokenizer.decode_unconstrained(pred.tokens))
    inputs = tiny_vla.prepare(images, INSTRUCTIONS)
    ids = torch.cat([inputs["input_ids"], torch.from_numpy(pred.tokens)], 1)
    mask = torch.cat([inputs["attention_mask"], torch.ones(4, 7, dtype=torch.long)], 1)
    with torch.no_grad():
        logits = tiny_vla.network(inputs["pixel_values"], ids, mask, logits_to_keep=8)["logits"][:, :-1]
    assert np.array_equal(logits.argmax(-1).numpy(), pred.tokens)
    constrained = tiny_vla.predict_action(images, INSTRUCTIONS)
    assert not np.array_equal(constrained.tokens, pred.tokens)


def test_both_decodings_agree_when_the_model_prefers_action_tokens(sharp_vla, images):
    a = sharp_vla.predict_action(images, INSTRUCTIONS)
    b = sharp_vla.predict_action(images, INSTRUCTIONS, decode="unconstrained")
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.actions, b.actions)


def test_policy_decode_option(tiny_ckpt, images):
    from vla_gen_bench.policies.openvla import OpenVLAPolicy

    p = OpenVLAPolicy.from_path(tiny_ckpt, device="cpu", decode="unconstrained", fingerprint=False)
    assert p.metadata["decode"] == "unconstrained"
    assert p.act_batch(images, INSTRUCTIONS).shape == (4, 7)
    with pytest.raises(ValueError, match="decode='official'.*'actions'.*'unconstrained'"):
        OpenVLAPolicy(p.vla, decode="official")
