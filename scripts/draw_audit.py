"""Draw the samples to be labelled by hand: sampled answers for the detection judge
(pipeline/data/audits/RUBRIC.md) or compliance generations for the steering judges
(pipeline/data/audits/RUBRIC-steering.md).

    .venv/bin/python scripts/draw_audit.py detection [N] > pipeline/data/audits/detection-judge.jsonl
    .venv/bin/python scripts/draw_audit.py steering [N] > pipeline/data/audits/steering-judge.jsonl
    .venv/bin/python scripts/draw_audit.py steering-blind > build/steering-generations.jsonl
        (STEERING_ARMS="H-neurons,DiffMean" limits it to those arms; "ITI random directions" and
        "DiffMean random directions" are those controls' draws, compliance only)
    python -m claims audit-sheet build/steering-generations.jsonl --id id \
        --show task,question,context,context_answer,true_answer,generation --hide strict,lenient \
        --strata task,method,strength --n 240 --out pipeline/data/audits/steering-blind

Reads the current results (they must be fresh: run verify first) and draws N entries (default
200) with a fixed seed, stratified: detection by the judge's outcome (correct, wrong, format; up
to a third each, the rest from the larger strata); steering by method and setting (H-neuron
alphas, DiffMean and ITI unsteered and at the chosen strength) and, within each, by the strict
judge's outcome. Prints one JSON object per line with "hand": null for the labeller to fill in.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claims.experiment import make_node  # noqa: E402
from claims.project import Project  # noqa: E402
from claims.runner import Runner  # noqa: E402


def fresh(runner: Runner, experiment: str, config: dict) -> object:
    state = runner.assess(make_node(experiment, config, "draw_audit"))
    if not state.fresh:
        sys.exit(f"{experiment} is {state.state} ({state.reason}): run verify first")
    return state


def steering(runner: Runner, n: int) -> None:
    rng = np.random.default_rng(20261125)
    strata: dict[str, list[dict]] = {}
    for node, config in (("neurons", {}), ("diffmean", {"method": "diffmean"}), ("iti", {"method": "iti"})):
        experiment = "pipeline.steering.neurons" if node == "neurons" else "pipeline.steering.direction_sweep"
        state = fresh(runner, experiment, {"profile": "embedded", **config})
        data = json.loads(runner.store.verified_blob(state.result.files["generations"]).read_text())
        rows = data["rows"]["compliance"]
        for k, record in enumerate(data["records"]):
            comp = record["compliance"]
            for i, row in enumerate(rows):
                strata.setdefault(f"{node}:{k}:{comp['strict'][i]}", []).append(
                    {"node": node, "setting": k, "id": row["item"]["id"], "question": row["item"]["question"],
                     "context": row["context"], "true_answer": row["item"]["answer"],
                     "context_answer": row["false_answer"], "generation": comp["text"][i], "hand": None, "note": ""})
    keys = sorted(strata)
    quota = dict.fromkeys(keys, 0)
    left = n
    while left > 0 and any(quota[k] < len(strata[k]) for k in keys):  # round-robin over strata
        for k in keys:
            if left and quota[k] < len(strata[k]):
                quota[k] += 1
                left -= 1
    for k in keys:
        for i in sorted(rng.choice(len(strata[k]), size=quota[k], replace=False)):
            print(json.dumps(strata[k][i], ensure_ascii=False))


STEERING_ARMS = (  # (method, experiment, config): the steering claims' results on the task with room
    ("H-neurons", "pipeline.steering.neurons", {"memory_shots": 3}),
    ("negative neurons", "pipeline.steering.neurons", {"memory_shots": 3, "arm": "negative"}),
    ("DiffMean", "pipeline.steering.direction_sweep", {"memory_shots": 3, "method": "diffmean"}),
    ("ITI heads", "pipeline.steering.direction_sweep", {"memory_shots": 3, "method": "iti"}),
    ("SAE latents", "pipeline.saefeatures.steering", {"memory_shots": 3}),
    ("ITI random directions", "pipeline.steering.direction_random", {"memory_shots": 3, "method": "iti"}),
    ("DiffMean random directions", "pipeline.steering.direction_random", {"memory_shots": 3, "method": "diffmean"}),
)


def control_generations(runner: Runner, state: object) -> list[dict]:
    """A control's compliance generations from its committed per-item rows (every draw at its
    KL-matched strength; the neutral set is left out)."""
    return [r for r in committed_items(runner, state) if r["set"] != "neutral"]


def committed_items(runner: Runner, state: object, name: str = "outcomes") -> list[dict]:
    """A result's committed per-item rows `name`, as a reader of the repository gets them."""
    from claims import items

    meta = state.sidecar["items"][name]
    return items.decode((runner.project.root / meta["path"]).read_bytes(), meta["path"])


def steering_generations(runner: Runner, arms: list[str] | None = None) -> list[dict]:
    """Every generation of the steering claims' results (compliance, pushback, false premise), one
    row per (task, item, text) with the judges' verdicts, in a seeded order (a generation several
    settings share is filed under one of them at random). The generations are the results'
    committed per-item rows; an item's question and context come from the task rows any of the
    arms' generation files holds (every arm runs on the same rows)."""
    import hashlib

    states = [(method, experiment, fresh(runner, experiment, {"profile": "embedded", **config}))
              for method, experiment, config in STEERING_ARMS if not arms or method in arms]
    details: dict[tuple[str, str], dict] = {}
    for _, experiment, state in states:
        sweeps = [state] if experiment != "pipeline.steering.direction_random" else []
        for s in sweeps:
            path = runner.store.verified_blob(s.result.files["generations"])
            if path is not None:
                for task, rows in json.loads(path.read_text())["rows"].items():
                    details.update({(task, r["item"]["id"]): r for r in rows})
    if not details:
        sys.exit("no arm's generation file is in the blob cache: the items' questions and contexts are unknown")
    seen: dict[str, list[dict]] = {}
    for method, experiment, state in states:
        control = experiment == "pipeline.steering.direction_random"
        for r in control_generations(runner, state) if control else committed_items(runner, state):
            task = r.get("task", "compliance")
            if task not in ("compliance", "pushback", "false_premise"):
                continue
            if (task, r["id"]) not in details:
                sys.exit(f"{method}: item {r['id']!r} ({task}) is in no arm's task rows")
            row = details[task, r["id"]]
            item = row["item"]
            strength = "kl-matched" if control else f"{float(r['alpha'] if 'alpha' in r else r['strength']):g}"
            key = f"{task}|{item['id']}|{hashlib.sha256(r['text'].encode()).hexdigest()[:12]}"
            seen.setdefault(key, []).append({
                "id": key, "task": task, "method": method, "strength": strength,
                "question": item["question"], "context": row.get("context", "") if task == "compliance" else "",
                "context_answer": row.get("false_answer", "") if task == "compliance" else "",
                "true_answer": item["answer"] if task != "false_premise" else "", "generation": r["text"],
                "strict": r["strict"] or "format", "lenient": r["lenient"] or "format"})
    rng = np.random.default_rng(20261204)
    rows = [group[int(rng.integers(len(group)))] for group in seen.values()]
    return [rows[i] for i in rng.permutation(len(rows))]


def main(which: str = "detection", n: int = 200) -> None:
    project = Project.discover(Path(__file__).resolve().parent)
    project.activate()
    runner = Runner(project)
    if which == "steering":
        steering(runner, n)
        return
    if which == "steering-blind":
        arms = [a for a in os.environ.get("STEERING_ARMS", "").split(",") if a]
        for row in steering_generations(runner, arms or None):
            print(json.dumps(row, ensure_ascii=False))
        return
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
    main(sys.argv[1] if len(sys.argv) > 1 else "detection", int(sys.argv[2]) if len(sys.argv) > 2 else 200)
