"""Step 4: CETT of every FFN neuron of every layer for each question of the split, in one forward
pass per batch, averaged over two token sets located by tokenizer offsets (never by matching
decoded strings):

    answer  the tokens of the model's answer (the text after the final "A:")
    all     every token of the final question-answer block ("Q: ... A: ...")

The prompt is the few-shot prompt the answer was sampled from; the text read is prompt + answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.hneurons.config import ActivationsConfig as Config
from pipeline.hneurons.config import SampleConfig, SplitConfig


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"labels": ("pipeline.hneurons.sample", cfg.upstream(SampleConfig)),
            "split": ("pipeline.hneurons.split", cfg.upstream(SplitConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def text_and_spans(prompt: str, response: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The text read, the answer's character span and the final QA block's span."""
    text = f"{prompt} {response}"
    answer = (len(prompt) + 1, len(text))
    block = (prompt.rfind("Q: "), len(text))
    return text, answer, block


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.hneurons.cett import cett_batch
    from pipeline.models import load

    cfg = Config(**config)
    split = ctx.upstream("split").result.values
    rows = {r["id"]: r for r in ctx.upstream("labels").json("labels")}
    ids = split["train"] + split["test"]
    lm = load(cfg.profile)
    ckpt = ctx.checkpoint("batches")
    starts = range(0, len(ids), cfg.forward_batch_size)
    for b in ctx.progress(starts, total=len(starts), desc="CETT forward passes"):
        if b in ckpt:
            continue
        texts, answer_spans, block_spans = [], [], []
        for qid in ids[b : b + cfg.forward_batch_size]:
            text, answer, block = text_and_spans(rows[qid]["prompt"], rows[qid]["response"])
            texts.append(text)
            answer_spans.append(answer)
            block_spans.append(block)
        values, counts = cett_batch(lm, texts, {"answer": answer_spans, "all": block_spans})
        ckpt[b] = {"answer": values["answer"], "all": values["all"],
                   "answer_tokens": counts["answer"], "all_tokens": counts["all"]}
    parts = [ckpt[b] for b in starts]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in ("answer", "all", "answer_tokens", "all_tokens")}
    from pipeline.hneurons.split import group_of

    labels = np.array([int(rows[q]["label"] == "hallucinated") for q in ids])
    ctx.save_arrays("cett", answer=arrays["answer"], all=arrays["all"], label=labels,
                    is_test=np.array([q in set(split["test"]) for q in ids]))
    return Result(values={
        "ids": ids, "groups": [group_of(rows[q]) for q in ids], "n_layers": lm.n_layers, "d_ffn": lm.d_ffn, "n_neurons": lm.n_layers * lm.d_ffn,
        "answer_tokens_mean": float(arrays["answer_tokens"].mean()),
        "answer_tokens_min": int(arrays["answer_tokens"].min()),
        "all_tokens_mean": float(arrays["all_tokens"].mean()),
    })
