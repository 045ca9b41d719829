"""Commit the small blobs of the committed results, so that a fresh checkout (a new machine, CI)
reuses them instead of rerunning the experiments that made them.

    .venv/bin/python scripts/keep_blobs.py [--max-mb 8]

Every result under artifacts/ lists its large files by sha256 (`files`); each one in the local
blob cache and at most --max-mb is written gzipped to artifacts/blobs/<sha[:2]>/<sha><suffix>.gz
(the store restores it into the cache, checking the sha, when it is missing there). Prints what it
kept and what it left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claims.project import Project  # noqa: E402
from claims.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-mb", type=float, default=8.0)
    args = parser.parse_args()
    project = Project.discover()
    store = Store(project)
    kept = missing = large = 0
    for experiment, config_hash in store.artifact_nodes():
        try:
            files = json.loads((project.artifacts_dir / experiment / f"{config_hash}.json").read_text()).get("files") or {}
        except (OSError, ValueError):
            continue
        for name, sha in files.items():
            path = store.verified_blob(sha)
            if path is None:
                missing += 1
            elif path.stat().st_size > args.max_mb * 2**20:
                large += 1
                print(f"left out {experiment}/{name}: {path.stat().st_size / 2**20:.1f} MB")
            else:
                store.keep_blob(sha)
                kept += 1
    print(f"kept {kept} blobs under artifacts/blobs; {large} over {args.max_mb} MB; {missing} not in this cache")


if __name__ == "__main__":
    main()
