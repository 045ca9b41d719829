"""Overhead of the CETT capture (hooks on every down_proj) over a plain forward of the same batch.

    .venv/bin/python scripts/bench_cett.py                # embedded 270M, 16 prompts
    .venv/bin/python scripts/bench_cett.py --profile tiny

Both passes run the decoder stack only (no unembedding), on the same right-padded batch of
few-shot prompts with an answer appended; timings are the median of --repeats runs. Prints the
ratio (target: at most 1.3x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from pipeline.data import build_embedded, few_shot_prompt
    from pipeline.hneurons.activations import text_and_spans
    from pipeline.hneurons.cett import capture, decoder_only, encode_with_spans
    from pipeline.models import load

    lm = load(args.profile)
    items = build_embedded()[: args.prompts]
    texts, answers, blocks = [], [], []
    for it in items:
        text, spans = text_and_spans(few_shot_prompt(it), it.answer)
        texts.append(text)
        answers.append(spans["answer"])
        blocks.append(spans["block"])
    input_ids, attention_mask, masks = encode_with_spans(lm.tokenizer, texts, {"answer": answers, "all": blocks})
    decoder = decoder_only(lm)
    print(f"{args.profile}: batch {tuple(input_ids.shape)}, {lm.n_layers} layers x {lm.d_ffn} neurons")

    def plain() -> None:
        decoder(input_ids=input_ids, attention_mask=attention_mask)

    def captured() -> None:
        with capture(lm, masks):
            decoder(input_ids=input_ids, attention_mask=attention_mask)

    timings = {}
    with torch.inference_mode():
        for name, fn in (("plain", plain), ("capture", captured)):
            fn()  # warm-up
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            timings[name] = statistics.median(runs)
            print(f"{name:8s} {timings[name] * 1000:8.1f} ms (median of {args.repeats})")
    print(f"capture/plain overhead ratio: {timings['capture'] / timings['plain']:.2f}x")


if __name__ == "__main__":
    main()
