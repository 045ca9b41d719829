"""What a claim's card, page and table lead with (site_build.common.readings), and the engine's
optional fields (baselines, balance, draws, role, waiver) shown when present, absent otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from site_build.build import build_site
from site_build.common.readings import engine_extras, judged
from site_build.common.records import ClaimRecord
from tests.test_site import make, site_file

EXTRAS = {
    "baselines": {"strongest": "answer log-probability", "difference": 0.012, "ci": [-0.004, 0.03], "level": 0.95,
                  "beats": False},
    "waiver": {"why": "the baseline matches it; kept for the record", "by": "A. Author", "date": "2026-12-01"},
}
CONTROL = {"role": "positive", "draws": 100,
           "balance": {"layer": {"achieved": 0.0, "tolerance": 0.0, "ok": True},
                       "activity decile": {"achieved": 0.04, "tolerance": 0.05, "ok": True}}}


def record_with(outcome: dict, control: dict) -> SimpleNamespace:
    return SimpleNamespace(outcome=SimpleNamespace(control=control, **outcome))


def test_engine_extras_are_read_when_present_and_empty_when_absent():
    extras = engine_extras(record_with(EXTRAS, CONTROL))
    assert extras["baselines"]["verdict"] == "does not beat the strongest baseline"
    assert extras["balance"] == [{"covariate": "layer", "achieved": 0.0, "tolerance": 0.0, "ok": True},
                                 {"covariate": "activity decile", "achieved": 0.04, "tolerance": 0.05, "ok": True}]
    assert extras["role_text"] == "positive control: to be detected" and extras["draws"] == 100
    assert extras["waiver"]["by"] == "A. Author"
    bare = engine_extras(record_with({}, {}))
    assert bare == {"baselines": {}, "balance": [], "draws": None, "sided": "", "role": "", "role_text": "",
                    "waiver": {}}
    listed = engine_extras(record_with({"waiver": "a reason"}, {"balance": [{"covariate": "kl", "achieved": 0.1}]}))
    assert listed["waiver"] == {"why": "a reason", "by": "", "date": ""}
    assert listed["balance"] == [{"covariate": "kl", "achieved": 0.1, "tolerance": None, "ok": None}]


@pytest.fixture
def site_with_extras(tmp_path, monkeypatch):
    """The sample site, its headline probe-accuracy given every optional field of the engine."""
    def extras(self):
        if self.id == "probe-accuracy":
            return engine_extras(record_with(EXTRAS, {**self.outcome.control, **CONTROL}))
        return engine_extras(record_with({}, {}))

    monkeypatch.setattr(ClaimRecord, "extras", property(extras))
    project = make(tmp_path)
    build_site(project)
    return project


def test_claim_page_and_card_show_baselines_balance_role_and_waiver(site_with_extras):
    page = site_file(site_with_extras, "claims/probe-accuracy.html")
    assert "Strongest baseline" in page and "answer log-probability" in page
    assert "does not beat the strongest baseline" in page
    assert "<caption>Balance the control reached on what it is matched on</caption>" in page
    assert "activity decile" in page and "positive control: to be detected" in page
    assert "A waived headline" in page and "kept for the record" in page
    index = site_file(site_with_extras, "index.html")
    card = index.split('<h3><a href="claims/probe-accuracy.html">')[1].split("</article>")[0]
    assert "badge-waived" in card and "Waived: the baseline matches it" in card
    other = site_file(site_with_extras, "claims/steering-slope.html")
    assert "Strongest baseline" not in other and "Balance the control" not in other and "waived" not in other


def test_a_null_judged_on_its_metric_leads_with_its_metric(tmp_path):
    project = make(tmp_path)
    build_site(project)  # probe-chance: a null on its own metric (chance_gap)
    from site_build.common.records import gather

    record = gather(project).get("probe-chance")
    assert judged(record) is None and record.lead.field == "chance_gap" and record.lead.is_metric
