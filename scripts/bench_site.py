"""Cold versus warm site builds on the sample project (site_build.sample): rendering time of each.

    .venv/bin/python scripts/bench_site.py [--runs 3]

cold      an empty build/site: every page, chart, source page and the export is rendered
          (the first cold run also loads Jinja, Altair and vl-convert; printed on its own)
no-op     nothing changed: every output is found unchanged in the manifest
warm      one content file changed (content/story.md): only its page renders again
Times are for rendering (site_build.common.outputs.Stats.render_s); reading the claims (verify without
running anything, reading results and sidecars) is printed beside them. Runs in a temp dir with
its own $CLAIMS_CACHE; the median of --runs is printed.

Then, on this repository, the wall time of whole commands as a user runs them (targets: cold
status under 10 s, warm build-site under 5 s):
cold status      `python -m claims status` in a new process with an empty cache (no criterion
                 history, import map or chart plans kept; the dequantized model is shared through
                 $CLAIMS_MODEL_CACHE, since making it is a one-time minutes-long setup step)
warm build-site  `python -m claims build-site` run a second time with nothing changed
(--no-repo skips these.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement (median shown)")
    parser.add_argument("--no-repo", action="store_true", help="skip the commands timed on this repository")
    args = parser.parse_args()
    environ = dict(os.environ)  # the sample sets its own cache
    sample(args.runs)
    if not args.no_repo:
        repository(environ)


def repository(environ: dict[str, str]) -> None:
    """Cold `status` and warm `build-site` on this repository, as wall time of the whole command."""
    import subprocess
    import time

    root = Path(__file__).resolve().parents[1]
    from claims.project import Project

    os.environ.clear()
    os.environ.update(environ)
    models = Project.at(root).cache_dir / "models"
    env = {**environ, "PYTHONPATH": str(root), "CLAIMS_MODEL_CACHE": environ.get("CLAIMS_MODEL_CACHE", str(models))}

    def timed(*args: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "claims", *args], cwd=root, env=env, capture_output=True)
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        env["CLAIMS_CACHE"] = tmp
        cold = timed("status")
        timed("build-site")
        warm = timed("build-site")
    print(f"this repository: cold `claims status` {cold:.1f} s (target < 10 s), "
          f"warm `claims build-site` {warm:.1f} s (target < 5 s)")


def sample(runs: int) -> None:
    args = argparse.Namespace(runs=runs)
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        os.environ["CLAIMS_CACHE"] = str(Path(tmp) / "cache")
        os.environ["CLAIMS_SILENT"] = "1"
        from site_build.build import build_site
        from site_build.sample import create

        project = create(Path(tmp) / "sample")
        story = project.content_dir / "story.md"
        rows: dict[str, list[tuple[float, float, int]]] = {"cold": [], "no-op": [], "warm": []}
        for run in range(args.runs):
            shutil.rmtree(project.build_dir / "site", ignore_errors=True)
            for name in ("cold", "no-op", "warm"):
                if name == "warm":
                    story.write_text(story.read_text() + f"\nEdit {'x' * (run + 1)}.\n")
                report = build_site(project)
                rows[name].append((report.stats.render_s, report.gather_s, report.stats.rendered))
        print(f"{'build':<8}{'rendering':>12}{'reading claims':>17}{'outputs rendered':>19}")
        for name, samples in rows.items():
            render = statistics.median(s[0] for s in samples)
            gather = statistics.median(s[1] for s in samples)
            print(f"{name:<8}{render * 1000:>10.1f}ms{gather * 1000:>15.1f}ms{samples[-1][2]:>19}")
        first = rows["cold"][0][0]
        print(f"(the first cold build in a fresh process, loading Jinja, Altair and vl-convert: {first * 1000:.0f} ms)")
        cold, warm = (statistics.median(s[0] for s in rows[k]) for k in ("cold", "warm"))
        print(f"warm rebuild after a one-file content change: {warm * 1000:.1f} ms of rendering "
              f"({cold / max(warm, 1e-9):.0f}x faster than cold)")


if __name__ == "__main__":
    main()
