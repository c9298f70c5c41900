"""The network on a tiny random checkpoint: constrained decoding, batching, log-probs, value-head position."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.models.conftest import INSTRUCTIONS
from vla_gen_bench.models.modeling import ValueHead


def test_predict_action_shapes_and_ranges(tiny_vla, images):
    pred = tiny_vla.predict_action(images, INSTRUCTIONS)
    lo, hi = tiny_vla.config.action_token_range
    assert pred.actions.shape == pred.tokens.shape == pred.log_probs.shape == (4, 7)
    assert ((pred.tokens >= lo) & (pred.tokens < hi)).all()
    assert np.isfinite(pred.actions).all() and (pred.log_probs <= 0).all()
    assert pred.value_hidden.shape == (4, tiny_vla.config.text_config["hidden_size"])
    assert pred.unnorm_key == "random_init"


def test_constrained_decoding_never_emits_other_tokens(tiny_vla, images):
    """Rig lm_head so that an unconstrained decoder would pick a text token; ours still emits action tokens."""
    vla = copy.copy(tiny_vla)
    vla.model = copy.deepcopy(tiny_vla.model)
    net = vla.network
    inputs = vla.prepare(images, INSTRUCTIONS)
    with torch.no_grad():
        h = net.forward(**inputs)["hidden"][:, -1]  # (4, d) states that emit the first action token
        net.language_model.lm_head.weight[5] = 1000.0 * h.mean(0) / h.mean(0).norm()
        full = net.forward(**inputs)["logits"][:, -1]
    assert (full.argmax(-1) == 5).all(), "the rigged model prefers a non-action token"
    lo, hi = net.action_begin, net.action_end
    for temperature in (0.0, 1.0, 5.0):
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            out = net.generate_actions(**inputs, temperature=temperature, generator=g)
            assert ((out.tokens >= lo) & (out.tokens < hi)).all()


def test_greedy_is_deterministic_and_sampling_is_seeded(sharp_vla, images):
    a = sharp_vla.predict_action(images, INSTRUCTIONS)
    b = sharp_vla.predict_action(images, INSTRUCTIONS)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.log_probs, b.log_probs)
    s1 = sharp_vla.predict_action(
        images, INSTRUCTIONS, temperature=1.0, generator=torch.Generator().manual_seed(1)
    )
    s2 = sharp_vla.predict_action(
        images, INSTRUCTIONS, temperature=1.0, generator=torch.Generator().manual_seed(1)
    )
    s3 = sharp_vla.predict_action(
        images, INSTRUCTIONS, temperature=1.0, generator=torch.Generator().manual_seed(2)
    )
    assert np.array_equal(s1.tokens, s2.tokens)
    assert not np.array_equal(s1.tokens, s3.tokens)


def test_batched_equals_one_by_one(sharp_vla, images):
    """Left padding of prompts of different lengths must not change any row."""
    batch = sharp_vla.predict_action(images, INSTRUCTIONS)
    assert len({len(sharp_vla.tokenizer.prompt_ids(i)) for i in INSTRUCTIONS}) > 1
    for i in range(4):
        one = sharp_vla.predict_action(images[i : i + 1], INSTRUCTIONS[i : i + 1])
        assert np.array_equal(one.tokens[0], batch.tokens[i])
        assert np.allclose(one.log_probs[0], batch.log_probs[i], atol=1e-4)
        assert torch.allclose(one.value_hidden[0], batch.value_hidden[i], atol=1e-4)


def test_the_image_changes_the_action_distribution(sharp_vla, images):
    """OpenVLA's remote code on transformers 5 silently ignores the image; ours must not."""
    inputs = sharp_vla.prepare(images[:2], [INSTRUCTIONS[0]] * 2)
    with torch.no_grad():
        logits = sharp_vla.network.forward(**inputs)["logits"][:, -1]
    assert (logits[0] - logits[1]).abs().max() > 1e-3
    preds = sharp_vla.predict_action(images, [INSTRUCTIONS[0]] * 4)
    assert len({tuple(t) for t in preds.tokens}) > 1


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_log_probs_of_sampled_tokens_match_a_direct_computation(sharp_vla, images, temperature):
    net = sharp_vla.network
    inputs = sharp_vla.prepare(images, INSTRUCTIONS)
    g = torch.Generator().manual_seed(3)
    gen = net.generate_actions(**inputs, temperature=temperature, generator=g)
    scored = net.score_actions(**inputs, action_tokens=gen.tokens, temperature=temperature)
    assert torch.allclose(scored.log_probs, gen.log_probs, atol=1e-4)
    # direct: full-vocabulary logits of one teacher-forced forward, restricted to the action ids by hand
    ids = torch.cat([inputs["input_ids"], gen.tokens], 1)
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(gen.tokens)], 1)
    with torch.no_grad():
        logits = net.forward(inputs["pixel_values"], ids, mask)["logits"]  # (b, L, V)
    k = gen.tokens.shape[1]
    restricted = logits[:, -(k + 1) : -1, net.action_begin : net.action_end] / temperature
    direct = F.log_softmax(restricted.float(), -1).gather(-1, (gen.tokens - net.action_begin)[..., None])[
        ..., 0
    ]
    assert torch.allclose(direct, gen.log_probs, atol=1e-4)
    assert (scored.entropy > 0).all()


def test_value_hidden_is_the_state_that_emits_the_first_action_token(sharp_vla, images):
    net = sharp_vla.network
    inputs = sharp_vla.prepare(images, INSTRUCTIONS)
    gen = net.generate_actions(**inputs)
    with torch.no_grad():
        out = net.forward(**inputs)
        scored = net.score_actions(**inputs, action_tokens=gen.tokens)
    last_prompt = out["hidden"][:, -1]  # the separator position, after the final norm
    assert torch.allclose(gen.value_hidden, last_prompt, atol=1e-4)
    assert torch.allclose(scored.value_hidden, last_prompt, atol=1e-4)
    # and it is the state whose logits pick the first action token
    first = net.action_logits(last_prompt).argmax(-1) + net.action_begin
    assert torch.equal(first, gen.tokens[:, 0])


def test_sequence_layout_bos_patches_prompt(tiny_vla, images):
    net = tiny_vla.network
    inputs = tiny_vla.prepare(images[:2], ["push", INSTRUCTIONS[2]])
    embeds, mask, pos = net.build_inputs(**inputs)
    patches = net.embed_images(inputs["pixel_values"])
    text = net.get_input_embeddings()(inputs["input_ids"])
    p = patches.shape[1]
    n_pad = int((inputs["attention_mask"][0] == 0).sum())
    assert n_pad > 0
    row = embeds[0]
    assert torch.equal(row[n_pad], text[0, n_pad])  # BOS after the pads
    assert torch.equal(row[n_pad + 1 : n_pad + 1 + p], patches[0])  # then every patch
    assert torch.equal(row[n_pad + 1 + p :], text[0, n_pad + 1 :])  # then the prompt
    assert mask[0, :n_pad].sum() == 0 and mask[0, n_pad:].all()
    assert pos[0, n_pad] == 0 and pos[0, -1] == mask[0].sum() - 1


def test_right_padding_is_refused(tiny_vla, images):
    inputs = tiny_vla.prepare(images[:1], ["push"])
    ids = torch.cat([inputs["input_ids"], torch.tensor([[tiny_vla.tokenizer.pad_token_id]])], 1)
    mask = torch.cat([inputs["attention_mask"], torch.tensor([[0]])], 1)
    with pytest.raises(ValueError, match="left-padded"):
        tiny_vla.network.generate_actions(inputs["pixel_values"], ids, mask)


def test_score_actions_and_value_head_are_differentiable(tiny_vla, images):
    net = copy.deepcopy(tiny_vla.network)
    inputs = tiny_vla.prepare(images[:2], INSTRUCTIONS[:2])
    tokens = net.generate_actions(**inputs).tokens
    value_head = ValueHead(net.config.text_config["hidden_size"])
    assert value_head.net[-1].bias is None and [m.out_features for m in value_head.net[::2]] == [512, 128, 1]
    out = net.score_actions(**inputs, action_tokens=tokens)
    values = value_head(out.value_hidden)
    assert values.shape == (2,)
    loss = -out.log_probs.sum() + values.pow(2).sum()
    loss.backward()
    assert net.projector.fc1.weight.grad is not None and value_head.net[0].weight.grad is not None
    assert net.vision_backbone.featurizer.blocks[0].ls1.scale_factor.grad is not None
