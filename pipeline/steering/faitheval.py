"""FaithEval counterfactual (paper profile): multiple-choice science questions whose context
supports a counterfactual answer. Mapped to the steering item shape; the context's answer is the
'false' (counterfactual) one, and the item's own answer field carries no memory answer (FaithEval
does not give one), so only compliance is scored on it."""

from __future__ import annotations

from typing import Any

DATASET = "Salesforce/FaithEval-counterfactual-v1.0"


def faitheval_row(record: dict[str, Any]) -> dict[str, Any]:
    choices = dict(zip(record["choices"]["label"], record["choices"]["text"], strict=True))
    question = record["question"]
    return {
        "item": {"id": f"faitheval/{record['id']}", "family": "faitheval", "subject": question, "question": question,
                 "answer": "", "aliases": [], "source": DATASET},
        "context": record["context"],
        "false_answer": choices[record["answerKey"]],
        "split": "",
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
