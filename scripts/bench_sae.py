"""Benchmark the SAE extraction design (pipeline/saefeatures/extraction.py) and print two ratios.

1. single pass vs the seed workspace's naive design, on the same concept sentences and SAEs:
   one decoder pass per batch, every SAE encoding every prefix position, against one forward per
   cumulative fragment per SAE. The seed's forward was the whole model with its hidden states
   (`model(..., output_hidden_states=True)`); the same count of forwards with this project's
   reader (decoder only, stopping at the SAE's layer: extraction.naive_fragments, the one the
   equality test uses) is timed too, as a stricter baseline. Outputs are checked equal first.
   Target: at least 100x against the seed's design.
2. the extraction pass (every SAE layer read, every SAE encoding) vs a plain decoder-only forward
   of the same tokens (no hooks, no SAE). Target: at most 1.3x.

With `--part loss`, the spliced loss of the reconstruction nodes instead (SAEs at every layer, one
batch of held-out-length sequences): the first design, where each node ran, per layer, a full
pass with the SAE spliced in by a hook and another with the layer zero-ablated (1 + 2 x layers full
passes per node, for the SAEs and again for the PCA), against floor.py's loss clean and zero-ablated
measured once plus, per node, only the layers above each splice (splicing.from_layer).
Outputs are checked equal bit for bit first.

SAEs: the shape the profile trains (TopK, config.PROFILES), seeded random weights: the cost does
not depend on what the weights learned.

    CLAIMS_TORCH_THREADS=1 .venv/bin/python scripts/bench_sae.py                 # embedded 270M
    .venv/bin/python scripts/bench_sae.py --profile tiny --sentences 8
    .venv/bin/python scripts/bench_sae.py --part loss                            # every layer of the 270M
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def saes_for(profile: str, lm, layers: list[int] | None = None) -> list:
    import torch
    from sae_lens import TopKSAE, TopKSAEConfig

    from pipeline.saefeatures.config import PROFILES
    from pipeline.saefeatures.dictionary import Dictionary

    p = PROFILES[profile]
    out = []
    for layer in layers or p["layers"]:
        torch.manual_seed(layer)
        sae = TopKSAE(TopKSAEConfig(d_in=lm.d_model, d_sae=p["d_sae"], k=p["k"] or 32, dtype="float32", device="cpu"))
        with torch.no_grad():
            sae.b_enc.normal_(0, 0.01)
        out.append(Dictionary(layer=layer, name=f"L{layer}", sae=sae.eval()))
    return out


def seed_naive(lm, dictionaries, text: str) -> list:
    """The seed's design: for each SAE, for each cumulative fragment, a full forward of the model
    (unembedding included, every hidden state kept), the SAE's layer read at the last position. (The
    layer is read by a hook: transformers returns the last layer's hidden state after the final norm.)"""
    import torch

    from pipeline.saefeatures.residuals import capture, tokenize

    ids, _ = tokenize(lm.tokenizer, [text])
    out = []
    with torch.inference_mode():
        for d in dictionaries:
            rows = []
            for end in range(2, ids.shape[1] + 1):
                with capture(lm, [d.layer], stop=False) as acts:
                    lm.model(input_ids=ids[:, :end], output_hidden_states=True)
                rows.append(d.encode(acts[d.layer][:, -1]).numpy()[0])
            out.append(np.stack(rows))
    return out


def compare(out: list, naive: list) -> tuple[float, int]:
    """Largest difference and number of fragments whose active latents differ."""
    worst, flips, k = 0.0, 0, 0
    for codes, lengths, _ in out:
        for j, n in enumerate(lengths):
            for i in range(len(codes)):
                a, b = codes[i][j, 1:n], naive[k][i]
                worst = max(worst, float(np.abs(a - b).max()))
                flips += int(((a != 0) != (b != 0)).any(axis=1).sum())
            k += 1
    return worst, flips


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_loss(profile: str, batch: int) -> None:
    import torch

    from pipeline.models import load
    from pipeline.saefeatures.config import PROFILES
    from pipeline.saefeatures.reconstruction import ZeroAblation, spliced_nll, token_nll
    from pipeline.saefeatures.splicing import from_layer, layer_outputs, replaced, spliced

    lm = load(profile)
    layers = list(range(lm.n_layers))
    saes = saes_for(profile, lm, layers)
    torch.manual_seed(0)
    ids = torch.randint(4, lm.tokenizer.vocab_size, (batch, PROFILES[profile]["seq_len"]))
    ids[:, 0] = lm.tokenizer.bos_token_id

    def first_design() -> list:  # reconstruction.py: full passes with a hook on the layer
        out = [spliced_nll(lm, ids, None).sum(dim=1)]
        for d in saes:
            out += [spliced_nll(lm, ids, d).sum(dim=1), spliced_nll(lm, ids, ZeroAblation(d.layer)).sum(dim=1)]
        return out

    def floor_once() -> list:
        hidden, acts = layer_outputs(lm, ids)
        out = [token_nll(lm, ids, hidden).sum(dim=1)]
        for layer in layers:
            zeroed = replaced(acts[layer], torch.zeros(acts[layer].shape[-1]))
            out.append(token_nll(lm, ids, from_layer(lm, zeroed, layer)).sum(dim=1))
        return out

    def node() -> list:
        hidden, acts = layer_outputs(lm, ids)  # the reconstruction node reads the stream for its EV anyway
        return [token_nll(lm, ids, from_layer(lm, spliced(d, acts[d.layer]), d.layer)).sum(dim=1) for d in saes]

    t_first, first = best_of(first_design, 1)
    t_floor, floor = best_of(floor_once, 1)
    t_node, spliced_loss = best_of(node, 1)
    same = all(torch.equal(a, b) for a, b in zip(first[1::2], spliced_loss, strict=True)) and torch.equal(
        first[0], floor[0]) and all(torch.equal(a, b) for a, b in zip(first[2::2], floor[1:], strict=True))
    print(f"{lm.model_id}: SAEs at all {len(layers)} layers, {batch} sequences of {ids.shape[1]} tokens, "
          f"torch threads {torch.get_num_threads()}; losses equal bit for bit: {same}")
    print(f"first design, one node: {t_first:.2f}s ({1 + 2 * len(layers)} full passes); SAE and PCA nodes: "
          f"{2 * t_first:.2f}s")
    print(f"floor once: {t_floor:.2f}s; one node's splices: {t_node:.2f}s; SAE and PCA nodes with the floor: "
          f"{t_floor + 2 * t_node:.2f}s")
    print(f"ratio first design / floor design, SAE and PCA nodes: {2 * t_first / (t_floor + 2 * t_node):.2f}x")
    if not same:
        raise SystemExit("the floor design's losses differ from the full passes'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded", choices=["embedded", "tiny"])
    parser.add_argument("--sentences", type=int, default=16, help="concept sentences (spread over concepts; 16 = "
                        "one extraction batch)")
    parser.add_argument("--batch", type=int, default=16, help="sentences per pass in the single-pass design")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats of the fast designs (best kept)")
    parser.add_argument("--part", default="extraction", choices=["extraction", "loss"])
    args = parser.parse_args()
    if args.part == "loss":
        return bench_loss(args.profile, args.batch)

    import torch

    from pipeline.models import load
    from pipeline.saefeatures.concepts import CONCEPTS, read_all
    from pipeline.saefeatures.extraction import encode_batch, naive_fragments
    from pipeline.saefeatures.residuals import decoder_only, read_layers, tokenize

    lm = load(args.profile)
    saes = saes_for(args.profile, lm)
    rows = read_all(CONCEPTS)
    texts = [rows[i]["sentence"] for i in np.linspace(0, len(rows) - 1, args.sentences).astype(int)]
    batches = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    print(f"{lm.model_id}: {len(saes)} SAEs at layers {[d.layer for d in saes]} ({saes[0].width} latents), "
          f"{len(texts)} sentences, torch threads {torch.get_num_threads()}")

    def single() -> list:
        return [encode_batch(lm, saes, b) for b in batches]

    t_single, out = best_of(single, args.repeats)
    start = time.perf_counter()
    seed = [seed_naive(lm, saes, t) for t in texts]
    t_seed = time.perf_counter() - start
    start = time.perf_counter()
    naive = [naive_fragments(lm, saes, t) for t in texts]
    t_naive = time.perf_counter() - start
    n_fragments = sum(len(n[0]) for n in naive)
    scale = max(float(np.abs(c[0]).max()) for c, _, _ in out)
    equal = True
    for name, other in (("seed's naive design", seed), ("decoder-only naive design", naive)):
        worst, flips = compare(out, other)
        same = worst <= 1e-3 * max(scale, 1.0) and flips == 0
        equal = equal and same
        print(f"outputs equal to the {name}: {same} (largest difference {worst:.2e} at activations up to "
              f"{scale:.3g}; fragments whose active latents differ: {flips} of {n_fragments * len(saes)})")
    print(f"single pass: {t_single:.3f}s for {n_fragments} fragments x {len(saes)} SAEs "
          f"({len(batches)} forward passes)")
    print(f"seed's naive design: {t_seed:.3f}s ({n_fragments * len(saes)} full forwards)")
    print(f"decoder-only naive design: {t_naive:.3f}s ({n_fragments * len(saes)} forwards stopping at the layer)")
    print(f"ratio seed's naive / single pass: {t_seed / t_single:.0f}x (target >= 100x)")
    print(f"ratio decoder-only naive / single pass: {t_naive / t_single:.0f}x")

    encoded = [tokenize(lm.tokenizer, b) for b in batches]

    def plain() -> None:
        with torch.inference_mode():
            for ids, mask in encoded:
                decoder_only(lm)(input_ids=ids, attention_mask=mask, use_cache=False)

    def extraction() -> None:
        for ids, mask in encoded:
            acts = read_layers(lm, ids, mask, [d.layer for d in saes])
            for d in saes:
                d.encode(acts[d.layer])

    t_plain, _ = best_of(plain, args.repeats)
    t_extract, _ = best_of(extraction, args.repeats)
    print(f"plain decoder-only forward: {t_plain:.3f}s; extraction pass (all SAE layers read and encoded): "
          f"{t_extract:.3f}s")
    print(f"ratio extraction / plain forward: {t_extract / t_plain:.2f}x (target <= 1.3x)")
    if not equal:
        raise SystemExit("the single-pass fragments differ from the fragments run alone")


if __name__ == "__main__":
    main()
