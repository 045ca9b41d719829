"""The detection study end to end on the tiny model: sampling (with planted answers), labels,
splits, CETT read in shared-prefix passes, L1 / univariate / dense / shuffled-label probes, matched
random sets, trivial baselines and the judge audit, through the engine's runner."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from claims.experiment import make_node
from claims.project import Project
from claims.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("capital", "element_symbol", "city_country", "currency")
BASE = {"profile": "tiny", "k": 3, "max_new_tokens": 4, "split_seeds": [0, 1], "forward_batch_size": 8,
        "cv_folds": 2, "n_jobs": 1, "Cs": [0.1, 1.0], "l2_Cs": [0.1, 1.0]}


def planted(item) -> str:
    """Half the items (by a hash of their id) are answered right, the rest wrong or empty."""
    h = int(hashlib.sha256(item.id.encode()).hexdigest(), 16)
    return item.answer if h % 2 else ("" if h % 7 == 0 else "Atlantis")


@pytest.fixture
def project(tmp_path, monkeypatch):
    from pipeline.data import build_embedded
    from pipeline.hneurons import questions
    from pipeline.models import Generation

    items = [it for f in FAMILIES for it in [i for i in build_embedded() if i.family == f][:24]]
    by_question = {it.question: it for it in items}
    monkeypatch.setattr(questions, "load_items", lambda profile, max_questions, seed: items)

    def generate(lm, prompts, max_new_tokens, *, do_sample=False, num_samples=1, **kwargs):
        out = []
        for p, prompt in enumerate(prompts):
            item = by_question[prompt.rsplit("Q: ", 1)[1].removesuffix("\nA:")]
            for s in range(num_samples):
                out.append(Generation(text=planted(item), token_ids=(1,), finish_reason="stop", prompt_index=p,
                                      sample_index=s))
        return out

    import pipeline.models

    monkeypatch.setattr(pipeline.models, "generate", generate)
    project = replace(Project.at(ROOT), artifacts_dir=tmp_path / "artifacts", build_dir=tmp_path / "build")
    project.activate()
    return project


def run(project, experiment, **config):
    """Run a node with the BASE settings its Config knows about (each step's Config is its own)."""
    import importlib

    fields = importlib.import_module(experiment).Config.model_fields
    chosen = {k: v for k, v in {**BASE, **config}.items() if k in fields}
    return Runner(project).ensure(make_node(experiment, chosen, "test")).result


def test_the_detection_chain_runs_on_the_tiny_model(project):
    stats = run(project, "pipeline.hneurons.label_stats")
    assert stats.values["n_questions"] == 96 and stats.values["n_labelled"] == stats.values["n_faithful"] + \
        stats.values["n_hallucinated"] > 20
    assert stats.values["n_format_failures"] > 0  # the empty answers
    split = run(project, "pipeline.hneurons.split")
    assert [s["seed"] for s in split.values["splits"]] == [0, 1]
    acts = run(project, "pipeline.hneurons.activations")
    assert acts.values["n_questions"] == stats.values["n_labelled"]
    probe = run(project, "pipeline.hneurons.probe")
    assert 0 <= probe.estimates["auroc"].value <= 1 and len(probe.values["splits"]) == 2
    assert all(n["weight"] > 0 for n in probe.values["h_neurons"])
    assert probe.values["n_h_neurons"] + probe.values["n_negative_neurons"] == len(probe.values["neurons"])
    for variant in ("greedy", "prompt_end", "question"):
        assert run(project, "pipeline.hneurons.probe", variant=variant).estimates["auroc"].n > 0
    uni = run(project, "pipeline.hneurons.probe", selection="univariate")
    assert uni.values["n_neurons_per_split"] == [max(1, n) for n in probe.values["n_neurons_per_split"]]
    assert run(project, "pipeline.hneurons.probe", selection="dense").values["n_neurons"] == acts.values["n_neurons"]
    shuffled = run(project, "pipeline.hneurons.probe", shuffle_labels=True)
    assert "auroc_minus_chance" in shuffled.estimates
    rand = run(project, "pipeline.hneurons.probe_random", n_sets=5)
    assert len(rand.values["set_auroc"]) == 5 and 1 / 6 <= rand.values["rank_p"] <= 1
    assert rand.values["balance"]["layer"] == 0.0  # matched one for one on layer: no difference at all
    assert set(rand.values["balance"]) == {"layer", "activity"}
    base = run(project, "pipeline.hneurons.baselines")
    assert base.values["strongest"] in base.values["baselines"]
    assert base.estimates["gain_over_strongest"].value == pytest.approx(
        base.estimates["probe_auroc"].value - base.estimates["strongest_auroc"].value)


def test_the_judge_audit_reads_hand_labels_and_refuses_a_stale_sample(project, tmp_path):
    runner = Runner(project)
    sample = runner.ensure(make_node("pipeline.hneurons.sample", {"profile": "tiny", "k": 3, "max_new_tokens": 4},
                                     "test"))
    rows = json.loads(runner.store.verified_blob(sample.result.files["labels"]).read_text())
    audit = tmp_path / "audit.jsonl"
    entries = []
    for r in rows[:30]:
        hand = r["outcomes"][0] if len(entries) % 10 else ("wrong" if r["outcomes"][0] != "wrong" else "correct")
        entries.append({"id": r["id"], "sample": 0, "question": "", "gold": r["gold"], "answer": r["samples"][0],
                        "auto": r["outcomes"][0], "hand": hand})
    audit.write_text("".join(json.dumps(e) + "\n" for e in entries))
    # the blind pass: a sheet without the judge's outcome, labelled apart (here: the hand labels)
    from claims import audit as blind_audit

    keyed = [{**e, "key": f"{e['id']}#{e['sample']}"} for e in entries]
    sheet, key = blind_audit.draw(keyed, id_field="key", show=["question", "gold", "answer"], hide=["auto", "hand"],
                                  n=len(keyed))
    folder = tmp_path / "blind"
    blind_audit.write(folder, sheet, key, hide=["auto", "hand"], strata=[], seed=0)
    assert "auto" not in (folder / "sheet.csv").read_text().splitlines()[0]
    by_key = {e["key"]: e["hand"] for e in keyed}
    (folder / "labels.csv").write_text("item,label,note\n" + "".join(f"{k['item']},{by_key[k['id']]},\n" for k in key))
    result = run(project, "pipeline.hneurons.audit", audit_file=str(audit), blind_dir=str(folder))
    assert result.values["n_audited"] == 30 and result.values["n_disagree"] == 3
    assert result.estimates["agreement"].value == pytest.approx(0.9)
    assert result.values["blind"] is True and result.values["unique_items"] == 30
    entries[5]["answer"] = "not what the model said"
    audit.write_text("".join(json.dumps(e) + "\n" for e in entries))
    with pytest.raises(Exception, match="the audit is stale: 1 of 30 audited answers"):
        run(project, "pipeline.hneurons.audit", audit_file=str(audit), blind_dir=str(folder))


def test_balance_is_the_standardized_mean_difference():
    from pipeline.hneurons.probe_random import smd

    assert smd(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert smd(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])) == pytest.approx(1.0)
    assert smd(np.array([2.0, 2.0]), np.array([2.0, 2.0, 2.0])) == 0.0


def test_matched_random_sets_share_layer_and_activity_bin():
    from pipeline.hneurons.probing import activity_bins, matched_random_set

    rng = np.random.default_rng(0)
    d_ffn, n_layers = 100, 3
    activity = rng.gamma(2.0, 1.0, size=n_layers * d_ffn)
    bins = activity_bins(activity, d_ffn, 10)
    chosen = np.array([5, 150, 151, 299])
    for _ in range(20):
        drawn = matched_random_set(chosen, bins, d_ffn, rng)
        assert len(set(drawn.tolist())) == 4 and not set(drawn.tolist()) & set(chosen.tolist())
        assert (drawn // d_ffn == chosen // d_ffn).all() and (bins[drawn] == bins[chosen]).all()
