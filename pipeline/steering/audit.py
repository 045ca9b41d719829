"""The steering judges against labels written by hand.

A committed sample of compliance generations (pipeline/data/audits/steering-judge.jsonl), drawn
across methods, strengths and outcomes, each labelled by a person against the rubric in
pipeline/data/audits/RUBRIC-steering.md (context, memory, other, or format for a failure to
answer). Each judge (strict, lenient, and the LLM judge where it ran) is measured against the hand
labels: accuracy with a Wilson interval and Cohen's kappa with a bootstrap interval. The audit
checks that every audited generation is still one the steering nodes produce now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import Step

LABELS = ("context", "memory", "other", "format")
DEFAULT_FILE = "pipeline/data/audits/steering-judge.jsonl"


class Config(Step):
    profile: str = "embedded"
    seed: int = 42
    audit_file: str = Field(DEFAULT_FILE, description="The hand-labelled sample, relative to the project root.")
    level: float = Field(0.95, gt=0, lt=1)


def _path(config: dict[str, Any]) -> Path:
    return Path(__file__).resolve().parents[2] / Config(**config).audit_file


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from claims.provenance import sha256_file
    from pipeline.steering.judges import judges_in_use

    path = _path(config)
    return {"audit_file": sha256_file(path) if path.is_file() else "missing", "judges": judges_in_use()}


def requires(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.steering.comparison import requires as comparison_requires

    cfg = Config(**config)
    nodes = comparison_requires({"profile": cfg.profile, "seed": cfg.seed})
    return {name: nodes[name] for name in ("neurons", "diffmean", "iti")}


def read_audit(path: Path) -> list[dict[str, Any]]:
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            entry = json.loads(line)
            if entry.get("hand") not in LABELS:
                raise ValueError(f"{path.name}:{lineno}: hand label {entry.get('hand')!r} is not one of {LABELS}")
            entries.append(entry)
    return entries


def generations(ctx: Any) -> dict[tuple[str, int, str], dict[str, Any]]:
    """(node, setting, item id) -> generation and judges' outcomes, for every compliance generation."""
    out = {}
    for node in ("neurons", "diffmean", "iti"):
        data = ctx.upstream(node).json("generations")
        rows = data["rows"]["compliance"]
        for k, record in enumerate(data["records"]):
            comp = record["compliance"]
            for i, row in enumerate(rows):
                out[(node, k, row["item"]["id"])] = {"text": comp["text"][i], "row": row,
                                                     **{j: comp[j][i] for j in ("strict", "lenient", "llm") if j in comp}}
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from sklearn.metrics import cohen_kappa_score

    cfg = Config(**config)
    entries = read_audit(_path(config))
    made = generations(ctx)
    stale = [e["id"] for e in entries if (e["node"], e["setting"], e["id"]) not in made
             or made[(e["node"], e["setting"], e["id"])]["text"] != e["generation"]]
    if stale:
        raise ValueError(f"the audit is stale: {len(stale)} of {len(entries)} audited generations are no longer what "
                         f"the steering nodes produce (e.g. {stale[:3]}); draw and label a new sample")
    hand = np.array([e["hand"] for e in entries])
    estimates, values = {}, {"n_audited": len(entries), "hand_counts": {lab: int((hand == lab).sum()) for lab in LABELS}}
    for judge in ("strict", "lenient", "llm"):
        got = [made[(e["node"], e["setting"], e["id"])].get(judge, "absent") for e in entries]
        if "absent" in got:
            continue
        auto = np.array(["format" if g is None else g for g in got])
        agree = auto == hand
        estimates[f"{judge}_accuracy"] = stats.proportion(int(agree.sum()), len(entries), cfg.level,
                                                          unit="audited generations")
        estimates[f"{judge}_kappa"] = stats.bootstrap_items(
            lambda idx, a=auto: float(cohen_kappa_score(hand[idx], a[idx], labels=list(LABELS))), len(entries),
            level=cfg.level, seed=cfg.seed, unit="audited generations")
        values[f"{judge}_confusion"] = {h: {a: int(((hand == h) & (auto == a)).sum()) for a in LABELS} for h in LABELS}
        values[f"{judge}_disagreements"] = [
            {k: e[k] for k in ("node", "setting", "id", "generation", "hand", "note") if k in e} | {"judge": a}
            for e, a, ok in zip(entries, auto, agree, strict=True) if not ok]
    values["judges"] = [j for j in ("strict", "lenient", "llm") if f"{j}_accuracy" in estimates]
    values["strata"] = sorted({f"{e['node']}:{e['setting']}" for e in entries})
    return Result(estimates=estimates, values=values)
