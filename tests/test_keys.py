"""Cache keys follow what an experiment's code imports: its packages, not a fixed list."""

from __future__ import annotations

import json

from claims import provenance as prov
from claims.runner import Runner
from claims.spec import load_specs
from claims.store import sidecar_integrity
from claims.verify import verify


def _check(fx, **kw):
    project = fx.project
    outcomes, runner = verify(project, load_specs(project.specs_dir, project.root), **kw)
    return {o.id: o for o in outcomes}, runner


def _versions(monkeypatch, **changed):
    """Pretend some installed packages have other versions (names with '_' for '-')."""
    real = prov.package_versions
    changed = {k.replace("_", "-"): v for k, v in changed.items()}
    monkeypatch.setattr(prov, "package_versions",
                        lambda names: {n: changed.get(n, v) for n, v in real(names).items()})


def test_imported_packages_follow_project_imports(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "__init__.py").write_text("")
    (tmp_path / "mine" / "exp.py").write_text(
        "import json\nimport numpy as np\nfrom . import helper\nfrom claims import Result\n"
        "def run(config, ctx):\n    import yaml\n")
    (tmp_path / "mine" / "helper.py").write_text("from sklearn.linear_model import LogisticRegression\n")
    (tmp_path / "mine" / "unused.py").write_text("import torch\n")
    assert prov.imported_packages("mine.exp", tmp_path) == ("numpy", "pyyaml", "scikit-learn")


def test_coin_flip_key_holds_numpy_not_torch(mean_project, monkeypatch):
    fx = mean_project
    outcomes, _ = _check(fx)
    assert outcomes["mean-shift"].status == "verified"
    sidecar = json.loads(next((fx.root / "artifacts" / "fx_mean").glob("*.provenance.json")).read_text())
    assert sorted(sidecar["key_material"]["packages"]) == ["numpy", "pydantic"]
    assert sidecar["key_material"]["engine"] == 3
    _versions(monkeypatch, torch="99.0", transformers="99.0", sae_lens="99.0")
    outcomes, runner = _check(fx, run=False)
    assert outcomes["mean-shift"].status == "verified" and not runner.ran
    _versions(monkeypatch, numpy="99.0")
    outcomes, _ = _check(fx, run=False)
    assert outcomes["mean-shift"].status == "stale"
    assert "packages changed: numpy" in " ".join(outcomes["mean-shift"].problems)


def _rekey_as_rule_2(fx, node_dir):
    """Rewrite a stored sidecar as key rule 2 wrote it: every key held the fixed package list."""
    for path in node_dir.glob("*.provenance.json"):
        sidecar = json.loads(path.read_text())
        material = {**sidecar["key_material"], "engine": 2,
                    "packages": prov.package_versions(prov.LEGACY_KEY_PACKAGES)}
        sidecar.update(key_material=material, key=prov.cache_key(material))
        sidecar["integrity"] = sidecar_integrity(sidecar)
        path.write_text(json.dumps(sidecar))


def test_results_keyed_under_rule_2_stay_fresh_while_that_key_holds(mean_project, monkeypatch):
    fx = mean_project
    _check(fx)
    _rekey_as_rule_2(fx, fx.root / "artifacts" / "fx_mean")
    outcomes, runner = _check(fx, run=False)
    assert outcomes["mean-shift"].status == "verified", outcomes["mean-shift"].problems
    # under rule 2 torch was in every key: a torch upgrade makes those results stale, saying so
    _versions(monkeypatch, torch="99.0")
    state = Runner(fx.project).assess(next(iter(runner._states)))
    assert state.state == "stale" and state.reason == "packages changed: torch"
    outcomes, runner = _check(fx)  # a rerun writes rule-3 keys, which do not hold torch
    assert outcomes["mean-shift"].status == "verified" and runner.ran
    sidecar = json.loads(next((fx.root / "artifacts" / "fx_mean").glob("*.provenance.json")).read_text())
    assert sidecar["key_material"]["engine"] == 3 and "torch" not in sidecar["key_material"]["packages"]
