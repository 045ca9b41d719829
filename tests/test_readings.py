"""What a claim's card, page and table lead with (site_build.common.readings), and the engine's
referee fields (baselines, balance, rank draws, control role, waiver) shown when present and
absent otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from site_build.build import build_site
from site_build.common.readings import engine_extras, judged
from tests.test_site import make, site_file

FIELDS = {
    "baselines": [{"label": "answer length", "value": 0.6, "difference": 0.3, "ci": [0.25, 0.35], "beats": True},
                  {"label": "answer log-probability", "value": 0.96, "difference": 0.012, "ci": [-0.004, 0.03],
                   "beats": False, "strongest": True}],
    "baseline_verdict": "does not beat the strongest baseline (answer log-probability)",
    "balance": {"layer": {"achieved": 0.0, "tolerance": 0.0, "ok": True},
                "activity decile": {"achieved": 0.04, "tolerance": 0.05, "ok": True}},
    "rank": {"p": 0.01, "draws": 100, "sided": "one", "alpha": 0.05, "smallest_p": 0.0099, "ok": True},
    "waiver": "the baseline matches it; kept for the record",
}


def record_with(outcome: dict, control: dict) -> SimpleNamespace:
    return SimpleNamespace(outcome=SimpleNamespace(control=control, **outcome))


def test_engine_fields_are_read_when_present_and_empty_when_absent():
    extras = engine_extras(record_with(FIELDS, {"role": "positive"}))
    assert extras["baselines"] == {"strongest": "answer log-probability", "difference": 0.012, "ci": [-0.004, 0.03],
                                   "level": None, "beats": False, "count": 2,
                                   "verdict": "does not beat the strongest baseline (answer log-probability)"}
    assert extras["balance"][1] == {"covariate": "activity decile", "achieved": 0.04, "tolerance": 0.05, "ok": True}
    assert extras["role_text"] == "positive control: to be detected"
    assert extras["draws"] == 100 and extras["sided"] == "one-sided"
    assert extras["waiver"] == {"why": "the baseline matches it; kept for the record", "by": "", "date": ""}
    assert engine_extras(record_with({}, {})) == {"baselines": {}, "balance": [], "draws": None, "sided": "",
                                                  "role": "", "role_text": "", "waiver": {}}


@pytest.fixture
def site_with_referee_fields(tmp_path, monkeypatch):
    """The sample site, its headline probe-accuracy carrying every referee field of the engine."""
    import site_build.build as site_build_module

    gather = site_build_module.gather

    def gathered(project):
        study = gather(project)
        outcome = study.get("probe-accuracy").outcome
        for name, value in FIELDS.items():
            setattr(outcome, name, value)
        outcome.control["role"] = "positive"
        return study

    monkeypatch.setattr(site_build_module, "gather", gathered)
    project = make(tmp_path)
    build_site(project)
    return project


def test_claim_page_and_card_show_the_strongest_baseline_role_draws_and_waiver(site_with_referee_fields):
    page = site_file(site_with_referee_fields, "claims/probe-accuracy.html")
    arm = page.split('<div class="arm arm-baseline">')[1].split("</div>")[0]
    assert "answer log-probability" in arm and "(of 2;" in arm and "does not beat the strongest baseline" in arm
    assert "positive control: to be detected" in page and "100 (rank p, one-sided)" in page
    index = site_file(site_with_referee_fields, "index.html")
    card = index.split('<h3><a href="claims/probe-accuracy.html">')[1].split("</article>")[0]
    assert "badge-waived" in card and "Baseline</span> does not beat the strongest baseline" in card
    other = site_file(site_with_referee_fields, "claims/steering-slope.html")
    assert "arm-baseline" not in other and "badge-waived" not in other


def test_a_null_judged_on_its_metric_leads_with_its_metric(tmp_path):
    from site_build.common.records import gather

    project = make(tmp_path)
    record = gather(project).get("probe-chance")  # a null on its own metric (chance_gap)
    assert judged(record) is None and record.lead.field == "chance_gap" and record.lead.is_metric
