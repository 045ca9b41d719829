"""Draw the sample of sampled answers to be labelled by hand (pipeline/data/audits/RUBRIC.md).

    .venv/bin/python scripts/draw_audit.py [N] > pipeline/data/audits/detection-judge.jsonl.new

Reads the current sampling step's labels (it must be fresh: run verify first), draws N answers
(default 200) stratified by the judge's outcome (correct, wrong, format; up to a third each, the
rest from the larger strata) and by family within each outcome, with a fixed seed, and prints one
JSON object per line with "hand": null for the labeller to fill in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claims.experiment import make_node  # noqa: E402
from claims.project import Project  # noqa: E402
from claims.runner import Runner  # noqa: E402


def main(n: int = 200) -> None:
    project = Project.discover(Path(__file__).resolve().parent)
    project.activate()
    runner = Runner(project)
    node = make_node("pipeline.hneurons.sample", {"profile": "embedded"}, "draw_audit")
    state = runner.assess(node)
    if not state.fresh:
        sys.exit(f"the sampling step is {state.state} ({state.reason}): run verify first")
    rows = json.loads(runner.store.verified_blob(state.result.files["labels"]).read_text())
    items = {d["id"]: d for d in json.loads(runner.store.verified_blob(
        runner.assess(runner.assess(node).upstream["questions"]).result.files["items"]).read_text())}
    rng = np.random.default_rng(20261124)
    pool: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        for k, outcome in enumerate(r["outcomes"]):
            pool.setdefault(outcome, []).append((r["id"], k))
    quota = {o: min(len(v), n // 3) for o, v in pool.items()}
    spare = n - sum(quota.values())
    for o in sorted(pool, key=lambda o: -len(pool[o])):
        extra = min(spare, len(pool[o]) - quota[o])
        quota[o] += extra
        spare -= extra
    by_id = {r["id"]: r for r in rows}
    chosen = []
    for outcome, members in sorted(pool.items()):
        picks = rng.choice(len(members), size=quota[outcome], replace=False)
        chosen += [members[i] for i in sorted(picks)]
    for qid, k in sorted(chosen):
        r, item = by_id[qid], items[qid]
        print(json.dumps({"id": qid, "sample": k, "family": r["family"], "question": item["question"],
                          "gold": item["answer"], "aliases": item["aliases"], "answer": r["samples"][k],
                          "auto": r["outcomes"][k], "hand": None, "note": ""}, ensure_ascii=False))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
