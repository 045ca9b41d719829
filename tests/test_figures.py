"""Charts draw what each claim's assertion tests, labelled from its spec: the figure spec's schema
(errors as file:line: field), each kind's content in the SVG, null claims' ranges, captions with
fields, axis titles and percentage ticks, and a clear warning when data is missing."""

from __future__ import annotations

import json
import re

import pytest

from claims.errors import SpecError
from claims.expr import thresholds
from claims.spec import load_spec
from site_build import sample
from site_build.build import build_site
from tests.conftest import shared_project
from tests.test_site import make, site_file

BASE = """
id: x
title: X
statement: The value is {accuracy:.1%}.
experiment: fx_sample_probe
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.5"
control: none
why_no_control: a test fixture
"""


@pytest.mark.parametrize(("extra", "message"), [
    ("figure: {kind: rank}", "x.yaml:10: figure.draws: Field required"),
    ("figure: {kind: rank, draws: control.x, bins: 3}", "x.yaml:10: figure.bins: unknown field"),
    ("figure: {kind: histogram}", "x.yaml:10: figure: Input tag 'histogram' found using 'kind' does not match any "
                                  "of the expected tags: 'intervals', 'rank', 'sweep', 'scatter'"),
    ("figure:\n  - alpha_sweep\n  - {kind: sweep, y: {label: ''}}",
     "x.yaml:12: figure.1.y.label: String should have at least 1 character"),
    ("figure: {kind: rank, draws: 'control.set auroc'}", "x.yaml:10: figure.draws: String should match pattern"),
    ("axis: {label: AUROC, units: x}", "x.yaml:10: axis.units: unknown field"),
    ("caption: Look at the line at 0.5", "x.yaml:10: caption: has hand-typed numbers ['0.5']"),
])
def test_figure_spec_errors_name_file_line_and_field(tmp_path, extra, message):
    path = tmp_path / "x.yaml"
    path.write_text(BASE.lstrip() + extra + "\n")
    with pytest.raises(SpecError) as err:
        load_spec(path, tmp_path)
    assert err.value.message.startswith(message), err.value.message


def test_names_and_panels_load():
    assert thresholds("auroc_ci[0] > 0.5 and abs(x) < 0.05 and control.rank_p <= 0.05 and a < b") == [
        ("auroc_ci", 0.5, False), ("x", 0.05, True), ("control.rank_p", 0.05, False)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("figs")
    with shared_project(tmp):
        project = make(tmp)
        return project, build_site(project)


def svg(project, name: str) -> str:
    return (project.build_dir / "site" / "figures" / name).read_text()


def texts(svg_text: str) -> list[str]:
    """The visible text of a chart (vega hides overlapping tick labels with opacity 0)."""
    found = re.findall(r"<text([^>]*)>(.*?)</text>", svg_text, re.S)
    return [re.sub(r"<[^>]+>", " ", t).strip() for attrs, t in found if 'opacity="0"' not in attrs]


def test_rank_draws_the_draws_the_value_the_p_and_the_broken_draws(built):
    project, report = built
    assert report.warnings == []
    for name in ("probe-vs-random.svg", "probe-vs-random.narrow.svg"):
        words = " ".join(texts(svg(project, name)))
        assert "60 random neuron sets" in words  # one legend entry for every draw
        assert "rank p = 0.049; control: beats control" in words  # the p and the verdict words of claims.verdict
        assert "2 of 60 draws broke the model's answers" in words  # None draws are reported, not dropped
        assert "the probe 75.2%" in words and "threshold 50%" in words  # the assertion's constant
        assert "Held-out accuracy" in words  # the axis from the spec, not the field name
        assert re.search(r"\b(40|60|80)%", words)  # fractions shown as percentages
    wide = svg(project, "probe-vs-random.svg")
    assert wide.count("<path") > 50  # a dot per draw that did not break


def test_intervals_rows_points_references_and_the_null_band(built):
    project, _ = built
    words = " ".join(texts(svg(project, "probe-vs-random-2.svg")))
    assert "probe" in words and "random sets" in words and "chance" in words
    null = " ".join(texts(svg(project, "probe-chance.svg")))
    assert "equivalence margin ±0.1" in null  # the range the null claim is judged against
    assert "threshold" not in null  # the margin's edges are the assertion's thresholds: drawn once, as the band
    assert "Distance from chance (accuracy)" in null and "+0.05" in null  # axis label, unit and format from the spec


def test_sweep_collapses_the_control_legend_and_shows_rates_as_percent(built):
    project, _ = built
    words = texts(svg(project, "steering-slope.svg"))
    assert "4 control series" in words and sum(w.startswith("seed") for w in words) == 0
    assert "30%" in words and "compliance rate" in words


def test_captions_come_from_the_spec_with_fields_else_say_what_to_look_at(built):
    project, _ = built
    page = site_file(project, "claims/probe-vs-random.html")
    assert "The probe&#39;s line stands clear of every random set; 0.049 is its rank p." in page
    assert page.count("<picture>") == 2  # two panels, one figure, one caption
    story = site_file(project, "story.html")
    assert "The blue line is this claim, its interval shaded; each grey line is one of the 4 control series." in story
    export = json.loads(site_file(project, "claims.json"))
    entry = next(c for c in export["claims"] if c["id"] == "probe-vs-random")
    assert [f["svg"] for f in entry["figures"]] == ["figures/probe-vs-random.svg", "figures/probe-vs-random-2.svg"]
    assert entry["caption"].startswith("The probe's line stands clear")


def test_missing_data_and_a_caption_field_that_is_not_there_warn_with_file_and_line(tmp_path):
    spec = sample.SPECS["probe-vs-random"].replace("control.set_accuracy", "control.set_auroc")
    chance = sample.SPECS["probe-chance"] + "caption: See {no_such_field:.2f}.\n"
    project = make(tmp_path, {"probe-vs-random": spec, "probe-chance": chance})
    report = build_site(project)
    assert ("specs/probe-vs-random.yaml:17: figure: claim probe-vs-random: the control result has no 'set_auroc' "
            "(it has: ") in " ".join(report.warnings)
    assert "specs/probe-chance.yaml:18: caption: claim probe-chance: the result has no 'no_such_field'" in report.warnings
    assert not (project.build_dir / "site" / "figures" / "probe-vs-random.svg").exists()
    assert "<picture>" not in site_file(project, "claims/probe-vs-random.html")
