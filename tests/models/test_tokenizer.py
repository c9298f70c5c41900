"""The offline Llama-style tokenizer and the prompt."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_gen_bench.models.tokenizer import SEPARATOR, TextTokenizer, build_tokenizer, format_prompt


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return build_tokenizer(1024)


def test_llama_special_ids_and_action_block(tok):
    assert (tok.token_to_id("<unk>"), tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.vocab_size == 1024 and tok.pad_token_id == 1024  # <PAD> right after the base vocabulary
    assert [tok.token_to_id(f"<action_{i}>") for i in (0, 255)] == [768, 1023]


def test_real_size_vocabulary_has_openvla_ids():
    big = build_tokenizer(32000)
    assert big.vocab_size == 32000 and big.pad_token_id == 32000
    assert big.token_to_id("<action_0>") == 31744 and big.token_to_id("<action_255>") == 31999


def test_prompt_format_and_separator(tok):
    assert format_prompt("  Put The Cube on the plate ") == (
        "In: What action should the robot take to put the cube on the plate?\nOut:"
    )
    ids = tok.prompt_ids("put the red cube on the plate")
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.separator_id
    assert tok.backend.id_to_token(tok.separator_id) == SEPARATOR
    # training tokenises "...Out: " + actions: the trailing space is exactly the separator token
    assert tok.encode(format_prompt("put the red cube on the plate") + " ") == ids[1:]
    assert tok.decode(ids[1:-1]) == format_prompt("put the red cube on the plate")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_text_encodes_without_action_tokens_and_round_trips(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < 768 for i in ids), "text must never produce action tokens"
    if text == text.strip() and "  " not in text:
        assert tok.decode(ids) == text  # byte fallback: nothing is lost


def test_build_is_deterministic(tok):
    assert build_tokenizer(1024).backend.to_str() == tok.backend.to_str()


def test_save_load_and_transformers_parity(tok, tmp_path):
    tok.save(tmp_path)
    back = TextTokenizer.from_dir(tmp_path)
    prompt = "stack the green block on the gold disk"
    assert back.prompt_ids(prompt) == tok.prompt_ids(prompt)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["padding_side"] == "left"

    from vla_gen_bench._compat import ensure_torchvision

    ensure_torchvision()
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert hf.pad_token_id == 1024 and hf.vocab_size == 1024
    assert hf(format_prompt(prompt)).input_ids == tok.prompt_ids(prompt)[:-1]  # BOS + text, like Llama's
