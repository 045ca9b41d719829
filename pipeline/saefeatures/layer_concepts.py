"""Concepts across every dictionary of the layer sweep: the held-out concept search of ranking.py run
over all of them at once, and per dictionary.

The layer sweep (claims sae-layers-*) trains an SAE at every layer at the base width and a second,
wider one at `wide_layers`; each set is its own saes node and is read by its own extraction node
(the concept sentences, one pass, every prefix position). This step puts the two extractions side by
side as one feature matrix (a dictionary is named `L<layer>` at the base width and `L<layer>w<width>`
at the second, so a latent reads `L5w4096/123`) and then does exactly what the study's four-layer
concept claims do (ranking.py, shuffled.py), on the same sentences, halves and labels:

  main (shuffles 0)   the latent chosen on one half of the length-matched sets among all latents
                      and scored on the other, both ways (heldout_spearman); the same paired text
                      baselines (token count, bag of words, word and character n-grams), the partial
                      Spearman given the n-grams, specificity on the other concepts' labels, all from
                      the committed per-item rows with ranking.recompute's set-within-half bootstrap;
                      and, per dictionary, the held-out Spearman of the search restricted to it
                      (`per_dictionary`: where in depth and width the concept is read best; values
                      only, each chosen on its own, so the best of them is optimistic)
  control (n_shuffles > 0)
                      shuffled.run on the same matrix: the labels permuted within sets, the whole
                      search rerun each time, the rank p of the real held-out Spearman

Feature pages: the main run also keeps, like ranking.py, the top `n_top` latents by Spearman on all
sentences with the concept sentences and held-out corpus snippets they fire on most (the corpus
snippets from the sweep's reconstruction nodes, which keep each dictionary's held-out codes); their
pages are named `<concept>-sweep-L<dictionary>-<index>` so that they never collide with the study's.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline.saefeatures import scores
from pipeline.saefeatures.config import CorpusConfig, ExtractionConfig, ReconstructionConfig, ShuffledConfig

SNIPPET_RADIUS = 8  # tokens either side of a corpus snippet's peak (ranking.py's)


class Config(ShuffledConfig):
    n_shuffles: int = Field(0, ge=0, description="0: the search itself; > 0: the control, with this many "
                            "within-set label permutations.")
    wide_layers: tuple[int, ...] = Field((5, 9, 12, 15), min_length=1, description="Layers of the second width.")
    wide_d_sae: int = Field(4096, ge=2, description="Latents per SAE at the second width.")
    loss_sequences: int | None = Field(None, ge=2, description="The sweep's reconstruction nodes (whose held-out "
                                       "codes give the feature pages' corpus snippets) read the spliced loss on this many.")


def _step(cfg: Config, model: Any, wide: bool) -> dict[str, Any]:
    out = cfg.upstream(model)
    if wide:
        out |= {"layers": list(cfg.wide_layers), "d_sae": cfg.wide_d_sae}
    return out


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    out = {"extraction": ("pipeline.saefeatures.extraction", _step(cfg, ExtractionConfig, False)),
           "wide": ("pipeline.saefeatures.extraction", _step(cfg, ExtractionConfig, True))}
    if not cfg.n_shuffles:  # the feature pages' corpus snippets
        out |= {"codes": ("pipeline.saefeatures.sweep_reconstruction", _step(cfg, ReconstructionConfig, False)),
                "wide_codes": ("pipeline.saefeatures.sweep_reconstruction", _step(cfg, ReconstructionConfig, True)),
                "corpus": ("pipeline.saefeatures.corpus", cfg.upstream(CorpusConfig))}
    return out


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.saefeatures.extraction import inputs as extraction_inputs

    return extraction_inputs(Config(**config).upstream(ExtractionConfig))


class Merged:
    """The two extraction nodes as one, to ranking.Features: dictionaries named by layer at the base
    width and `<layer>w<width>` at the second, their arrays read from the node that holds them."""

    def __init__(self, base: Any, wide: Any):
        vb, vw = base.result.values, wide.result.values
        if [s["id"] for s in vb["sentences"]] != [s["id"] for s in vw["sentences"]]:
            raise ValueError("the two extractions hold different sentences")
        names = [*vb["layers"], *[f"{layer}w{width}" for layer, width in zip(vw["layers"], vw["widths"], strict=True)]]
        self._source = {f"sae_L{n}": (base, f"sae_L{n}") for n in vb["layers"]}
        self._source |= {f"sae_L{n}": (wide, f"sae_L{layer}") for n, layer in zip(names[len(vb["layers"]):], vw["layers"],
                                                                                  strict=True)}
        self.result = SimpleNamespace(values={**vb, "layers": names, "widths": [*vb["widths"], *vw["widths"]],
                                              "neuronpedia_ids": [*vb["neuronpedia_ids"], *vw["neuronpedia_ids"]]})

    def arrays(self, name: str) -> Any:
        node, key = self._source[name]
        return node.arrays(key)


class _Context:
    """The step's context with the merged extraction in place of the two (for ranking and shuffled)."""

    def __init__(self, ctx: Any):
        self._ctx, self._merged = ctx, Merged(ctx.upstream("extraction"), ctx.upstream("wide"))

    def upstream(self, name: str) -> Any:
        return self._merged if name == "extraction" else self._ctx.upstream(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The search's held-out estimates from its rows (ranking.recompute); the control's rows are its null
    draws, from which shuffled.py derives values, not estimates: nothing to give back."""
    from pipeline.saefeatures import ranking

    if "heldout" not in items:
        return {}
    return ranking.recompute(items, Config(**config).upstream(ranking.Config))


def per_dictionary(f: Any, half: np.ndarray) -> list[dict[str, Any]]:
    """For each dictionary, the held-out Spearman of the search restricted to its latents."""
    out = []
    for i, name in enumerate(f.layers):
        block = f.X[:, f.offsets[i]:f.offsets[i + 1]]
        chosen = {h: int(np.argmax(scores.spearman(block[half == h], f.y[half == h]))) for h in (0, 1)}
        latent = np.array([block[j, chosen[1 - half[j]]] for j in range(len(f.y))], dtype=float)
        held = float(np.mean([scores.spearman(latent[half == h][:, None], f.y[half == h])[0] for h in (0, 1)]))
        out.append({"dictionary": f"L{name}", "width": int(f.widths[i]), "heldout_spearman": held,
                    "chosen": [f"L{name}/{chosen[h]}" for h in (0, 1)]})
    return out


def feature_pages(ctx: Any, cfg: Config, f: Any) -> list[dict[str, Any]]:
    """The top latents by Spearman on all sentences, with what their pages show (ranking.py's fields,
    plus the dictionary, its width and the page's name)."""
    from pipeline.saefeatures.dashboard import corpus_snippets, sentence_examples

    rho = scores.spearman(f.X, f.y)
    auc, means, steps = scores.auroc(f.X, f.y), scores.label_means(f.X, f.y), scores.mono_steps(f.X, f.y)
    pieces = ctx.upstream("corpus").json("sequences")["heldout_pieces"]
    out = []
    for rank, flat in enumerate(np.argsort(-rho, kind="stable")[: cfg.n_top].tolist()):
        i, index = f.locate(flat)
        name, wide = str(f.layers[i]), isinstance(f.layers[i], str)
        layer = int(name.split("w")[0])
        codes = ctx.upstream("wide_codes" if wide else "codes").arrays(f"codes_L{layer}")
        out.append({"rank": rank + 1, "id": f"L{name}/{index}", "dictionary": f"L{name}", "layer": layer,
                    "width": int(f.widths[i]), "index": index, "page": f"{cfg.concept}-sweep-L{name}-{index}",
                    "spearman": float(rho[flat]), "auroc": float(auc[flat]), "mono_steps": int(steps[flat]),
                    "label_means": [float(m) for m in means[:, flat]], "neuronpedia": None,
                    "sentences": sentence_examples(f, i, index, cfg.n_examples),
                    "corpus": corpus_snippets(codes, pieces, index, cfg.n_examples, SNIPPET_RADIUS)})
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures import ranking, shuffled

    cfg = Config(**config)
    view = _Context(ctx)
    if cfg.n_shuffles:
        return shuffled.run(cfg.upstream(shuffled.Config), view)
    f = ranking.Features(view, cfg)
    half = ranking.set_halves(f.sentences, f.y, cfg.seed)
    chosen, latent = ranking.choose_and_score(f, half)
    group = ranking.clusters(f.sentences)
    texts = [s["sentence"] for s in f.sentences]
    bow, tfidf = ranking.bow_predictions(texts, f.y, half), ranking.bow_predictions(texts, f.y, half, kind="ngrams")
    heldout_rows = [{"id": s["id"], "cluster": group[i], "half": int(half[i]), "label": int(f.y[i]),
                     "n_tokens": len(s["pieces"]), "latent": float(latent[i]), "bow": float(bow[i]),
                     "tfidf": float(tfidf[i]), "sentence": s["sentence"]} for i, s in enumerate(f.sentences)]
    specificity_rows = []
    for other in [c for c in view.upstream("extraction").result.values["concepts"] if c != cfg.concept]:
        g = ranking.Features(view, SimpleNamespace(concept=other, readout=cfg.readout))
        g_half, g_group = ranking.set_halves(g.sentences, g.y, cfg.seed), ranking.clusters(g.sentences)
        specificity_rows += [{"concept": other, "id": s["id"], "cluster": g_group[i], "half": int(g_half[i]),
                              "label": int(g.y[i]), "latent": float(g.X[i, chosen[1 - g_half[i]]])}
                             for i, s in enumerate(g.sentences)]
    ctx.save_items("heldout", heldout_rows)
    ctx.save_items("specificity", specificity_rows)
    estimates = recompute({"heldout": heldout_rows, "specificity": specificity_rows}, config)
    dictionaries = per_dictionary(f, half)
    best = max(dictionaries, key=lambda d: d["heldout_spearman"])
    located = {h: f.locate(chosen[h]) for h in (0, 1)}
    return Result(estimates=estimates, values={
        "concept": cfg.concept, "readout": cfg.readout, "n_sentences": len(f.y), "n_sets": len(set(group)),
        "n_features": int(f.X.shape[1]), "n_dictionaries": len(f.layers),
        "dictionaries": [f"L{name}" for name in f.layers], "widths": [int(w) for w in f.widths],
        "heldout_features": [f"L{f.layers[located[h][0]]}/{located[h][1]}" for h in (0, 1)],
        "per_dictionary": dictionaries, "best_dictionary": best["dictionary"],
        "best_dictionary_spearman": best["heldout_spearman"],
        "other_concepts": sorted({r["concept"] for r in specificity_rows}), "features": feature_pages(ctx, cfg, f),
        **ranking.split_stability(f, cfg.seed)})
