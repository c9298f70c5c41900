"""Preset registry, config round trip and the ``vgb model init`` handler."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.models.conftest import INSTRUCTIONS
from vla_gen_bench.models.checkpoint import load_openvla
from vla_gen_bench.models.commands import ModelInit, model_init
from vla_gen_bench.models.config import ConfigError, OpenVLAConfig
from vla_gen_bench.models.modeling import build_model, count_parameters
from vla_gen_bench.models.presets import PRESETS, PresetError, get_preset


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(PresetError, match=r"unknown model preset 'tiyn'; did you mean 'tiny'\?.*openvla-7b"):
        get_preset("tiyn")
    with pytest.raises(PresetError, match="available: openvla-7b, tiny, tiny-conv, micro, official-small"):
        get_preset("gpt")


@pytest.mark.parametrize("name", ["tiny", "tiny-conv", "micro"])
def test_tiny_presets_are_small_and_same_architecture(name, images):
    cfg = get_preset(name).config
    real = get_preset("openvla-7b").config
    assert cfg.timm_model_ids == real.timm_model_ids and cfg.arch_specifier == real.arch_specifier
    assert cfg.pad_to_multiple_of == real.pad_to_multiple_of and cfg.n_action_bins == real.n_action_bins
    counts = count_parameters(build_model(cfg))
    assert counts["total"] <= 30e6
    assert counts["language_model"] > 0 and counts["projector"] > 0


def test_config_json_round_trip():
    for p in PRESETS.values():
        cfg = get_preset(p.name).config
        d = json.loads(json.dumps(cfg.to_dict()))
        assert OpenVLAConfig.from_dict(d) == cfg
        assert d["vgb"]["preset"] == p.name


def test_config_validation():
    with pytest.raises(ConfigError, match="timm_model_ids has 1 entries"):
        OpenVLAConfig(timm_model_ids=("x",))
    with pytest.raises(ConfigError, match="unknown featurizer_type 'mlp'"):
        OpenVLAConfig(featurizer_type="mlp")
    with pytest.raises(ConfigError, match="only Llama"):
        OpenVLAConfig(text_config={"model_type": "mistral"})


@pytest.mark.parametrize(
    "name, featurizer", [("tiny-conv", "ConvFeaturizer"), ("micro", "VisionTransformer")]
)
def test_other_presets_write_and_predict(tmp_path, images, name, featurizer):
    out = tmp_path / name
    assert model_init(ModelInit(preset=name, out=out, seed=1)) == 0
    vla = load_openvla(out, device="cpu")
    assert type(vla.network.vision_backbone.featurizer).__name__ == featurizer
    assert vla.predict_action(images, INSTRUCTIONS).actions.shape == (4, 7)  # 128 px images resized as needed


def test_model_init_command(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert model_init(ModelInit(preset="tiny", out=out, seed=0)) == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out and "M parameters" in captured.err
    assert (out / "config.json").is_file() and json.loads((out / "vgb_init.json").read_text())["seed"] == 0
    assert model_init(ModelInit(preset="tiny", out=out)) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert model_init(ModelInit(preset="tiny", out=out, overwrite=True, seed=1)) == 0
    assert model_init(ModelInit(preset="tine", out=tmp_path / "x")) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err


def test_model_init_is_a_tyro_command(tmp_path, monkeypatch):
    import tyro

    cfg = tyro.cli(ModelInit, args=["--preset", "tiny", "--out", str(tmp_path / "t"), "--seed", "5"])
    assert cfg == ModelInit(preset="tiny", out=tmp_path / "t", seed=5)


def test_random_init_checkpoint_gives_actions_in_the_placeholder_range(tiny_vla, images):
    pred = tiny_vla.predict_action(images, INSTRUCTIONS)
    assert (np.abs(pred.actions[:, :3]) <= 0.1 + 1e-9).all() and (
        np.abs(pred.actions[:, 3:6]) <= 0.5 + 1e-9
    ).all()


def test_light_modules_import_without_torch():
    code = (
        "import sys, vla_gen_bench.models, vla_gen_bench.models.presets, vla_gen_bench.models.commands, "
        "vla_gen_bench.models.action_tokenizer, vla_gen_bench.policies.openvla; "
        "heavy = [m for m in ('torch', 'transformers', 'timm', 'mani_skill') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
