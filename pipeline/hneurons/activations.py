"""Step 4: what the model does on every labelled question, read in two forward passes per batch
(decoder only; spans located by tokenizer offsets, never by matching decoded strings):

  pass A, prompt + the kept sampled answer:
    answer      CETT of every FFN neuron, mean over the answer's tokens
                and the model's confidence in that answer: mean log-probability of its tokens,
                mean entropy of their next-token distributions, its length in tokens
  pass B, prompt + the greedy answer:
    greedy      CETT over the greedy answer's tokens (an empty answer: the newline it produced)
    prompt_end  CETT at the last prompt token ("A:"), before any answer: nothing sampled can leak
    question    CETT over the final question's tokens ("Q: ...?"), disjoint from the answer
                and the confidence in the greedy answer

Each CETT variant is saved as its own (N, n_layers, d_ffn) array; `features` holds the labels and
the trivial baselines' inputs (confidence, length, family, subject obscurity) in the same order.
Questions of a family share their few-shot prompt, so each batch computes it once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.hneurons.config import VARIANTS, SampleConfig
from pipeline.hneurons.config import ActivationsConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"labels": ("pipeline.hneurons.sample", cfg.upstream(SampleConfig)),
            "questions": ("pipeline.hneurons.questions", {k: v for k, v in cfg.model_dump(mode="json").items()
                                                          if k in ("profile", "max_questions", "seed")})}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def text_and_spans(prompt: str, answer: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """The text read (prompt + answer) and the character spans of its parts. An empty answer is
    read as the newline the model produced instead."""
    text = f"{prompt} {answer}" if answer else f"{prompt}\n"
    start = len(prompt) + 1 if answer else len(prompt)
    q = prompt.rfind("Q: ")
    return text, {"answer": (start, len(text)), "prompt_end": (len(prompt) - 1, len(prompt)),
                  "question": (q, prompt.rfind("\nA:")), "block": (q, len(text))}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data.popularity import obscurities
    from pipeline.hneurons.cett import read_batch
    from pipeline.hneurons.split import group_of, labelled_rows
    from pipeline.models import load

    cfg = Config(**config)
    rows = labelled_rows(ctx.upstream("labels").json("labels"))
    lm = load(cfg.profile)
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["prompt"], rows[i]["id"]))  # shared shots together
    batches = [order[i : i + cfg.forward_batch_size] for i in range(0, len(order), cfg.forward_batch_size)]
    ckpt = ctx.checkpoint("batches")
    for b, batch in enumerate(ctx.progress(batches, total=len(batches), desc="CETT forward passes")):
        if b in ckpt:
            continue
        kept = [text_and_spans(rows[i]["prompt"], rows[i]["response"]) for i in batch]
        greedy = [text_and_spans(rows[i]["prompt"], rows[i]["greedy"]) for i in batch]
        va, ca, ea = read_batch(lm, [t for t, _ in kept], {"answer": [s["answer"] for _, s in kept]}, scored="answer")
        vb, cb, eb = read_batch(lm, [t for t, _ in greedy], {name: [s[name if name != "greedy" else "answer"]
                                                                  for _, s in greedy]
                                                            for name in ("greedy", "prompt_end", "question")},
                                scored="greedy")
        ckpt[b] = {**{f"cett_{k}": v for k, v in {**va, **vb}.items()},
                   "answer_tokens": ca["answer"], "answer_logprob": ea["logprob"], "answer_entropy": ea["entropy"],
                   "greedy_tokens": cb["greedy"], "greedy_logprob": eb["logprob"], "greedy_entropy": eb["entropy"],
                   "question_tokens": cb["question"], "index": np.array(batch)}
    parts = [ckpt[b] for b in range(len(batches))]
    index = np.concatenate([p["index"] for p in parts])
    back = np.argsort(index)  # rows back into id order
    for variant in VARIANTS:
        ctx.save_arrays(f"cett_{variant}", x=np.concatenate([p[f"cett_{variant}"] for p in parts])[back])
    numbers = {k: np.concatenate([p[k] for p in parts])[back].astype(np.float32)
               for k in ("answer_tokens", "answer_logprob", "answer_entropy", "greedy_tokens", "greedy_logprob",
                         "greedy_entropy", "question_tokens")}
    items = {d["id"]: d for d in ctx.upstream("questions").json("items")}
    obscure = obscurities([items[r["id"]] for r in rows])
    labels = np.array([int(r["label"] == "hallucinated") for r in rows])
    ctx.save_arrays("features", label=labels, **numbers,
                    obscurity=np.array([np.nan if obscure[r["id"]] is None else obscure[r["id"]] for r in rows]))
    return Result(values={
        "ids": [r["id"] for r in rows], "groups": [group_of(r) for r in rows], "families": [r["family"] for r in rows],
        "n_questions": len(rows), "n_layers": lm.n_layers, "d_ffn": lm.d_ffn, "n_neurons": lm.n_layers * lm.d_ffn,
        "variants": list(VARIANTS),
        "answer_tokens_mean": float(numbers["answer_tokens"].mean()),
        "answer_tokens_min": int(numbers["answer_tokens"].min()),
        "greedy_empty": int(sum(not r["greedy"] for r in rows)),
        "question_tokens_mean": float(numbers["question_tokens"].mean()),
    })
