"""`claims init`: a new project with one verified-ready claim, laid out so it cannot shadow the engine.

    pyproject.toml              [tool.claims]: the project's name and where its parts live
    specs/coin-bias.yaml        one claim: statement, experiment, metric, interval, assertion, control
    <package>/coin.py           its experiment module: run(config, ctx) -> claims.Result
    <package>/__init__.py       the project's code lives in its own package, never in claims/
    content/front.md            title, authors, abstract (the site's and the paper's front matter)
    content/index.md            the site's front page, citing the claim
    content/paper/01-results.md one paper section
    content/references.bib      the bibliography [@key] cites
    .ci/run                     the CI gate: coverage, then verify --no-run (committed results fresh)
    .gitignore                  build/ and caches

and `git init` when the folder is not inside a repository yet: the coverage gate reads each
claim's criterion history from git, so a project's claims are checked from its first commit.

Specs live in `specs/`, not `claims/specs/`: a folder named `claims` at the top of a project would
be imported in place of the engine. The package is named after the folder (`my-study` ->
`my_study`), and a name that would shadow an import the project needs is refused.
"""

from __future__ import annotations

import keyword
import re
import stat
import subprocess
import sys
from pathlib import Path

from claims.errors import ClaimsError

#: Names a project package must not take: the engine's packages and what the scaffold imports.
RESERVED = {"claims", "site_build", "paper_build", "pipeline", "numpy", "scipy", "pydantic", "yaml", "specs",
            "content", "templates", "artifacts", "build", "tests", *sys.stdlib_module_names}

PYPROJECT = '''\
# A claims-verified study: every number a reader sees is a claim in specs/, checked against the
# result of an experiment in {package}/ (python -m claims verify) before the site or the paper
# shows it (python -m claims build-site, build-paper). `python -m claims serve` previews the site.
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["numpy", "scipy", "pydantic"]  # what the experiments import (the engine is installed apart)

[tool.claims]
name = "{name}"             # the default cache is ~/.cache/claims/<name> ($CLAIMS_CACHE overrides it)
specs = "specs"             # one <id>.yaml per claim
artifacts = "artifacts"     # committed results and their provenance sidecars
content = "content"         # Markdown prose: front.md, site pages, paper/ sections
templates = "templates"     # your own Jinja templates here override the engine's (optional)
build = "build"             # build/site/ and build/paper/ (git-ignored)

# Set for every command before an experiment imports a library. To make a result lost from the
# cache rerun bit for bit on another x86 CPU (kernels for another instruction set sum in another
# order), pin torch's and MKL's CPU kernels:
# [tool.claims.environment]
# MKL_CBWR = "AVX2,STRICT"
# ATEN_CPU_CAPABILITY = "avx2"
'''

SPEC = '''\
id: coin-bias
title: The weighted coin favours heads
statement: >-
  The weighted coin lands heads in {{heads:.1%}} of {{heads_n}} flips ({{level:.0%}} CI {{heads_ci[0]:.1%}}
  to {{heads_ci[1]:.1%}}), more often than a fair coin flipped the same number of times.
experiment: {package}.coin
config: {{p_heads: 0.6, flips: 2000}}
metric: heads
uncertainty: {{method: wilson, level: 0.95}}
assert: "heads_ci[0] > 0.5"
control:
  experiment: {package}.coin
  config: {{p_heads: 0.5, flips: 2000}}
  description: A fair coin, flipped as often with the same code.
  assert: "heads_ci[0] > control.heads_ci[1]"
axis: {{label: Share of heads, format: .0%}}
range: [0, 1]
why_no_baseline: The claim is about the coin itself, not a detector; no trivial predictor competes with it.
headline: true
section: results
'''

EXPERIMENT = '''\
"""Flip a coin that lands heads with probability p_heads; report the share of heads.

The engine seeds ctx.rng from the config, so the same config gives the same flips, and keys the
result by this file's source, the config and the versions of the packages imported here. The
flips are committed beside the result (ctx.save_items), so that `python -m claims recompute
coin-bias` rebuilds the estimate from them alone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from claims import Estimate, Result


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p_heads: float = Field(0.5, ge=0, le=1, description="Probability that one flip lands heads.")
    flips: int = Field(1000, gt=0, description="Number of flips.")
    seed: int = Field(0, description="Seed of ctx.rng.")


def recompute(items: dict, config: dict) -> dict[str, Estimate]:
    """The estimates from the per-flip rows alone."""
    from scipy import stats

    flips = items["flips"]
    heads = sum(row["heads"] for row in flips)
    ci = stats.binomtest(heads, len(flips)).proportion_ci(confidence_level=0.95, method="wilson")
    return {{"heads": Estimate(value=heads / len(flips), ci=(float(ci.low), float(ci.high)), level=0.95,
                              n=len(flips), method="wilson", unit="flips")}}


def run(config: dict, ctx) -> Result:
    heads = ctx.rng.random(config["flips"]) < config["p_heads"]           # [flips] True for heads
    rows = [{{"flip": i, "heads": bool(h)}} for i, h in enumerate(heads)]
    ctx.save_items("flips", rows)
    return Result(estimates=recompute({{"flips": rows}}, config), values={{"heads_count": int(heads.sum())}})
'''

FRONT = '''\
---
title: "{title}"
short_title: {title}
authors:
  - {{name: Your Name, affiliation: Your Institute}}
keywords: [claims-verified]
---
What this study finds, in a paragraph. {{{{ claim("coin-bias") }}}}
'''

INDEX = '''\
# {title}

{{{{ claim("coin-bias") }}}}

Every number on these pages comes from a verified claim in `specs/`; the [paper](paper.html) says the same.
'''

PAPER = '''\
## Results

{{{{ claim("coin-bias") }}}}

{{{{ figure("coin-bias") }}}}

The control is a fair coin flipped as often by the same code: it landed heads
{{{{ claim("coin-bias").control.value | pct }}}} of the time.
'''

BIBTEX = '''\
% The works [@key] cites in content/, in BibTeX.
'''

CI = '''\
#!/bin/sh
# The CI gate: every number in content/ comes from a claim and every claim has its control
# (coverage), and every committed result is fresh for this code (verify --no-run: run
# `python -m claims verify` and commit artifacts/ first). Then both builds, strict.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -m claims coverage
"$PYTHON" -m claims verify --no-run
"$PYTHON" -m claims build-paper --strict
"$PYTHON" -m claims build-site --strict
'''

GITIGNORE = '''\
build/
__pycache__/
*.pyc
.cache/
'''


def package_name(name: str) -> str:
    """The project's package name from its folder name: `My Study-2` -> `my_study_2`."""
    package = re.sub(r"\W+", "_", name.lower()).strip("_")
    if not package or package[0].isdigit():
        package = f"study_{package}".rstrip("_")
    return package


def files(name: str, package: str) -> dict[str, str]:
    title = name.replace("-", " ").replace("_", " ").strip().capitalize() or "A claims-verified study"
    return {
        "pyproject.toml": PYPROJECT.format(name=name, package=package),
        "specs/coin-bias.yaml": SPEC.format(package=package),
        f"{package}/__init__.py": f'"""The code of {name}: experiment modules and what they share."""\n',
        f"{package}/coin.py": EXPERIMENT.format(),
        "content/front.md": FRONT.format(title=title),
        "content/index.md": INDEX.format(title=title),
        "content/paper/01-results.md": PAPER.format(),
        "content/references.bib": BIBTEX,
        ".ci/run": CI,
        ".gitignore": GITIGNORE,
    }


def init(target: Path, name: str | None = None, package: str | None = None) -> list[Path]:
    """Write a new project at `target` (created if absent); returns the files written. Refuses a
    folder that already holds any of them, and a package name that would shadow an import."""
    target = target.resolve()
    name = name or target.name
    package = package or package_name(name)
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ClaimsError(f"--package {package!r} is not a Python package name")
    if package in RESERVED:
        raise ClaimsError(f"the project's package cannot be named {package!r}: it would shadow the module of that "
                          "name (pass --package NAME)")
    if target.exists() and not target.is_dir():
        raise ClaimsError(f"{target} is a file, not a folder")
    plan = files(name, package)
    clashes = sorted(rel for rel in plan if (target / rel).exists())
    if clashes:
        raise ClaimsError(f"{target} already has {', '.join(clashes)}: claims init writes a new project and "
                          "overwrites nothing (choose an empty folder)")
    written = []
    for rel, text in plan.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    ci = target / ".ci" / "run"
    ci.chmod(ci.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return written


def git_init(target: Path) -> str:
    """Make `target` a git repository unless it is inside one; what happened, in a few words."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=target, capture_output=True,
                                text=True, timeout=30)
        if inside.returncode == 0 and inside.stdout.strip() == "true":
            return "inside an existing git repository"
        made = subprocess.run(["git", "init", "-q"], cwd=target, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "git not found: install it (coverage reads the claims' history from git)"
    if made.returncode != 0:
        return f"git init failed: {made.stderr.strip()}"
    return "made a git repository"
