"""The fast nucleus sampler draws only from the exact top-p set, with the right frequencies."""

from __future__ import annotations

import torch

from pipeline.models import sampling


def true_nucleus(probs: torch.Tensor, top_p: float) -> set[int]:
    p, idx = probs.sort(descending=True)
    before = p.cumsum(0) - p
    return set(idx[before < top_p].tolist())


def test_draws_stay_in_the_exact_nucleus(monkeypatch):
    monkeypatch.setattr(sampling, "CANDIDATES", 64)  # small, so that the flat row needs the fallback
    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(3000) * 4
    flat = torch.randn(3000) * 0.01  # 64 candidates hold far less than top_p of the mass
    logits = torch.stack([peaked, flat])
    probs = torch.softmax(logits, -1)
    allowed = [true_nucleus(probs[0], 0.9), true_nucleus(probs[1], 0.9)]
    counts = torch.zeros_like(probs)
    for _ in range(400):
        token = sampling.nucleus(logits, 1.0, 0.9, g)
        for r in range(2):
            assert int(token[r]) in allowed[r]
            counts[r, token[r]] += 1
    # frequencies on the peaked row follow the renormalised nucleus probabilities
    top = max(allowed[0], key=lambda i: probs[0, i])
    expected = probs[0, top] / probs[0, sorted(allowed[0])].sum()
    assert abs(counts[0, top] / 400 - expected) < 0.08


def test_temperature_sharpens():
    g = torch.Generator().manual_seed(1)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    cold = [int(sampling.nucleus(logits, 0.05, 1.0, g)) for _ in range(50)]
    assert set(cold) == {0}


def test_exact_head_finds_the_float32_argmax_and_falls_back_when_unsure():
    torch.manual_seed(0)
    weight = torch.randn(5000, 64)
    hidden = torch.randn(32, 64)
    head = sampling.ExactHead(weight)
    assert torch.equal(head.argmax(hidden), (hidden @ weight.T).argmax(-1))
    # near-ties: two tokens whose logits differ by less than bfloat16 can tell
    weight[7] = weight[3] * (1 + 1e-6)
    hidden = weight[3].expand(4, 64).clone()
    head = sampling.ExactHead(weight)
    assert torch.equal(head.argmax(hidden), (hidden @ weight.T).argmax(-1))
    head.MARGIN = 1e4  # nothing can be proven: every row takes the full float32 path, same answer
    assert torch.equal(head.argmax(hidden), (hidden @ weight.T).argmax(-1)) and head.fallbacks == 4
