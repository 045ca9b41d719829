"""Figures the attribution waivers quote beyond the claims' own estimates, recomputed from the
committed per-example rows (no model is run):

    .venv/bin/python scripts/attribution_posthoc.py

- the fingerprint's choice among the candidate dictionaries (Spearman on the families set aside);
- Spearman within each format variant (the fingerprint and the text features), which the pooled
  figure mixes with how the variants are ordered against each other;
- Spearman averaged within the held-out families (unweighted), for the fingerprint, the text and
  metadata baselines and every confidence baseline: the pooled Spearman of the claims also scores
  how whole families are ordered against each other;
- each example's loss read raw, without the family-held-out ridge every baseline goes through, pooled
  over the reported families (its sign says which way it ranks);
- clean examples against noisy ones alone, and against off-format ones alone: the ranking's AUROC
  beside the base adapter's loss and the format regex with ties broken by either loss;
- the rank window's examples against the clean candidates below it: their loss under the base
  adapter, which the window's random sets are not matched on;
- a least-squares fit (ridge with a negligible penalty, the claims' family-held-out split) on the
  pool's format variant crossed with length, labels a real data set would not have: a ceiling for
  what composition alone says about the rank.

It reads the fingerprint result whose config predicts the chosen reading (the current claims).
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rows(node: str, key: str, name: str) -> list[dict]:
    with gzip.open(ROOT / "artifacts" / node / f"{key}.items" / f"{name}.jsonl.gz") as f:
        return [json.loads(line) for line in f]


def current(node: str, **match) -> str:
    found = []
    for path in glob.glob(str(ROOT / "artifacts" / node / "*.provenance.json")):
        sidecar = json.load(open(path))
        if all(sidecar["config"].get(k) == v for k, v in match.items()):
            found.append((sidecar["lifecycle"][-1]["at"], os.path.basename(path)[:12]))
    if not found:
        raise SystemExit(f"no {node} result with {match}")
    return max(found)[1]


def main() -> None:
    from pipeline.attribution.estimates import grouped_predictions

    key = current("pipeline.attribution.fingerprint", reading="chosen")
    values = json.load(open(ROOT / "artifacts" / "pipeline.attribution.fingerprint" / f"{key}.json"))["values"]
    print(f"fingerprint {key}: dictionary {values['sae_dictionary']} ({values['d_sae']} latents), reading "
          f"{values['reading']}")
    ranked = sorted(values["selection_spearman"].items(), key=lambda kv: -kv[1])
    print("  choice on the families set aside:", ", ".join(f"{k} {v:.3f}" for k, v in ranked[:5]))
    every = rows("pipeline.attribution.fingerprint", key, "examples")
    reported = [r for r in every if r["reported"]]
    confidence = {r["id"]: r for r in rows("pipeline.attribution.fingerprint_confidence", key, "examples")}
    families = sorted({r["family"] for r in reported})

    def within(column: str, source: dict | None) -> float:
        out = []
        for family in families:
            part = [r for r in reported if r["family"] == family]
            x = [(source[r["id"]] if source else r)[column] for r in part]
            out.append(spearmanr(x, [r["rank"] for r in part])[0])
        return float(np.nanmean(out))

    for variant in ("clean", "noisy", "off_format"):
        part = [r for r in reported if r["variant"] == variant]
        pair = ", ".join(f"{c} {spearmanr([r[c] for r in part], [r['rank'] for r in part])[0]:+.3f}"
                         for c in ("pred_sae", "pred_text"))
        print(f"  Spearman within the {len(part)} reported {variant} examples: {pair}")
    print(f"  Spearman within the {len(families)} reported families, unweighted mean:")
    for column in ("pred_sae", "pred_text", "pred_metadata"):
        print(f"    {column}: {within(column, None):.3f}")
    for column in sorted(k for k in next(iter(confidence.values())) if k.startswith("pred_") and k != "pred_sae"):
        print(f"    {column}: {within(column, confidence):.3f}")
    rank = [r["rank"] for r in reported]
    for column in ("loss_base", "loss_shipped"):
        rho = spearmanr([confidence[r["id"]][column] for r in reported], rank)[0]
        print(f"  {column} read raw (no regression), pooled over the reported families: {rho:+.3f}")
    variants = ("clean", "noisy", "off_format")
    length = np.array([r["n_tokens"] for r in every], dtype=float)
    onehot = np.array([[r["variant"] == v for v in variants] for r in every], dtype=float)
    X = np.hstack([onehot, onehot * length[:, None]])
    y = np.array([r["rank"] for r in every])
    groups = np.array([r["family"] for r in every])
    mask = np.array([r["reported"] for r in every])
    pred = grouped_predictions(X, y, groups, (1e-6,), 42)
    print(f"  variant x length least squares, pooled over the reported families: {spearmanr(pred[mask], y[mask])[0]:.3f}")
    separations()


def separations() -> None:
    """Clean examples against each other variant alone: the ranking and the trivial scores."""
    from sklearn.metrics import roc_auc_score

    key = current("pipeline.attribution.readings_baselines")
    pool = rows("pipeline.attribution.readings_baselines", key, "pool")
    print(f"readings_baselines {key}: AUROC of clean against one other variant, the {len(pool)} pool examples")
    for other in ("noisy", "off_format"):
        part = [r for r in pool if r["variant"] in ("clean", other)]
        clean = [r["variant"] == "clean" for r in part]
        scores = ", ".join(f"{column} {roc_auc_score(clean, [r[column] for r in part]):.3f}"
                           for column in ("score", "base_loss", "format_base", "format_shipped"))
        print(f"  clean against {other}: {scores}")
    window(pool)


def window(pool: list[dict]) -> None:
    """The rank window (candidates ranked 33 to 64 by the chosen reading) against the clean candidates
    below rank 64, the stratum its random sets are mostly drawn from: each example's loss under the
    base adapter, which the draws are not matched on."""
    from pipeline.attribution.scores import ranking
    from pipeline.attribution.subsets import smd

    key = current("pipeline.attribution.scores")
    values = json.load(open(ROOT / "artifacts" / "pipeline.attribution.scores" / f"{key}.json"))["values"]
    examples = dict(zip(values["pool_index"], rows("pipeline.attribution.scores", key, "pool"), strict=True))
    reading = json.load(open(ROOT / "artifacts" / "pipeline.attribution.readings" /
                             f"{current('pipeline.attribution.readings')}.json"))["values"]["chosen"]
    loss = {r["id"]: -r["base_loss"] for r in pool}
    order = [examples[i] for i in ranking(values, examples, False, reading)]  # the candidates, as the arms rank them
    inside = np.array([loss[r["item"]] for r in order[32:64]])
    below = np.array([loss[r["item"]] for r in order[64:] if r["variant"] == "clean"])
    gap = smd(below, inside)  # window minus the clean ranks below, in pooled standard deviations
    print(f"rank window ({reading}): mean base-adapter loss per completion token {inside.mean():.2f} for ranks "
          f"33-64, {below.mean():.2f} for the {len(below)} clean candidates below rank 64 (SMD {gap:+.2f})")


if __name__ == "__main__":
    main()
