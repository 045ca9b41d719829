"""A small sample claims project: one cheap experiment, a few claims, content citing them.

Used by the site and paper tests and by scripts/bench_site.py, and handy for a first look at the
templates:

    from site_build.sample import create
    project = create(Path("/tmp/sample"))      # writes the files and runs the tiny experiments
    python -m claims --project /tmp/sample build-site

Its experiment draws from numpy with the seed the engine gives it, in milliseconds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from claims.project import Project

PROBE = '''
from pydantic import BaseModel, ConfigDict

from claims import Estimate, Result


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shift: float = 0.3
    n: int = 400
    seed: int = 0


def _est(values, unit):
    import numpy as np
    x = np.asarray(values, dtype=float)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    return Estimate(value=float(x.mean()), ci=(float(x.mean() - half), float(x.mean() + half)), level=0.95,
                    n=len(x), method="analytic-normal", unit=unit)


def recompute(items, config):
    """The estimates from the per-item rows alone (`claims recompute` calls this too)."""
    import numpy as np
    correct = np.array([r["correct"] for r in items["questions"]], dtype=float)
    by_length = np.array([r["length_baseline_correct"] for r in items["questions"]], dtype=float)
    return {"accuracy": _est(correct, "questions"), "chance_gap": _est(correct - 0.5, "questions"),
            "gain_over_length": _est(correct - by_length, "questions"),
            "slope": _est([r["slope"] for r in items["seeds"]], "seeds")}


def run(config, ctx):
    shift = config["shift"]
    correct = ctx.rng.random(config["n"]) < 0.5 + shift
    slopes = ctx.rng.normal(10 * shift, 2.0, size=50)
    sweep = []
    for alpha in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        v = 0.4 + shift * (alpha - 1) / 3
        sweep.append({"alpha": alpha, "value": v, "ci_low": v - 0.04, "ci_high": v + 0.04})
    methods = [
        {"method": "H-neurons", "detection": 0.5 + shift, "detection_ci_low": 0.45 + shift,
         "detection_ci_high": 0.55 + shift, "steering": 2 * shift, "steering_ci_low": 0.0,
         "steering_ci_high": 4 * shift},
        {"method": "DiffMean", "detection": 0.55 + shift / 2, "detection_ci_low": 0.5,
         "detection_ci_high": 0.6 + shift / 2, "steering": 6 * shift, "steering_ci_low": 4 * shift,
         "steering_ci_high": 8 * shift},
    ]
    # drawn after the numbers above, so that adding them moved none of those
    draws = [float(x) for x in ctx.rng.normal(0.5 + shift / 3, 0.03, size=60)]
    if shift == 0:
        draws[3] = draws[17] = None  # two draws that broke the model: shown, counted against the claim
    rank_p = (1 + sum(d is None or d >= 0.7 for d in draws)) / (1 + len(draws))
    per_split = [float(x) for x in ctx.rng.normal(0.5 + shift, 0.03, size=5)]
    sweeps = {f"seed {k}": [{"alpha": p["alpha"], "value": p["value"] + float(ctx.rng.normal(0, 0.02))}
                            for p in sweep] for k in range(4)}
    by_length = ctx.rng.random(config["n"]) < 0.5  # a trivial baseline scored on the same questions
    ctx.save_items("questions", [{"id": i, "correct": bool(c), "length_baseline_correct": bool(b)}
                                 for i, (c, b) in enumerate(zip(correct, by_length))])
    ctx.save_items("seeds", [{"seed": k, "slope": float(x)} for k, x in enumerate(slopes)])
    return Result(estimates=recompute(ctx.item_rows, config),
                  values={"sweep": sweep, "sweep_label": "compliance rate", "methods": methods,
                          "set_accuracy": draws, "rank_p": rank_p, "n_draws": len(draws), "balance": {"size": 0.0},
                          "per_split_accuracy": per_split, "sweeps": sweeps})
'''

SPECS = {
"probe-accuracy": """
id: probe-accuracy
title: Probe accuracy
statement: >-
  A sparse probe separates hallucinated from faithful answers with {accuracy:.1%} held-out accuracy
  ({level:.0%} CI {accuracy_ci[0]:.1%} to {accuracy_ci[1]:.1%}, n = {accuracy_n}).
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.5"
control:
  experiment: fx_sample_probe
  config: {shift: 0.0}
  description: The same probe on randomly chosen neurons of the same number.
  assert: "accuracy_ci[0] > control.accuracy_ci[1]"
baselines:
  - {label: answer length, difference: gain_over_length}
headline: true
section: detection
""",
"steering-slope": """
id: steering-slope
title: Steering slope
statement: Scaling the selected neurons moves compliance by {slope:.2f} pp per alpha (CI {slope_ci[0]:.2f} to {slope_ci[1]:.2f}).
experiment: fx_sample_probe
config: {shift: 0.3}
metric: slope
uncertainty: {method: analytic, level: 0.95}
assert: "slope_ci[0] > 0"
control:
  experiment: fx_sample_probe
  config: {shift: 0.0}
  description: Random neurons scaled alike.
  assert: "slope_ci[0] > control.slope_ci[1]"
why_no_baseline: a steering slope has no trivial predictor; its control is the random-neuron sweep
figure: alpha_sweep
headline: true
section: steering
""",
"detect-vs-steer": """
id: detect-vs-steer
title: Detection is not steering
statement: The best detector reaches {accuracy:.1%} accuracy.
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy > 0.5"
control: none
why_no_control: a descriptive comparison across methods, each with its own control
figure: detection_vs_steering
section: steering
""",
"probe-vs-random": """
id: probe-vs-random
title: Probe against random neuron sets
statement: The probe's accuracy of {accuracy:.1%} ranks above the random sets (rank p = {control.rank_p:.3f}).
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.5"
control:
  experiment: fx_sample_probe
  config: {shift: 0.0}
  description: Random neuron sets of the same size, one probe each.
  assert: "control.rank_p <= 0.05"
  rank: {draws: n_draws, sided: one, alpha: 0.05}
  matched_on: {size: 0.1}
axis: {label: Held-out accuracy}
figure:
  - {kind: rank, draws: control.set_accuracy, label: random neuron sets, value_label: the probe}
  - kind: intervals
    rows: [{field: accuracy, label: probe, points: per_split_accuracy}, {field: control.accuracy, label: random sets}]
    reference: [{value: 0.5, label: chance}]
caption: The probe's line stands clear of every random set; {control.rank_p:.3f} is its rank p.
section: detection
""",
"probe-chance": """
id: probe-chance
title: Shuffled labels stay at chance
statement: On shuffled labels the probe is {chance_gap:+.3f} from chance ({chance_gap_ci[0]:+.3f} to {chance_gap_ci[1]:+.3f}).
experiment: fx_sample_probe
config: {shift: 0.0}
metric: chance_gap
uncertainty: {method: analytic, level: 0.95}
assert: "abs(chance_gap) < 0.1"
range: [-0.5, 0.5]
expect: null
power:
  margin: 0.1
  why: A tenth of accuracy off chance would be a leak worth reporting.
control: none
why_no_control: this claim is itself a negative control
axis: {label: Distance from chance, unit: accuracy, format: "+.2f"}
section: detection
""",
"gpu-scale": """
id: gpu-scale
title: Paper-scale replication
statement: The probe replicates on the paper profile.
status: blocked
reason: needs the paper profile (GPU and hub access)
experiment: fx_sample_probe
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
control: none
why_no_control: blocked
""",
}

BIBTEX = """
@article{gao2025hneurons,
  author = {Gao, Cheng and Chen, Huimin and Xiao, Chaojun and Chen, Zhiyi and Liu, Zhiyuan and Sun, Maosong},
  title = {{H-Neurons}: On the Existence, Impact, and Origin of Hallucination-Associated Neurons in {LLMs}},
  journal = {arXiv preprint arXiv:2512.01797},
  year = {2025},
  url = {https://arxiv.org/abs/2512.01797}
}

@inproceedings{li2023iti,
  author = {Li, Kenneth and Patel, Oam and Vi{\\'e}gas, Fernanda and Pfister, Hanspeter and Wattenberg, Martin},
  title = {Inference-Time Intervention: Eliciting Truthful Answers from a Language Model},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2023},
  url = {https://arxiv.org/abs/2306.03341}
}
"""

CONTENT = {
"content/front.md": """
---
title: "A sample paper: detectors and levers"
short_title: Sample study
subtitle: Every number bound to a verified artifact.
authors:
  - {name: Ada Sample, affiliation: Sample Institute}
  - {name: Bo Example}
keywords: [interpretability, hallucination]
---
We test a probe and a lever. {{ claim("probe-accuracy") }} The method follows [@gao2025hneurons].
""",
"content/references.bib": BIBTEX,
"content/index.md": """
# Sample study

The headline: {{ claim("probe-accuracy") }}

Steering: {{ cite("steering-slope") }}. See the [story](story.md) and the [methods](methods.md).
""",
"content/story.md": """
# Story

Sparse probes on feed-forward neurons detect hallucinations [@gao2025hneurons], and heads can steer
them [@li2023iti; @gao2025hneurons]. The probe reaches {{ claim("probe-accuracy").value | pct }} ({{ claim("probe-accuracy") | ci }}), against
{{ claim("probe-accuracy").control.value | pct }} for random neurons.

{{ figure("steering-slope") }}

| Quantity | Value |
| --- | --- |
| accuracy | {{ claim("probe-accuracy").value | pct }} |
| n | {{ claim("probe-accuracy").n }} |

A footnote.[^note]

[^note]: Every number here is a claim reference.
""",
"content/methods.md": """
# Methods

Run `python -m claims verify --only probe-accuracy` to check one claim. {{ claim("detect-vs-steer") }}
""",
"content/paper/01-introduction.md": """
## Introduction

{{ claim("probe-accuracy") }} Steering follows [@li2023iti].
""",
"content/paper/02-results.md": """
## Results

{{ figure("probe-accuracy") }}

{{ figure("detect-vs-steer") }}

Steering moves compliance by {{ claim("steering-slope").value | num(2) }} pp per alpha.[^s]

[^s]: With {{ claim("steering-slope").n }} seeds.
""",
}


def write(root: Path, specs: dict[str, str] | None = None, content: dict[str, str] | None = None,
          probe: str = PROBE) -> None:
    """Write the sample project (optionally with other specs, content or experiment code) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[tool.claims]\nspecs = "specs"\nartifacts = "artifacts"\ncontent = "content"\n')
    (root / "fx_sample_probe.py").write_text(textwrap.dedent(probe).lstrip())
    for claim_id, text in (SPECS if specs is None else specs).items():
        _write(root / "specs" / f"{claim_id}.yaml", text)
    for rel, text in (CONTENT if content is None else content).items():
        _write(root / rel, text)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def create(root: Path, specs: dict[str, str] | None = None, content: dict[str, str] | None = None,
           probe: str = PROBE) -> Project:
    """Write the sample project and run its experiments, so that its claims are verified."""
    from claims.spec import load_specs
    from claims.verify import verify

    write(root, specs, content, probe)
    project = Project.at(root)
    project.activate()
    verify(project, load_specs(project.specs_dir, project.root), run=True)
    return project
