"""The SAE feature pages: one static dashboard per top latent of each concept, rendered from a
fresh ranking result (tokens shaded by activation, escaped; a Neuronpedia link only where the SAE
has a Neuronpedia id), plus their index; results that are not fresh give no page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from claims.project import Project
from claims.result import Result
from site_build.common.outputs import Outputs, key_of
from site_build.features import add_feature_pages, neuronpedia_link, shaded

ROOT = Path(__file__).resolve().parents[1]


def feature(rank: int, layer: int, index: int, link: str | None) -> dict[str, Any]:
    return {"rank": rank, "id": f"L{layer}/{index}", "layer": layer, "index": index, "spearman": 0.61,
            "auroc": 0.93, "mono_steps": 3, "label_means": [0.0, 0.1, 0.4, 1.2], "neuronpedia": link,
            "sentences": [{"id": "dis-3-01", "label": 3, "max": 2.5,
                           "tokens": [["He", 0.0], [" lied", 2.5], [" <b>", 1.0]]}],
            "corpus": [{"sequence": 4, "max": 1.5, "tokens": [["a", 0.0], [" liar", 1.5]]}]}


@dataclass
class Node:
    experiment: str
    fresh: bool
    result: Result | None


@dataclass
class Record:
    id: str
    status: str
    nodes: dict[str, Node] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status}


class Pages:
    def __init__(self, out: Path, records: list[Record]):
        self.project = Project.at(ROOT)
        self.study = type("Study", (), {"records": records})()
        self.outputs = Outputs(out)

    def site(self, rel: str, title: str) -> dict[str, Any]:
        return {"title": "Site", "nav": [], "current": rel, "page_title": title, "results_as_of": None,
                "built_on": None, "counts": [], "root": "../" * rel.count("/"), "models": [], "authors": [],
                "repository": None}

    def page_key(self, *parts: Any) -> str:
        return key_of(*parts)


def ranking(concept: str, link: str | None, fresh: bool = True) -> Record:
    values = {"concept": concept, "readout": "max", "n_sentences": 64,
              "features": [feature(1, 7, 42, link), feature(2, 11, 5, None)]}
    main = Node("pipeline.saefeatures.ranking", fresh, Result(values=values) if fresh else None)
    return Record(f"sae-concept-{concept}", "verified" if fresh else "stale", {"main": main})


def test_feature_pages_render_scores_shaded_tokens_and_links(tmp_path):
    out = tmp_path / "site"
    pages = Pages(out, [ranking("dishonesty", "https://neuronpedia.org/gemma-3-4b-it/17-gemmascope-2-res-16k/42"),
                        ranking("kindness", None, fresh=False)])
    add_feature_pages(pages)
    pages.outputs.commit()
    page = (out / "features/dishonesty-L7-42.html").read_text()
    assert "Latent L7/42" in page and "0.610" in page and "3 of 3" in page
    assert 'data-shade="1.0"' in page and " lied</span>" in page  # the peak token, fully shaded
    assert "&lt;b&gt;" in page and "<b>" not in page  # token text is escaped
    assert 'href="https://neuronpedia.org/gemma-3-4b-it/17-gemmascope-2-res-16k/42"' in page
    assert "no Neuronpedia page" in (out / "features/dishonesty-L11-5.html").read_text()
    index = (out / "features/index.html").read_text()
    assert 'href="dishonesty-L7-42.html"' in index and "kindness" not in index  # stale results give no page
    assert not list(out.glob("features/kindness-*"))


def test_shades_are_relative_to_the_example_peak():
    assert [t["shade"] for t in shaded([["a", 0.0], ["b", 1.0], ["c", 4.0]])] == [0.0, 0.25, 1.0]
    assert [t["shade"] for t in shaded([["a", 0.0]])] == [0.0]


@pytest.mark.parametrize(("link", "shown"), [
    ("https://neuronpedia.org/gemma-3-270m/12-gemmascope-2-res-16k/7", True),
    ("https://www.neuronpedia.org/gemma-3-270m/12-gemmascope-2-res-16k/7", True),
    (None, False),
    ("javascript:alert(1)", False),
    ("http://neuronpedia.org/gemma-3-270m/12-gemmascope-2-res-16k/7", False),
    ("https://neuronpedia.org.example.com/x/7", False),
    ('https://neuronpedia.org/x/7" onmouseover="alert(1)', False),
    ("https://neuronpedia.org/x/7?next=https://example.com", False),
])
def test_only_neuronpedia_links_become_hrefs(tmp_path, link, shown):
    """A hub profile's feature links to its Neuronpedia page; anything else a result might carry
    in that field gives no link at all, and the page says there is none."""
    out = tmp_path / "site"
    pages = Pages(out, [ranking("dishonesty", link)])
    add_feature_pages(pages)
    pages.outputs.commit()
    page = (out / "features/dishonesty-L7-42.html").read_text()
    assert neuronpedia_link(link) == (link if shown else None)
    assert (f'href="{link}"' in page) is shown and ("no Neuronpedia page" in page) is not shown
    assert "javascript:" not in page and "onmouseover" not in page


def test_the_layer_sweep_gets_its_own_pages_beside_the_study_s(tmp_path):
    """A latent of the layer sweep at the same layer and index as one of the study's is another latent
    (another dictionary): it gets its own page, named by the result, and its own section of the index
    that says which search found it; a page name that is not a plain slug falls back to the layer name."""
    out = tmp_path / "site"
    wide = {**feature(1, 7, 42, None), "id": "L7w4096/42", "dictionary": "L7w4096", "width": 4096,
            "page": "dishonesty-sweep-L7w4096-42"}
    odd = {**feature(2, 9, 3, None), "page": "../../etc/passwd"}
    values = {"concept": "dishonesty", "readout": "max", "n_sentences": 200, "features": [wide, odd]}
    sweep = Record("sae-layers-concept-dishonesty", "failed",
                   {"main": Node("pipeline.saefeatures.layer_concepts", True, Result(values=values))})
    pages = Pages(out, [ranking("dishonesty", None), sweep])
    add_feature_pages(pages)
    pages.outputs.commit()
    study, swept = (out / "features/dishonesty-L7-42.html").read_text(), \
        (out / "features/dishonesty-sweep-L7w4096-42.html").read_text()
    assert "Latent L7/42" in study and "Latent L7w4096/42" in swept and "dictionary of 4096 latents" in swept
    assert (out / "features/dishonesty-L9-3.html").exists() and not list(tmp_path.rglob("passwd*"))
    index = (out / "features/index.html").read_text()
    assert "every layer and a second width" in index and "the study&#39;s four layers" in index
    assert 'href="dishonesty-sweep-L7w4096-42.html"' in index
