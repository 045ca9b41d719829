"""The files one build produces, each keyed by the hash of what it is made from.

`<out>/.manifest.json` maps every output to the key of its inputs (templates, builder code,
content, claim data), the sha256 of its bytes and the warnings its rendering raised. An output
whose key and bytes are unchanged is not rendered again (its warnings are replayed, so --strict
sees them on a warm build too). Everything is rendered in memory first; `commit` then writes
only the changed files (atomically), removes files no longer produced, and writes the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claims.errors import BuildError
from claims.provenance import canonical_json
from claims.store import atomic_write_bytes

MANIFEST = ".manifest.json"
#: What a render function returns: bytes, or (bytes or None, warnings); None means "no file"
#: (e.g. a chart whose data is missing), remembered with its warnings like any other output.
Rendered = bytes | tuple[bytes | None, list[str]]


def key_of(*parts: Any) -> str:
    """The key of an output: sha256 over the canonical JSON of what it is made from."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Output:
    rel: str
    key: str
    data: bytes | None = None  # None: unchanged, left as it is (or absent)
    warnings: list[str] = field(default_factory=list)
    absent: bool = False  # rendering produced no file


@dataclass
class Stats:
    rendered: int = 0
    reused: int = 0
    render_s: float = 0.0  # time spent rendering outputs (not gathering claim data)
    rendered_files: list[str] = field(default_factory=list)


class Outputs:
    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.outputs: dict[str, Output] = {}
        self.stats = Stats()
        self.previous = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        path = self.out_dir / MANIFEST
        try:
            data = json.loads(path.read_text())
            return data["outputs"] if isinstance(data.get("outputs"), dict) else {}
        except (OSError, json.JSONDecodeError, AttributeError, KeyError):
            return {}  # no manifest or a broken one: everything renders again

    def _unchanged(self, rel: str, key: str) -> bool:
        entry = self.previous.get(rel)
        if not entry or entry.get("key") != key:
            return False
        if entry.get("absent"):
            return True
        path = self.out_dir / rel
        try:
            return path.stat().st_size == entry.get("size") and sha256(path.read_bytes()) == entry.get("sha256")
        except OSError:
            return False

    def add(self, rel: str, key: str, render: Callable[[], Rendered]) -> Output:
        """Register an output; render it only when its key or its bytes on disk changed."""
        if rel in self.outputs:
            raise BuildError(f"two pages would be written to {rel}")
        if self._unchanged(rel, key):
            entry = self.previous[rel]
            out = Output(rel, key, None, list(entry.get("warnings", [])), bool(entry.get("absent")))
            self.stats.reused += 1
        else:
            started = time.perf_counter()
            made = render()
            self.stats.render_s += time.perf_counter() - started
            data, warnings = made if isinstance(made, tuple) else (made, [])
            out = Output(rel, key, data, list(warnings), data is None)
            self.stats.rendered += 1
            self.stats.rendered_files.append(rel)
        self.outputs[rel] = out
        return out

    @property
    def warnings(self) -> list[str]:
        seen: dict[str, None] = {}
        for out in self.outputs.values():
            seen.update(dict.fromkeys(out.warnings))
        return list(seen)

    def exists(self, rel: str) -> bool:
        return rel in self.outputs and not self.outputs[rel].absent

    def read(self, rel: str) -> bytes | None:
        """The bytes of an output, rendered now or left on disk; None when it has no file."""
        out = self.outputs.get(rel)
        if out is None or out.absent:
            return None
        return out.data if out.data is not None else (self.out_dir / rel).read_bytes()

    def commit(self) -> None:
        """Write changed outputs, remove files no longer produced, then write the manifest."""
        entries = {}
        for rel, out in sorted(self.outputs.items()):
            if out.absent:
                entries[rel] = {"key": out.key, "absent": True, "warnings": out.warnings}
            elif out.data is not None:
                atomic_write_bytes(self.out_dir / rel, out.data)
                entries[rel] = {"key": out.key, "sha256": sha256(out.data), "size": len(out.data),
                                "warnings": out.warnings}
            else:
                entries[rel] = self.previous[rel]
        self._clean(set(entries))
        manifest = {"format": 1, "outputs": entries}
        atomic_write_bytes(self.out_dir / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())

    def _clean(self, keep: set[str]) -> None:
        for path in sorted(self.out_dir.rglob("*"), reverse=True):
            rel = path.relative_to(self.out_dir).as_posix()
            if path.is_file() and rel not in keep and rel != MANIFEST:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                os.rmdir(path)
