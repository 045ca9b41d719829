"""Step 5: the features that track one concept, ranked, with the data of their feature pages.

Every latent of every SAE is scored on the concept's sentences (scores.py): Spearman with the 0-3
label (the ranking), AUROC of label 3 against label 0, its mean at each label and how many label
steps raise it (monotonicity). A sentence's activation (`readout`) is the maximum over its
cumulative fragments (every position after <bos>), or its last token's.

The top feature is chosen on all sentences, so its own Spearman is optimistic; its intervals
resample sentences within each label. The claims read the held-out check instead:

  heldout_spearman      the sentences are split in two halves (v2 data: by length-matched set, so a
                        set's four sentences, one per label and all of one token count, stay
                        together); the best latent of one half (by Spearman with the label) is
                        scored on the other, both ways, and the two scores averaged
  length_spearman       token count scored the same way on the same held-out sentences (exactly 0
                        on v2 data, by construction)
  bow_spearman          a bag-of-words ridge regression fitted on one half's sentences and labels,
                        its prediction scored on the other half, both ways, averaged
  tfidf_spearman        the same with word 1-2-grams and character 3-5-grams (TF-IDF), the strongest
                        text baseline the referee found
  heldout_gain_over_*   the paired differences heldout_spearman - length / bow / tfidf
  partial_given_text    the latent's partial Spearman with the label given the TF-IDF prediction,
                        per half, averaged: what the latent knows beyond the words
  other_spearman_<c>    the same chosen latents scored on another concept's held-out sentences and
                        labels (specificity: a concept latent should do worse there)
  specificity_gap       heldout_spearman - the largest other_spearman

Every one of these is computed from the per-item rows the run commits (`heldout`: each held-out
sentence with its label, half, set, token count, the chosen latent's activation and the
bag-of-words prediction; `specificity`: the other concepts' sentences scored by the same latents),
with a bootstrap that resamples whole sets within each half (recompute()). The shuffled-label
control (shuffled.py) reruns the whole held-out search with labels permuted within sets.

Each top feature's page data: its scores, the concept sentences it fires on most (activation per
token, from the fragments) and held-out corpus snippets it fires on most (from reconstruction's
codes), and a Neuronpedia link where the SAE has a Neuronpedia id (the paper profile).
"""

from __future__ import annotations

from types import SimpleNamespace
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


def set_halves(sentences: list[dict[str, Any]], y: np.ndarray, seed: int) -> np.ndarray:
    """0/1 per sentence: v2 data splits its length-matched sets in two halves (a set stays whole);
    data without sets (v1) splits each label in two (halves())."""
    sets = [s.get("set") for s in sentences]
    if any(s is None for s in sets):
        return halves(y, seed)
    names = sorted(set(sets))
    rng = np.random.default_rng([seed, 5])
    first = set(rng.permutation(names)[: len(names) // 2].tolist())
    return np.array([1 if s in first else 0 for s in sets])


def clusters(sentences: list[dict[str, Any]]) -> list[Any]:
    """The resampling unit of each sentence: its set (v2), or the sentence itself (v1)."""
    return [s["set"] if s.get("set") is not None else s["id"] for s in sentences]


def bow_predictions(texts: list[str], y: np.ndarray, half: np.ndarray, kind: str = "words") -> np.ndarray:
    """Each sentence's label as predicted by a ridge regression on its text fitted on the other half
    (the ridge penalty chosen by leave-one-out on the fitting half). kind "words": binary word counts,
    lower-cased; "ngrams": TF-IDF of word 1-2-grams and character 3-5-grams (within word bounds)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import FeatureUnion

    out = np.zeros(len(y), dtype=float)
    for h in (0, 1):
        fit, score = half == h, half != h
        if kind == "words":
            vectorizer = CountVectorizer(lowercase=True, binary=True)
        else:
            vectorizer = FeatureUnion([("words", TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True)),
                                       ("chars", TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(3, 5),
                                                                 sublinear_tf=True))])
        words = vectorizer.fit_transform([t for t, keep in zip(texts, fit, strict=True) if keep])
        model = RidgeCV(alphas=(0.1, 1.0, 10.0, 100.0)).fit(words, y[fit])
        out[score] = model.predict(vectorizer.transform([t for t, keep in zip(texts, score, strict=True) if keep]))
    return out


def _half_spearman(rows: list[dict[str, Any]], field: str) -> float:
    """Mean over the two halves of the Spearman of `field` with the label (rows of one concept)."""
    vals = []
    for h in (0, 1):
        part = [r for r in rows if r["half"] == h]
        x = np.array([r[field] for r in part], dtype=float)
        y = np.array([r["label"] for r in part], dtype=float)
        vals.append(float(scores.spearman(x[:, None], y)[0]) if len(part) > 1 else float("nan"))
    return float(np.mean(vals))


def _half_partial(rows: list[dict[str, Any]], field: str, given: str) -> float:
    """Mean over the halves of the partial Spearman of `field` with the label, given `given`."""
    vals = []
    for h in (0, 1):
        part = [r for r in rows if r["half"] == h]
        x, z = (np.array([r[k] for r in part], dtype=float)[:, None] for k in (field, given))
        y = np.array([r["label"] for r in part], dtype=float)
        rxy, rxz, ryz = scores.spearman(x, y)[0], scores.spearman(x, z[:, 0])[0], scores.spearman(z, y)[0]
        denom = np.sqrt(max((1 - rxz ** 2) * (1 - ryz ** 2), 0.0))
        vals.append(float((rxy - rxz * ryz) / denom) if denom > 1e-9 else float("nan"))
    return float(np.mean(vals))


def heldout_statistics(own: list[dict[str, Any]], others: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """The held-out statistics of the module doc from the per-item rows."""
    out = {"heldout_spearman": _half_spearman(own, "latent"), "length_spearman": _half_spearman(own, "n_tokens"),
           "bow_spearman": _half_spearman(own, "bow")}
    out["heldout_gain_over_length"] = out["heldout_spearman"] - out["length_spearman"]
    out["heldout_gain_over_bow"] = out["heldout_spearman"] - out["bow_spearman"]
    if "tfidf" in own[0]:
        out["tfidf_spearman"] = _half_spearman(own, "tfidf")
        out["heldout_gain_over_tfidf"] = out["heldout_spearman"] - out["tfidf_spearman"]
        out["partial_given_text"] = _half_partial(own, "latent", "tfidf")
    for concept, rows in others.items():
        out[f"other_spearman_{concept}"] = _half_spearman(rows, "latent")
    if others:
        out["specificity_gap"] = out["heldout_spearman"] - max(out[f"other_spearman_{c}"] for c in others)
    return out


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The held-out estimates from the committed rows, with a bootstrap that resamples whole sets
    within each half of each concept's sentences (the same draws for every statistic, so the paired
    differences carry the pairing)."""
    from claims import Estimate

    cfg = Config(**config)
    own = items["heldout"]
    others: dict[str, list[dict[str, Any]]] = {}
    for r in items.get("specificity", []):
        others.setdefault(r["concept"], []).append(r)
    point = heldout_statistics(own, others)
    strata = []  # (group, [rows of each cluster]) per (group, half)
    for group, rows in [("", own), *others.items()]:
        for h in (0, 1):
            by: dict[Any, list[dict[str, Any]]] = {}
            for r in rows:
                if r["half"] == h:
                    by.setdefault(r["cluster"], []).append(r)
            strata.append((group, list(by.values())))
    rng = np.random.default_rng([cfg.seed, 21])
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(stats.N_RESAMPLES):
        picked: dict[str, list[dict[str, Any]]] = {}
        for group, cl in strata:
            for k in rng.integers(len(cl), size=len(cl)):
                picked.setdefault(group, []).extend(cl[k])
        d = heldout_statistics(picked[""], {g: picked[g] for g in others})
        for k, v in d.items():
            draws[k].append(v)
    out = {}
    for k, value in point.items():
        ok = np.array([v for v in draws[k] if np.isfinite(v)])
        if not np.isfinite(value) or len(ok) < stats.N_RESAMPLES // 2:
            continue
        low, high = np.quantile(ok, [(1 - cfg.level) / 2, (1 + cfg.level) / 2])
        n_clusters = len({r["cluster"] for r in (own if not k.startswith("other_") else others[k[15:]])})
        out[k] = Estimate(value=value, ci=(min(float(low), value), max(float(high), value)), level=cfg.level,
                          n=len(own), method="bootstrap-set-within-half-percentile",
                          unit=f"held-out sentences in {n_clusters} sets")
    return out


def choose_and_score(f: Any, half: np.ndarray) -> tuple[dict[int, int], np.ndarray]:
    """The latent chosen on each half (best Spearman with the label) and each sentence's activation of
    the latent chosen on the other half."""
    chosen = {h: int(np.argmax(scores.spearman(f.X[half == h], f.y[half == h]))) for h in (0, 1)}
    latent = np.array([f.X[i, chosen[1 - half[i]]] for i in range(len(f.y))], dtype=float)
    return chosen, latent


N_SPLITS = 20  # further random splits of the sets, for the stability of the held-out choice


def split_stability(f: Any, seed: int, n_splits: int = N_SPLITS) -> dict[str, Any]:
    """The held-out search repeated over `n_splits` other random splits of the sets (seeds after the
    claim's own): the spread of the held-out Spearman, and how often the two halves chose the same
    latent. Values only: the claim's estimate and interval come from its own split."""
    from collections import Counter

    held, same, chosen_all = [], 0, Counter()
    for s in range(n_splits):
        half = set_halves(f.sentences, f.y, seed + 1000 + s)
        chosen, latent = choose_and_score(f, half)
        held.append(float(np.mean([scores.spearman(latent[half == h][:, None], f.y[half == h])[0] for h in (0, 1)])))
        same += chosen[0] == chosen[1]
        chosen_all.update(chosen.values())
    top, count = chosen_all.most_common(1)[0]
    i, index = f.locate(top)
    return {"n_splits": n_splits, "split_heldout_mean": float(np.mean(held)), "split_heldout_min": float(min(held)),
            "split_heldout_max": float(max(held)), "split_same_latent_share": same / n_splits,
            "split_most_chosen": f"L{f.layers[i]}/{index}", "split_most_chosen_share": count / (2 * n_splits)}


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
    half = set_halves(f.sentences, y, cfg.seed)
    chosen, latent = choose_and_score(f, half)
    group = clusters(f.sentences)
    bow = bow_predictions([s["sentence"] for s in f.sentences], y, half)
    tfidf = bow_predictions([s["sentence"] for s in f.sentences], y, half, kind="ngrams")
    heldout_rows = [{"id": s["id"], "cluster": group[i], "half": int(half[i]), "label": int(y[i]),
                     "n_tokens": len(s["pieces"]), "latent": float(latent[i]), "bow": float(bow[i]),
                     "tfidf": float(tfidf[i]),
                     "sentence": s["sentence"]} for i, s in enumerate(f.sentences)]
    specificity_rows = []
    extracted = ctx.upstream("extraction").result.values["concepts"]
    for other in [c for c in extracted if c != cfg.concept]:
        g = Features(ctx, SimpleNamespace(concept=other, readout=cfg.readout))
        g_half, g_group = set_halves(g.sentences, g.y, cfg.seed), clusters(g.sentences)
        for i, s in enumerate(g.sentences):
            specificity_rows.append({"concept": other, "id": s["id"], "cluster": g_group[i], "half": int(g_half[i]),
                                     "label": int(g.y[i]), "latent": float(g.X[i, chosen[1 - g_half[i]]])})
    ctx.save_items("heldout", heldout_rows)
    if specificity_rows:
        ctx.save_items("specificity", specificity_rows)
    estimates = {
        "top_spearman": stratified(y, lambda idx: scores.spearman(X[idx][:, [best]], y[idx])[0], cfg),
        "top_auroc": stratified(y, lambda idx: scores.auroc(X[idx][:, [best]], y[idx])[0], cfg),
        **recompute({"heldout": heldout_rows, "specificity": specificity_rows}, config),
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
        "concept_data": ctx.upstream("extraction").result.values.get("concept_data", "v1"),
        "n_sets": len(set(group)), "split": "by set" if f.sentences[0].get("set") is not None else "by label",
        "other_concepts": sorted({r["concept"] for r in specificity_rows}),
        **split_stability(f, cfg.seed),
        "mean_tokens_by_label": [float(np.mean([len(s["pieces"]) for s, lab in zip(f.sentences, y, strict=True)
                                                if lab == label])) for label in scores.LABELS],
        "features_monotone": int((steps == 3).sum()), "features": features,
        "layers": f.layers, "widths": f.widths})
