"""Step 2: sample k answers per question and judge each (pipeline.hneurons.judge): a question is
faithful when all k are correct, hallucinated when all are wrong, a format failure when none is
correct and one is off-format, and left out when the samples disagree. Then the greedy answer of
every labelled question, so that later steps can read the model where sampling cannot leak.

The sampled response kept for a labelled question is its most frequent sampled answer (ties: the
first), so that later steps read the model's own typical answer, not a rare sample.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from claims import Result
from pipeline.hneurons.config import QuestionsConfig
from pipeline.hneurons.config import SampleConfig as Config
from pipeline.hneurons.judge import judge, label_of

QUESTIONS_PER_CHUNK = 64  # the unit of checkpointing


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"questions": ("pipeline.hneurons.questions", Config(**config).upstream(QuestionsConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def judge_question(item: Any, texts: list[str], finishes: list[str]) -> dict[str, Any]:
    from pipeline.data import first_line

    judged = [judge(t, item) for t in texts]
    answers = [first_line(t).strip() for t in texts]
    outcomes = [o for o, _ in judged]
    typical = Counter(answers).most_common(1)[0][0] if answers else ""
    return {"id": item.id, "family": item.family, "subject": item.subject, "gold": item.answer,
            "samples": answers, "finish": finishes, "outcomes": outcomes, "reasons": [r for _, r in judged],
            "correct": [o == "correct" for o in outcomes], "label": label_of(outcomes), "response": typical}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import QAItem, few_shot_prompt, first_line
    from pipeline.models import generate, load

    cfg = Config(**config)
    items = [QAItem.from_dict(d) for d in ctx.upstream("questions").json("items")]
    by_id = {it.id: it for it in items}
    lm = load(cfg.profile)
    prompts = [few_shot_prompt(it, cfg.n_shots, pool=items, seed=cfg.seed) for it in items]
    ctx.record(generation={"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": 0,
                           "k": cfg.k, "max_new_tokens": cfg.max_new_tokens, "stop": "newline",
                           "n_shots": cfg.n_shots, "model": lm.model_id, "greedy": "labelled questions"})
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
    # the greedy answer of every labelled question (checkpointed in chunks too)
    labelled = [r for r in rows if r["label"] in ("faithful", "hallucinated")]
    greedy_ckpt = ctx.checkpoint("greedy")
    chunks = range(0, len(labelled), 4 * QUESTIONS_PER_CHUNK)
    for c in ctx.progress(chunks, total=len(chunks), desc="greedy answers"):
        if c not in greedy_ckpt:
            part = labelled[c : c + 4 * QUESTIONS_PER_CHUNK]
            gens = generate(lm, [r["prompt"] for r in part], cfg.max_new_tokens, batch_size=cfg.greedy_batch_size)
            greedy_ckpt[c] = [{"text": first_line(g.text).strip(), "finish": g.finish_reason,
                               "outcome": judge(g.text, by_id[r["id"]])[0]} for g, r in zip(gens, part, strict=True)]
        for row, g in zip(labelled[c : c + 4 * QUESTIONS_PER_CHUNK], greedy_ckpt[c], strict=True):
            row["greedy"], row["greedy_finish"], row["greedy_outcome"] = g["text"], g["finish"], g["outcome"]
    ctx.save_json("labels", rows)
    return Result(values={"n_questions": len(rows), "n_labelled": len(labelled), "model_id": lm.model_id})
