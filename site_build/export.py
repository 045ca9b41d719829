"""claims.json beside the site: every claim as data, for other tools to read.

Shape (format 2):
  {"format": 2, "results_as_of": "YYYY-MM-DD" | null, "models": [model fingerprints behind the results],
   "claims": [{"id", "title", "status", "required", "headline", "section", "kind", "statement",
               "metric", "value", "ci", "level", "n", "unit", "method", "assertion", "control",
               "expect" (effect | null), "verdict" (claims.verdict words), "power" (null claims),
               "blocked_by" (claims upstream that do not stand), "dirty" (made from uncommitted
               code), "criterion_history" ([{field, was, now, commit, date, after_results,
               documented}]), "problems", "reason", "depends_on", "page", "figure" (the wide
               SVG of its first panel, or null), "figures" ([{svg, narrow_svg, alt}]), "caption",
               "provenance": {"key": <main run's cache key>,
                              "runs": {role: {experiment, config_hash, key, state, code_hash,
                                              result, provenance}}}}]}
A claim that is not verified keeps its status beside its numbers: a reader of the export must
check `status == "verified"` before treating a value as standing.
"""

from __future__ import annotations

import json
from typing import Any

from site_build.common.records import ClaimRecord, Study


def claim_entry(record: ClaimRecord, chart: Any) -> dict[str, Any]:
    o = record.outcome
    runs = {}
    for role, node in record.nodes.items():
        runs[role] = {"experiment": node.experiment, "config_hash": node.config_hash, "key": node.key,
                      "state": node.state, "code_hash": (node.sidecar or {}).get("code_hash"),
                      "result": node.result_path, "provenance": node.provenance_path}
    return {
        "id": o.id, "title": o.title, "status": o.status, "required": record.required,
        "headline": o.headline, "section": o.section, "kind": o.kind, "statement": o.statement,
        "metric": o.metric, "value": o.value, "ci": o.ci, "level": o.level, "n": o.n, "unit": o.unit,
        "method": o.method, "assertion": o.assertion, "control": o.control, "expect": o.expect,
        "verdict": o.verdict, "power": o.power, "blocked_by": o.blocked_by, "dirty": o.dirty,
        "criterion_history": [c.to_json() for c in record.history], "problems": o.problems,
        "reason": o.reason, "depends_on": o.depends_on, "page": f"claims/{o.id}.html",
        "figure": chart.panels[0].wide if chart else None,
        "figures": [{"svg": p.wide, "narrow_svg": p.narrow, "alt": p.alt} for p in chart.panels] if chart else [],
        "caption": chart.caption if chart else None,
        "provenance": {"key": record.provenance_key, "runs": runs},
        # what a referee checks (claims/referee.py): the strongest baseline, balance, draws, room, audit
        "waiver": o.waiver, "baselines": o.baselines, "baseline_verdict": o.baseline_verdict,
        "balance": o.balance, "rank": o.rank, "headroom": o.headroom, "audit": o.audit, "items": o.items,
    }


def export(study: Study, charts: dict[str, Any]) -> bytes:
    data = {"format": 2, "results_as_of": study.results_as_of, "models": study.models,
            "claims": [claim_entry(r, charts.get(r.id)) for r in study.records]}
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
