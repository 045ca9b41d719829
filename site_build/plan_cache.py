"""Chart plans kept on disk: a claim's Vega-Lite panels, drawn again only when what they show changed.

Drawing a claim's panels with Altair (site_build.common.figures.plan) takes a few hundred
milliseconds per claim, most of it Altair validating its own objects: seconds for a study, on every
build, before the outputs manifest can tell that nothing changed. A plan is a function of the
claim's page data (ClaimRecord.data(): outcome, spec, results, sidecars) and of the code that
draws it, so it is kept in `$CLAIMS_CACHE/site/plans/<key>.json`, keyed by the sha256 of that data,
the sources of the engine and the site builder, and the Altair version. A chart whose data is
missing (FigureDataError) is not cached: it is drawn, and warned about, every time.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from claims.project import Project
from claims.provenance import canonical_json, file_digest, sha256_text


def cached_plan(project: Project, record: Any) -> tuple[list[Any], str]:
    """`plan(record)`: the claim's panels as Vega-Lite JSON, and its caption, from the cache if drawn before."""
    from site_build.common.figures import Drawn, plan

    key = sha256_text(canonical_json({"code": code_digest(), "altair": importlib.metadata.version("altair"),
                                      "record": record.data()}))
    path = project.cache_dir / "site" / "plans" / f"{key}.json"
    try:
        data = json.loads(path.read_text())
        return [Drawn(**d) for d in data["drawn"]], data["caption"]
    except (OSError, ValueError, TypeError, KeyError):  # absent or unreadable: draw it
        pass
    drawn, caption = plan(record)
    try:
        from claims.store import atomic_write_json

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"drawn": [asdict(d) for d in drawn], "caption": caption})
    except OSError:  # a read-only cache only costs the next build the drawing
        pass
    return drawn, caption


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The sha256 over the Python sources of the engine and the site builder, once per process
    (`claims serve` clears it before each rebuild)."""
    import claims
    import site_build

    return _digest(tuple(str(Path(p.__file__).parent) for p in (claims, site_build)))


def _digest(folders: tuple[str, ...]) -> str:
    rows = []
    for folder in map(Path, folders):
        for f in sorted(folder.rglob("*.py")):
            rows.append([f"{folder.name}/{f.relative_to(folder).as_posix()}", file_digest(f)])
    return sha256_text(canonical_json(rows))
