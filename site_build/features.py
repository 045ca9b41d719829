"""Feature pages: a static dashboard for each top SAE latent of each concept, made from the fresh
results of the claims measured by `pipeline.saefeatures.ranking` (the study's dictionaries) and
`pipeline.saefeatures.layer_concepts` (the layer sweep's; nothing is computed here).

  features/index.html                          every concept's top latents, with their scores
  features/<concept>-L<layer>-<index>.html     one latent: Spearman, AUROC, mean per label, the
                                               concept sentences and held-out corpus snippets it
                                               fires on most (tokens shaded by activation), and a
                                               Neuronpedia link where its SAE has a Neuronpedia id
  features/<concept>-sweep-L<dictionary>-<index>.html
                                               the same for a latent of the layer sweep (named by the
                                               result, so two dictionaries of one layer never collide)

Registered by one call in `SitePages.add_all`: `add_feature_pages(self)`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from site_build.common.outputs import key_of
from site_build.common.render import render

#: experiment -> how its search is named on the pages
EXPERIMENTS = {"pipeline.saefeatures.ranking": "the study's four layers",
               "pipeline.saefeatures.layer_concepts": "every layer and a second width"}
FOLDER = "features"
NEURONPEDIA_HOSTS = ("neuronpedia.org", "www.neuronpedia.org")


def feature_rel(concept: str, feature: dict[str, Any]) -> str:
    if isinstance(feature.get("page"), str) and feature["page"].replace("-", "").isalnum():
        return f"{FOLDER}/{feature['page']}.html"
    return f"{FOLDER}/{concept}-L{feature['layer']}-{feature['index']}.html"


def neuronpedia_link(link: Any) -> str | None:
    """A feature's Neuronpedia link when it is one (https, Neuronpedia's host, a plain path), else
    None: nothing else a result carries becomes an href (the template escapes what it prints)."""
    if not isinstance(link, str):
        return None
    parts = urlsplit(link)
    plain = not parts.query and not parts.fragment and not any(c.isspace() or c in "\"'<>\\" for c in link)
    return link if parts.scheme == "https" and parts.netloc in NEURONPEDIA_HOSTS and plain else None


def shaded(tokens: list[list[Any]]) -> list[dict[str, Any]]:
    """Each token with a shade in [0, 1]: its activation over the example's largest."""
    top = max((float(a) for _, a in tokens), default=0.0)
    return [{"text": t, "act": float(a), "shade": round(max(0.0, float(a)) / top, 3) if top > 0 else 0.0}
            for t, a in tokens]


def concept_features(study: Any) -> list[dict[str, Any]]:
    """Per ranking claim with a fresh result: its concept, claim id, status and top features."""
    out = []
    for record in study.records:
        main = record.nodes.get("main")
        if main is None or main.experiment not in EXPERIMENTS or not main.fresh or main.result is None:
            continue
        values = main.result.values
        out.append({"claim": record.id, "status": record.status, "concept": values["concept"],
                    "search": EXPERIMENTS[main.experiment],
                    "readout": values["readout"], "n_sentences": values["n_sentences"],
                    "features": values["features"], "data": record.data()})
    return out


def add_feature_pages(pages: Any) -> None:
    """Register the feature pages and their index with the site's outputs."""
    concepts = concept_features(pages.study)
    if not concepts:
        return
    for entry in concepts:
        for feature in entry["features"]:
            rel = feature_rel(entry["concept"], feature)

            def make(rel: str = rel, entry: dict[str, Any] = entry, feature: dict[str, Any] = feature) -> bytes:
                examples = {"sentences": [{**s, "tokens": shaded(s["tokens"])} for s in feature["sentences"]],
                            "corpus": [{**c, "tokens": shaded(c["tokens"])} for c in feature["corpus"]]}
                shown = {**feature, "neuronpedia": neuronpedia_link(feature.get("neuronpedia"))}
                return render(pages.project, "feature.html", site=pages.site(rel, f"{entry['concept']}: {feature['id']}"),
                              entry=entry, feature=shown, examples=examples)

            pages.outputs.add(rel, pages.page_key("feature", entry["data"], feature), make)
    rel = f"{FOLDER}/index.html"
    listing = [{**{k: v for k, v in e.items() if k != "data"},
                "features": [{**f, "href": feature_rel(e["concept"], f).removeprefix(f"{FOLDER}/")} for f in e["features"]]}
               for e in concepts]
    pages.outputs.add(rel, pages.page_key("feature-index", key_of([e["data"] for e in concepts])),
                      lambda: render(pages.project, "feature_index.html", site=pages.site(rel, "SAE feature pages"),
                                     concepts=listing))
