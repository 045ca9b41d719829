"""FaithEval counterfactual (paper profile): multiple-choice science questions whose context
supports a counterfactual answer. Mapped to the steering item shape with the options kept: the
prompt shows them lettered and the judge reads the letter; the context's letter is `context_letter`
and its text `false_answer`. FaithEval gives no memory answer, so compliance there is the share of
answers that pick the context's option; factual QA and pushback run on TriviaQA instead."""

from __future__ import annotations

from typing import Any

DATASET = "Salesforce/FaithEval-counterfactual-v1.0"


def faitheval_row(record: dict[str, Any]) -> dict[str, Any]:
    options = [[label, text] for label, text in zip(record["choices"]["label"], record["choices"]["text"], strict=True)]
    question = record["question"]
    return {
        "item": {"id": f"faitheval/{record['id']}", "family": "faitheval", "subject": question, "question": question,
                 "answer": "", "aliases": [], "source": DATASET},
        "context": record["context"],
        "options": options,
        "context_letter": record["answerKey"],
        "false_answer": dict(options)[record["answerKey"]],
        "split": "",
        "cluster": f"faitheval/{record['id']}",
    }


def load_faitheval(n: int, seed: int, n_select: int = 0) -> list[dict[str, Any]]:
    """n rows (the first n_select marked 'select', the rest 'eval'), in a seeded order. Needs the hub."""
    import numpy as np
    from datasets import load_dataset

    data = load_dataset(DATASET, split="test")
    order = np.random.default_rng(seed).permutation(len(data))[:n]
    rows = [faitheval_row(data[int(i)]) for i in order]
    for k, row in enumerate(rows):
        row["split"] = "select" if k < n_select else "eval"
    return rows
