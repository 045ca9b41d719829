"""The scholarly apparatus: front matter in one place for site and paper, citations rendered by
citeproc-py from references.bib (unknown keys warn with file:line), the PDF's page numbers,
running head, vector charts and tags, the data files and commit links of each claim page, and
the model fingerprint on every page."""

from __future__ import annotations

import io
import json

import pytest

from claims.errors import BuildError
from paper_build.build import build_paper
from paper_build.pdf import pdf_renderer
from site_build import pages
from site_build.build import build_site
from tests.conftest import git, shared_project
from tests.test_site import make, site_file

MODEL_PROBE_INPUTS = '''

def inputs(config):
    return {"model": {"model_id": "google/gemma-3-270m", "file": "gemma-3-270m-q4_k_m.gguf", "dtype": "float32",
                      "weights_sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"}}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from site_build import sample

    tmp = tmp_path_factory.mktemp("apparatus")
    with shared_project(tmp):
        project = make(tmp, probe=sample.PROBE + MODEL_PROBE_INPUTS,
                       content={"content/front.md": sample.CONTENT["content/front.md"].replace(
                           "keywords:", "repository: https://git.example.org/study\nkeywords:")})
        build_paper(project)
        build_site(project)
    return project


def test_front_matter_is_one_place_for_site_and_paper(project):
    paper = site_file(project, "paper.html")
    assert '<h1 class="paper-title">A sample paper: detectors and levers</h1>' in paper
    assert '<span class="author-name">Ada Sample</span><span class="affiliation">Sample Institute</span>' in paper
    assert '<p class="keywords"><span class="label">Keywords:</span> interpretability, hallucination</p>' in paper
    assert '<section class="abstract" aria-labelledby="abstract">' in paper and "We test a probe and a lever." in paper
    assert "<title>Story · Sample study</title>" in site_file(project, "story.html")  # short_title is the site's
    standalone = (project.build_dir / "paper" / "paper.html").read_text()
    assert '<meta name="author" content="Ada Sample, Bo Example">' in standalone
    assert '<p class="running-head" aria-hidden="true">Sample study</p>' in standalone
    assert "Ada Sample, Bo Example." in site_file(project, "story.html")  # every page's footer


def test_citations_render_from_the_bibliography(project):
    story = site_file(project, "story.html")
    assert ('<a class="citation" href="#ref-li2023iti">(Li <i>et al.</i>, 2023; Gao <i>et al.</i>, 2025)</a>'
            in story)  # two keys in one citation, in the order written
    assert story.count('<li id="ref-') == 2 and '<h2 id="references">References</h2>' in story
    assert "methods.html" and "References" not in site_file(project, "methods.html")  # cites nothing, lists nothing
    md = (project.build_dir / "paper" / "paper.md").read_text()
    assert "[@" not in md and "Available at: https://arxiv.org/abs/2512.01797." in md


def test_an_unknown_reference_is_visible_and_a_warning_with_file_and_line(tmp_path):
    project = make(tmp_path, content={"content/methods.md": "# Methods\n\nAs shown [@nobody2020].\n"})
    report = build_site(project)
    assert "content/methods.md:3: cites 'nobody2020', which content/references.bib does not have" in report.warnings
    assert '<span class="citation missing">[?nobody2020]</span>' in site_file(project, "methods.html")
    with pytest.raises(BuildError, match="nobody2020"):
        build_site(project, strict=True)


@pytest.mark.parametrize(("front", "message"), [
    ("---\ntitle: T\nauthor: Ada\n---\nAbstract.\n", "content/front.md:3: author: unknown field"),
    ("---\ntitle: T\ndate: yesterday\n---\n", "content/front.md:3: date: Input should be a valid date"),
    ("---\ntitle: T\nrepository: not a url\n---\n", "content/front.md:3: repository: 'not a url': must be an http(s) address"),
])
def test_front_matter_mistakes_are_one_line(tmp_path, front, message):
    project = make(tmp_path, content={"content/front.md": front})
    with pytest.raises(BuildError) as err:
        build_site(project)
    assert err.value.message.startswith(message), err.value.message


def test_a_bad_bibliography_is_one_line(tmp_path):
    project = make(tmp_path, content={"content/references.bib": "@article{broken, title = {no end\n"})
    with pytest.raises(BuildError) as err:
        build_site(project)
    assert err.value.message.startswith("content/references.bib: cannot parse the bibliography (")


def test_claim_page_links_its_data_its_commit_and_the_model(project):
    page = site_file(project, "claims/probe-accuracy.html")
    main = json.loads(site_file(project, "claims.json"))["claims"]
    entry = next(c for c in main if c["id"] == "probe-accuracy")
    result = entry["provenance"]["runs"]["main"]["result"]  # artifacts/fx_sample_probe/<key>.json
    copy = result.removeprefix("artifacts/")
    assert f'<a href="../data/{copy}">result (JSON)</a>' in page
    assert (project.build_dir / "site" / "data" / copy).read_bytes() == (project.root / result).read_bytes()
    assert "provenance sidecar (JSON)" in page
    assert ("Model behind these results: google/gemma-3-270m, gemma-3-270m-q4_k_m.gguf, run in float32, "
            "weights sha256 a5fd3b62230a.") in page
    assert "Model behind these results: google/gemma-3-270m" in site_file(project, "index.html")
    assert json.loads(site_file(project, "claims.json"))["models"][0]["dtype"] == "float32"


def test_large_results_are_not_copied(tmp_path, monkeypatch):
    monkeypatch.setattr(pages, "DATA_CAP", 10)
    project = make(tmp_path)
    build_site(project)
    assert not (project.build_dir / "site" / "data").exists()
    assert "is too large to copy into the site: it is in the repository" in site_file(project, "claims/probe-accuracy.html")


def test_commit_links_when_a_repository_is_configured(tmp_path, git_env):
    from site_build import sample

    content = {**sample.CONTENT, "content/front.md": "---\ntitle: T\nrepository: https://git.example.org/s\n---\n"}
    root = tmp_path / "proj"
    sample.write(root, content=content)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"]):
        git(root, *args)
    project = sample.create(root, content=content)  # results made at that commit
    build_site(project)
    head = git(root, "rev-parse", "HEAD")
    assert f'<a href="https://git.example.org/s/commit/{head}">the commit it was made at</a>' in site_file(
        project, "claims/probe-accuracy.html")


@pytest.mark.skipif(pdf_renderer()[0] is None, reason="WeasyPrint or pango is not installed")
def test_pdf_has_page_numbers_running_head_vector_charts_and_tags(project):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO((project.build_dir / "paper" / "paper.pdf").read_bytes()))
    pages_text = [p.extract_text() for p in reader.pages]
    n = len(pages_text)
    assert n >= 3
    for i, text in enumerate(pages_text, 1):
        assert f"{i} / {n}" in text  # page numbers
    assert all("Sample study" in t for t in pages_text[1:])  # the running head, from short_title
    assert "Sample study" not in pages_text[0].split("A sample paper")[0]  # not over the title page
    images = [name for page in reader.pages for name in (page.images or [])]
    assert images == []  # charts are vectors, not pictures
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]  # tagged (PDF/UA)
    assert root["/Lang"] == "en"
    assert reader.metadata.title == "A sample paper: detectors and levers"
    assert "Appendix: the claims" in " ".join(pages_text)
