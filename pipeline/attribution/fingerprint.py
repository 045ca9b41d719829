"""Step 5: the SAE fingerprint. Each pool example's mean SAE feature activation over its tokens
(all but <bos>, at the SAE's block, base model without adapter) is regressed onto its attribution
rank (percentile of the Bergson score over the base and candidate pools, 1 = most useful) with a
ridge regression; each family is held out once (leave-one-family-out), the ridge strength chosen
by grouped cross-validation inside each training fold. The statistic is the Spearman correlation of
the out-of-fold predictions with the rank, with an interval that resamples entity clusters.

With the SAE study's dictionaries (`sae_layers`, `n_select_families`), a seeded draw of families
is set aside to choose the dictionary: the one whose predictions rank those families' examples best,
each set-aside family predicted by a fit on the other set-aside families only; every estimate is
then reported on the other families, whose ranks the choice never saw (their own predictions come
from fits on all the other families, the set-aside ones among them).

The same regression on metadata gives the baselines a fingerprint has to beat: length (tokens),
family (one-hot), difficulty (obscurity percentile, number of clues), text (length, completion
length and the format regex together, what a reader gets from the text without a model) and a bag
of words (each token's share of the example's tokens, the fingerprint's mean over tokens with the
token itself for a feature: what a dictionary read near the embeddings could amount to); the pool's
variant (clean / noisy / off-format), which a real data set would not label, is reported as a
ceiling. Under a family-held-out split the family alone predicts each held-out family by the other
families' mean rank: it cannot rank examples of a family it has not seen, by construction.
Per-example rows (family, variant, length, rank, the fingerprint's and each baseline's prediction)
are committed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FingerprintConfig as Config
from pipeline.attribution.config import GameConfig, ReadingsConfig, ScoresConfig

BASELINES = ("length", "family", "difficulty", "text", "bow")
#: The baselines that together make `metadata` (the bag of words is compared on its own).
METADATA = ("length", "family", "difficulty", "text")


def sae_edge(cfg: Config, config: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The upstream SAE experiment and its config (`sae_config`, or the one given), with `profile`
    filled from this config."""
    sae_config = dict(cfg.sae_config if config is None else config)
    if sae_config.setdefault("profile", cfg.profile) != cfg.profile:
        raise ValueError(f"sae_config.profile is {sae_config['profile']!r} but this config's profile is {cfg.profile!r}")
    if cfg.sae_experiment == "pipeline.saefeatures.saes":  # the SAE study's own node, as its claims name it
        from pipeline.saefeatures.config import SAEConfig

        sae_config = SAEConfig(**sae_config).model_dump(mode="json")
    return cfg.sae_experiment, sae_config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    edges = {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
             "scores": ("pipeline.attribution.scores", cfg.upstream(ScoresConfig)),
             "sae": sae_edge(cfg)}
    if cfg.wide_sae_config is not None:
        edges["wide_sae"] = sae_edge(cfg, cfg.wide_sae_config)
    if cfg.reading == "chosen":
        edges["readings"] = ("pipeline.attribution.readings", cfg.upstream(ReadingsConfig))
    return edges


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def metadata_features(rows: list[dict[str, Any]], n_tokens: np.ndarray) -> dict[str, np.ndarray]:
    from pipeline.attribution.subsets import FORMAT

    families = sorted({r["family"] for r in rows})
    variants = ("clean", "noisy", "off_format")
    length = n_tokens[:, None].astype(float)
    return {
        "length": length,
        "family": np.array([[r["family"] == f for f in families] for r in rows], dtype=float),
        "difficulty": np.array([[r["difficulty"], r["n_clues"]] for r in rows], dtype=float),
        "text": np.hstack([length, np.array([[len(r["completion"]), bool(FORMAT.match(r["completion"]))]
                                             for r in rows], dtype=float)]),
        "variant": np.array([[r["variant"] == v for v in variants] for r in rows], dtype=float),
    }


def bag_of_words(ids: list[list[int]] | list[np.ndarray]) -> np.ndarray:
    """Each example's tokens as shares of its length, one column per token id the examples use."""
    vocab = {t: j for j, t in enumerate(sorted({int(t) for seq in ids for t in seq}))}
    out = np.zeros((len(ids), len(vocab)))
    for i, seq in enumerate(ids):
        for t in seq:
            out[i, vocab[int(t)]] += 1.0 / len(seq)
    return out


def split_families(groups: np.ndarray, n_select: int, seed: int) -> tuple[list[str], np.ndarray]:
    """The families drawn (seeded) to choose the layer on, and the mask of the examples every
    estimate is reported on (all of them when none is drawn)."""
    families = sorted(set(groups.tolist()))
    if n_select >= len(families) - 1:
        raise ValueError(f"n_select_families {n_select} leaves fewer than two of the {len(families)} families "
                         "to report on")
    chosen = sorted(np.random.default_rng([seed, 17]).permutation(families)[:n_select].tolist())
    return chosen, ~np.isin(groups, chosen)


def candidate_saes(cfg: Config, upstream: Any, wide: Any = None) -> list[tuple[str, int, Any]]:
    """(name, layer, SAE) for every candidate: the SAE study's dictionaries at `sae_layers` (named by
    layer) and every dictionary of the second set (`wide`, named <layer>w<d_sae>), or the one SAE in
    `sae_file` at `sae_layer`."""
    from pipeline.attribution.sae import hook_layer, load_sae

    if not cfg.sae_layers:
        sae = load_sae(upstream, cfg.sae_file)
        layer = hook_layer(sae)
        if layer is not None and layer != cfg.sae_layer:
            raise ValueError(f"the SAE reads block {layer} ({sae.cfg.metadata.hook_name}) but sae_layer is "
                             f"{cfg.sae_layer}")
        return [(str(cfg.sae_layer), cfg.sae_layer, sae)]
    offered = [int(e["layer"]) for e in upstream.result.values.get("saes", [])]
    missing = [layer for layer in cfg.sae_layers if layer not in offered]
    if missing:
        raise ValueError(f"sae_layers {missing} are not among the SAE study's dictionaries (layers {offered})")
    out = [(str(layer), layer, _study_sae(upstream, layer)) for layer in cfg.sae_layers]
    for entry in (wide.result.values.get("saes", []) if wide is not None else []):
        sae = _study_sae(wide, int(entry["layer"]))
        out.append((f"{int(entry['layer'])}w{int(sae.cfg.d_sae)}", int(entry["layer"]), sae))
    return out


def _study_sae(upstream: Any, layer: int) -> Any:
    from pipeline.attribution.sae import hook_layer, load_sae

    sae = load_sae(upstream, f"sae_L{layer}")
    if hook_layer(sae) not in (None, layer):
        raise ValueError(f"the SAE study's sae_L{layer} reads {sae.cfg.metadata.hook_name}, not block {layer}")
    return sae


def choice_scores(features: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, report: np.ndarray,
                  cfg: Config) -> dict[str, float]:
    """Each candidate's Spearman on the families set aside, from fits that see those families only
    (each held out in turn, fit on the others set aside): no reported family's rank enters the choice."""
    from pipeline.attribution.estimates import grouped_predictions, spearman

    chosen = ~report
    return {name: spearman(grouped_predictions(X[chosen], y[chosen], groups[chosen], cfg.alphas, cfg.seed), y[chosen])
            for name, X in features.items()}


def ranked_scores(cfg: Config, ctx: Any) -> tuple[str, np.ndarray]:
    """The reading the fingerprint predicts and its scores over the pool (values.pool_index order)."""
    values = ctx.upstream("scores").result.values
    if cfg.reading == "first":
        return values.get("readings", ["first"])[0], np.asarray(values["scores"], dtype=float)
    from pipeline.attribution.readings import chosen

    name = chosen(ctx, cfg.reading)
    return name, np.asarray(values["reading_scores"][name], dtype=float)


def target(scores: np.ndarray) -> np.ndarray:
    """Attribution rank as a percentile in (0, 1]: 1 for the highest score."""
    from scipy.stats import rankdata

    return rankdata(scores) / len(scores)


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.estimates import grouped_predictions
    from pipeline.attribution.sae import candidate_features
    from pipeline.models import load

    cfg = Config(**config)
    cpu = time.process_time()
    examples = ctx.upstream("pool").json("examples")
    index = np.asarray(ctx.upstream("scores").result.values["pool_index"])
    rows = [examples[i] for i in index]
    reading, scores = ranked_scores(cfg, ctx)
    y = target(scores)
    groups = np.array([r["family"] for r in rows])
    select, report = split_families(groups, cfg.n_select_families, cfg.seed)
    candidates = candidate_saes(cfg, ctx.upstream("sae"), ctx.upstream("wide_sae") if cfg.wide_sae_config else None)
    lm = load(cfg.profile)
    encoded = encode(lm.tokenizer, rows)
    features = candidate_features(lm, encoded, candidates, cfg.eval_batch_size, ctx.progress)
    seconds = {"features_cpu": round(time.process_time() - cpu, 2)}
    cpu = time.process_time()
    on_select = choice_scores(features, y, groups, report, cfg) if select and len(candidates) > 1 else {}
    name = max(on_select, key=on_select.get) if on_select else candidates[0][0]  # the first listed on a tie
    layer, sae = next((layer, sae) for n, layer, sae in candidates if n == name)
    X = features[name]
    ctx.save_arrays("features", features=X.astype(np.float32), target=y, index=index)
    n_tokens = np.array([len(ids) for ids in encoded.ids])
    meta = {**metadata_features(rows, n_tokens), "bow": bag_of_words(encoded.ids)}
    preds = {"sae": grouped_predictions(X, y, groups, cfg.alphas, cfg.seed)}
    for base, feats in meta.items():
        preds[base] = grouped_predictions(feats, y, groups, cfg.alphas, cfg.seed)
    preds["metadata"] = grouped_predictions(np.hstack([meta[b] for b in METADATA]), y, groups, cfg.alphas, cfg.seed)
    ctx.save_items("examples", [
        {"id": r["id"], "pool_index": int(index[j]), "family": r["family"], "entity": r["entity"],
         "variant": r["variant"], "n_tokens": int(n_tokens[j]), "reported": bool(report[j]), "rank": float(y[j]),
         **{f"pred_{base}": round(float(p[j]), 6) for base, p in preds.items()}}
        for j, r in enumerate(rows)])
    estimates = recompute(ctx.item_rows, cfg.model_dump(mode="json"))
    seconds["regressions_cpu"] = round(time.process_time() - cpu, 2)
    best = max(BASELINES, key=lambda b: estimates[f"spearman_{b}"].value)
    alive = int((X > 0).any(axis=0).sum())
    return Result(estimates=estimates, values={
        "best_baseline": best, "n_examples": len(rows), "n_reported": int(report.sum()),
        "n_families": len(set(groups)), "selection_families": select, "n_select_families": len(select),
        "reported_families": sorted(set(groups[report].tolist())),
        "candidate_layers": sorted({c[1] for c in candidates}), "candidates": [c[0] for c in candidates],
        "n_candidates": len(candidates), "reading": reading,
        "selection_spearman": {k: round(v, 4) for k, v in on_select.items()}, "d_sae": int(X.shape[1]),
        "alive_features": alive, "sae_layer": layer, "sae_dictionary": name,
        "hook_name": str(sae.cfg.metadata.hook_name or ""),
        "mean_active_per_example": round(float((X > 0).sum(axis=1).mean()), 2),
        "predictions": np.round(preds["sae"], 5).tolist(), "seconds": seconds,
    })


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the committed per-example rows: each prediction's Spearman with the rank
    on the reported families (entity clusters resampled), and the fingerprint's paired gain over
    each baseline; gain_over_best is the gain over the strongest single baseline."""
    from pipeline.attribution.estimates import spearman_estimate, spearman_gain

    cfg = Config(**config)
    rows = [r for r in items["examples"] if r["reported"]]
    y = np.array([r["rank"] for r in rows])
    entities = [r["entity"] for r in rows]
    pred = {name: np.array([r[f"pred_{name}"] for r in rows]) for name in ("sae", *BASELINES, "metadata", "variant")}
    kw = {"level": cfg.level, "seed": cfg.seed}
    estimates = {"spearman": spearman_estimate(pred["sae"], y, entities, **kw)}
    for name in (*BASELINES, "metadata", "variant"):
        estimates[f"spearman_{name}"] = spearman_estimate(pred[name], y, entities, **kw)
    for name in (*BASELINES, "metadata"):
        estimates[f"gain_over_{name}"] = spearman_gain(pred["sae"], pred[name], y, entities, **kw)
    best = max(BASELINES, key=lambda b: estimates[f"spearman_{b}"].value)
    estimates["gain_over_best"] = estimates[f"gain_over_{best}"]
    return estimates
