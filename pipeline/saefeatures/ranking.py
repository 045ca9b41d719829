"""Step 5: the features that track one concept, ranked, with the data of their feature pages.

Every latent of every SAE is scored on the concept's sentences (scores.py): Spearman with the 0-3
label (the ranking), AUROC of label 3 against label 0, its mean at each label and how many label
steps raise it (monotonicity). A sentence's activation (`readout`) is the maximum over its
cumulative fragments (every position after <bos>), or its last token's.

The top feature is chosen on all sentences, so its own Spearman is optimistic; its intervals
resample sentences within each label. Two checks do not share that optimism: `heldout_spearman`
(the sentences are split in two halves, balanced by label; the best feature of one half is scored
on the other, and the two scores averaged) and the shuffled-label control (shuffled.py), which
gives the best score that a search over all features finds when the labels carry no signal.

Each top feature's page data: its scores, the concept sentences it fires on most (activation per
token, from the fragments) and held-out corpus snippets it fires on most (from reconstruction's
codes), and a Neuronpedia link where the SAE has a Neuronpedia id (the paper profile).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.saefeatures import scores
from pipeline.saefeatures.config import CorpusConfig, ExtractionConfig, ReconstructionConfig
from pipeline.saefeatures.config import RankingConfig as Config

SNIPPET_RADIUS = 8  # tokens shown on each side of a corpus snippet's peak


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"extraction": ("pipeline.saefeatures.extraction", cfg.upstream(ExtractionConfig)),
            "reconstruction": ("pipeline.saefeatures.reconstruction", cfg.upstream(ReconstructionConfig)),
            "corpus": ("pipeline.saefeatures.corpus", cfg.upstream(CorpusConfig))}


class Features:
    """All SAEs' activations on one concept's sentences, as one (n, total width) matrix."""

    def __init__(self, ctx: Any, cfg: Config):
        up = ctx.upstream("extraction")
        meta = up.result.values
        if cfg.concept not in meta["concepts"]:
            raise ValueError(f"concept {cfg.concept!r} was not extracted (have: {', '.join(meta['concepts'])})")
        self.sentences = [s for s in meta["sentences"] if s["concept"] == cfg.concept]
        rows = np.array([i for i, s in enumerate(meta["sentences"]) if s["concept"] == cfg.concept])
        self.layers, self.widths = meta["layers"], meta["widths"]
        self.neuronpedia = meta["neuronpedia_ids"]
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)])
        self.arrays = [up.arrays(f"sae_L{layer}") for layer in self.layers]
        blocks = []
        for a in self.arrays:
            if cfg.readout == "final":
                blocks.append(a["final"][rows])
            else:
                if "fragments" not in a:
                    raise ValueError("readout 'max' needs the fragments (extraction with fragments: true)")
                blocks.append(np.stack([a["fragments"][a["sentence"] == r].max(axis=0) for r in rows]))
        self.rows = rows
        self.X = np.concatenate(blocks, axis=1)  # (n, F)
        self.y = np.array([s["label"] for s in self.sentences])

    def locate(self, flat: int) -> tuple[int, int]:
        """(SAE position, latent index) of a column of X."""
        i = int(np.searchsorted(self.offsets, flat, side="right") - 1)
        return i, int(flat - self.offsets[i])


def halves(y: np.ndarray, seed: int) -> np.ndarray:
    """0/1 per sentence: two halves with the same number of sentences of each label."""
    rng = np.random.default_rng([seed, 5])
    out = np.zeros(len(y), dtype=int)
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        out[idx[: len(idx) // 2]] = 1
    return out


def stratified(y: np.ndarray, statistic: Any, cfg: Config, unit: str = "sentences") -> Any:
    """A statistic of sentence indices with a percentile bootstrap that resamples within each label."""
    rng = np.random.default_rng(cfg.seed)
    groups = [np.flatnonzero(y == label) for label in np.unique(y)]
    value = float(statistic(np.arange(len(y))))
    draws = [statistic(np.concatenate([rng.choice(g, len(g)) for g in groups])) for _ in range(stats.N_RESAMPLES)]
    low, high = np.quantile(draws, [(1 - cfg.level) / 2, (1 + cfg.level) / 2])
    from claims import Estimate

    return Estimate(value=value, ci=(min(float(low), value), max(float(high), value)), level=cfg.level, n=len(y),
                    method="bootstrap-label-stratified-percentile", unit=unit)


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures.dashboard import corpus_snippets, sentence_examples

    cfg = Config(**config)
    f = Features(ctx, cfg)
    X, y = f.X, f.y
    rho = scores.spearman(X, y)
    auc, means, steps = scores.auroc(X, y), scores.label_means(X, y), scores.mono_steps(X, y)
    top = np.argsort(-rho, kind="stable")[: cfg.n_top]
    best = int(top[0])
    half = halves(y, cfg.seed)
    chosen = {h: int(np.argmax(scores.spearman(X[half == h], y[half == h]))) for h in (0, 1)}

    def heldout(idx: np.ndarray) -> float:
        vals = []
        for h in (0, 1):  # the feature chosen on half h, scored on the other half
            rows = idx[half[idx] != h]
            vals.append(scores.spearman(X[rows][:, [chosen[h]]], y[rows])[0])
        return float(np.mean(vals))

    estimates = {
        "top_spearman": stratified(y, lambda idx: scores.spearman(X[idx][:, [best]], y[idx])[0], cfg),
        "top_auroc": stratified(y, lambda idx: scores.auroc(X[idx][:, [best]], y[idx])[0], cfg),
        "heldout_spearman": stratified(y, heldout, cfg),
    }
    pieces = ctx.upstream("corpus").json("sequences")["heldout_pieces"]
    features = []
    for rank, flat in enumerate(top.tolist()):
        i, index = f.locate(flat)
        codes = ctx.upstream("reconstruction").arrays(f"codes_L{f.layers[i]}")
        link = f"https://neuronpedia.org/{f.neuronpedia[i]}/{index}" if f.neuronpedia[i] else None
        features.append({
            "rank": rank + 1, "id": f"L{f.layers[i]}/{index}", "layer": f.layers[i], "index": index,
            "spearman": float(rho[flat]), "auroc": float(auc[flat]), "mono_steps": int(steps[flat]),
            "label_means": [float(m) for m in means[:, flat]], "neuronpedia": link,
            "sentences": sentence_examples(f, i, index, cfg.n_examples),
            "corpus": corpus_snippets(codes, pieces, index, cfg.n_examples, SNIPPET_RADIUS)})
    b_i, b_index = f.locate(best)
    return Result(estimates=estimates, values={
        "concept": cfg.concept, "readout": cfg.readout, "n_sentences": len(y),
        "n_per_label": [int((y == label).sum()) for label in scores.LABELS], "n_features": int(X.shape[1]),
        "top_feature": f"L{f.layers[b_i]}/{b_index}", "top_layer": f.layers[b_i], "top_index": b_index,
        "top_mono_steps": int(steps[best]), "top_label_means": [float(m) for m in means[:, best]],
        "top_monotone": bool(steps[best] == 3),
        "heldout_features": [f"L{f.layers[f.locate(chosen[h])[0]]}/{f.locate(chosen[h])[1]}" for h in (0, 1)],
        "heldout_same_feature": chosen[0] == chosen[1],
        "features_monotone": int((steps == 3).sum()), "features": features,
        "layers": f.layers, "widths": f.widths})
