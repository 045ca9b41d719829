"""Cold versus warm site builds on the sample project (site_build.sample): rendering time of each.

    .venv/bin/python scripts/bench_site.py [--runs 3]

cold      an empty build/site: every page, chart, source page and the export is rendered
          (the first cold run also loads Jinja, Altair and vl-convert; printed on its own)
no-op     nothing changed: every output is found unchanged in the manifest
warm      one content file changed (content/story.md): only its page renders again
Times are for rendering (site_build.common.outputs.Stats.render_s); reading the claims (verify without
running anything, reading results and sidecars) is printed beside them. Runs in a temp dir with
its own $CLAIMS_CACHE; the median of --runs is printed.
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
    args = parser.parse_args()
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
