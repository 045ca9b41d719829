"""QA data shared by the experiments: the embedded factual set, TriviaQA, prompts and answer matching.

Usage:
  from pipeline.data import build_embedded, few_shot_prompt, matches
  items = build_embedded()
  prompt = few_shot_prompt(items[0])          # "Q: ...\\nA: ...\\n\\nQ: What is the capital of ...?\\nA:"
  matches(" Kabul\\n", items[0])              # True
"""

from __future__ import annotations

from pipeline.data.embedded import FAMILIES, TEMPLATES, build_embedded
from pipeline.data.items import QAItem, dataset_hash, load_jsonl, save_jsonl, to_jsonl
from pipeline.data.matching import answer_forms, first_line, matches, normalize
from pipeline.data.prompts import Counterfactual, counterfactual_item, few_shot_prompt, qa_block, statement
from pipeline.data.triviaqa import load_triviaqa, triviaqa_item

__all__ = [
    "FAMILIES",
    "TEMPLATES",
    "Counterfactual",
    "QAItem",
    "answer_forms",
    "build_embedded",
    "counterfactual_item",
    "dataset_hash",
    "few_shot_prompt",
    "first_line",
    "load_jsonl",
    "load_triviaqa",
    "matches",
    "normalize",
    "qa_block",
    "save_jsonl",
    "statement",
    "to_jsonl",
    "triviaqa_item",
]
