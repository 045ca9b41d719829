"""Steering hooks: exact no-ops at the neutral setting, equal to the weight edit they stand for,
and removed on exit even when the body raises."""

from __future__ import annotations

import pytest
import torch

from pipeline.interventions import add_direction, scale_neurons, shift_heads


@pytest.fixture(scope="module")
def lm():
    from pipeline.models import load

    return load("tiny")


@pytest.fixture(scope="module")
def batch(lm):
    enc = lm.tokenizer(["Q: What is the capital of Peru?\nA: Lima", "Context: Fe is iron.\nA:"],
                       return_tensors="pt", padding=True)
    return dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])


def logits(lm, batch):
    with torch.inference_mode():
        return lm.model(**batch).logits.clone()


def no_hooks_left(lm):
    for layer in range(lm.n_layers):
        for module in (lm.layers[layer], lm.mlp(layer).down_proj, lm.attn(layer).o_proj):
            if module._forward_hooks or module._forward_pre_hooks:
                return False
    return True


def test_neutral_settings_change_no_logit(lm, batch):
    base = logits(lm, batch)
    with scale_neurons(lm, {0: [1, 5, 9], 1: [3]}, 1.0):
        assert torch.equal(logits(lm, batch), base)
    with add_direction(lm, 0, torch.randn(lm.d_model), 0.0):
        assert torch.equal(logits(lm, batch), base)
    with shift_heads(lm, {1: {0: torch.randn(lm.head_dim), 2: torch.randn(lm.head_dim)}}, 0.0):
        assert torch.equal(logits(lm, batch), base)
    assert no_hooks_left(lm)


def test_scaling_equals_editing_down_proj_columns(lm, batch):
    neurons = {0: [2, 7], 1: [11]}
    with scale_neurons(lm, neurons, 2.5):
        hooked = logits(lm, batch)
    assert not torch.allclose(hooked, logits(lm, batch))
    saved = {layer: lm.mlp(layer).down_proj.weight.detach().clone() for layer in neurons}
    try:
        with torch.no_grad():
            for layer, idx in neurons.items():
                lm.mlp(layer).down_proj.weight[:, idx] *= 2.5
        edited = logits(lm, batch)
    finally:
        with torch.no_grad():
            for layer, w in saved.items():
                lm.mlp(layer).down_proj.weight.copy_(w)
    torch.testing.assert_close(hooked, edited, rtol=1e-4, atol=1e-5)


def test_head_shift_equals_output_bias(lm, batch):
    vector = torch.randn(lm.head_dim)
    with shift_heads(lm, {1: {2: vector}}, 0.7):
        hooked = logits(lm, batch)
    o_proj = lm.attn(1).o_proj
    delta = torch.zeros(lm.n_heads * lm.head_dim)
    delta[2 * lm.head_dim : 3 * lm.head_dim] = 0.7 * vector
    bias = o_proj.weight.detach() @ delta  # what the shifted head adds to the layer's output
    handle = o_proj.register_forward_hook(lambda m, a, out: out + bias)
    try:
        expected = logits(lm, batch)
    finally:
        handle.remove()
    torch.testing.assert_close(hooked, expected, rtol=1e-4, atol=1e-5)


def test_direction_moves_logits(lm, batch):
    base = logits(lm, batch)
    with add_direction(lm, 0, torch.ones(lm.d_model), 1.0):
        assert not torch.allclose(logits(lm, batch), base)


@pytest.mark.parametrize("factory", [
    lambda lm: scale_neurons(lm, {0: [1]}, 3.0),
    lambda lm: add_direction(lm, 1, torch.ones(lm.d_model), 2.0),
    lambda lm: shift_heads(lm, {0: {1: torch.ones(lm.head_dim)}}, 1.0),
])
def test_hooks_removed_when_body_raises(lm, factory):
    with pytest.raises(RuntimeError, match="inside"), factory(lm):
        raise RuntimeError("inside the intervention")
    assert no_hooks_left(lm)
