"""Step 2: sample k answers per question, judge each against the gold answer and its aliases, and
label a question only when its samples agree: all correct (faithful) or all wrong (hallucinated).

The response kept for a labelled question is its most frequent sampled answer (ties: the first),
so that later steps read the model's own typical answer, not a rare sample.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from claims import Result
from pipeline.hneurons.config import QuestionsConfig
from pipeline.hneurons.config import SampleConfig as Config

QUESTIONS_PER_CHUNK = 16  # the unit of checkpointing


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"questions": ("pipeline.hneurons.questions", Config(**config).upstream(QuestionsConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def label_of(correct: list[bool]) -> str | None:
    if all(correct):
        return "faithful"
    if not any(correct):
        return "hallucinated"
    return None


def judge_question(item: Any, texts: list[str], finishes: list[str]) -> dict[str, Any]:
    from pipeline.data import first_line, matches

    correct = [matches(t, item) for t in texts]
    answers = [first_line(t).strip() for t in texts]
    label = label_of(correct)
    typical = Counter(answers).most_common(1)[0][0] if answers else ""
    return {"id": item.id, "family": item.family, "subject": item.subject, "gold": item.answer, "samples": answers, "finish": finishes, "correct": correct,
            "label": label, "response": typical}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import QAItem, few_shot_prompt
    from pipeline.models import generate, load

    cfg = Config(**config)
    items = [QAItem.from_dict(d) for d in ctx.upstream("questions").json("items")]
    lm = load(cfg.profile)
    prompts = [few_shot_prompt(it, cfg.n_shots, pool=items, seed=cfg.seed) for it in items]
    ctx.record(generation={"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": 0,
                           "k": cfg.k, "max_new_tokens": cfg.max_new_tokens, "stop": "newline",
                           "n_shots": cfg.n_shots, "model": lm.model_id})
    ckpt = ctx.checkpoint("chunks")
    chunks = range(0, len(items), QUESTIONS_PER_CHUNK)
    rows: list[dict[str, Any]] = []
    for c in ctx.progress(chunks, total=len(chunks), desc="sampling answers"):
        if c not in ckpt:
            part = items[c : c + QUESTIONS_PER_CHUNK]
            gens = generate(lm, prompts[c : c + QUESTIONS_PER_CHUNK], cfg.max_new_tokens, do_sample=True,
                            temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed * 1_000_003 + c,
                            num_samples=cfg.k, batch_size=cfg.batch_size)
            by_prompt: dict[int, list[Any]] = {}
            for g in gens:
                by_prompt.setdefault(g.prompt_index, []).append(g)
            ckpt[c] = [judge_question(it, [g.text for g in by_prompt[i]], [g.finish_reason for g in by_prompt[i]])
                       for i, it in enumerate(part)]
        rows.extend(ckpt[c])
    for row, prompt in zip(rows, prompts, strict=True):
        row["prompt"] = prompt
    ctx.save_json("labels", rows)
    return Result(values={"n_questions": len(rows), "n_labelled": sum(r["label"] is not None for r in rows),
                          "model_id": lm.model_id})
