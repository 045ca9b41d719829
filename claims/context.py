"""What an experiment's run(config, ctx) is given: seeded RNG, cache, progress, upstream results,
file outputs, checkpoints for resuming, and a place to record fingerprints (generation settings)."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from claims.errors import ExperimentError
from claims.node import Node
from claims.progress import log, progress
from claims.provenance import sha256_bytes
from claims.result import Result
from claims.store import Store, atomic_write_json, temp_file

T = TypeVar("T")


class Upstream:
    """A finished upstream result, with access to its large files in the blob cache."""

    def __init__(self, name: str, node: Node, result: Result, store: Store, files: bool = True):
        self.name, self.node, self.result, self._store = name, node, result, store
        self._files = files  # False: an edge the experiment declared ROWS_ONLY (its files were never made sure of)

    def file(self, name: str) -> Path:
        if not self._files:
            raise ExperimentError(f"upstream {self.name!r} ({self.node.label}) is declared ROWS_ONLY: its result and "
                                  f"per-item rows can be read, not its file {name!r} (drop it from ROWS_ONLY to read it)")
        sha = self.result.files.get(name)
        if sha is None:
            raise ExperimentError(f"upstream {self.name!r} ({self.node.label}) has no file {name!r}")
        path = self._store.verified_blob(sha)
        if path is None:
            if self._store.blob_problem(sha) == "corrupt":
                raise ExperimentError(f"upstream {self.name!r} file {name!r} is corrupt in the blob cache (its bytes "
                                      f"no longer match sha256 {sha[:12]}): run verify again to rebuild it")
            raise ExperimentError(f"upstream {self.name!r} file {name!r} is not in the local cache")
        return path

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.file(name), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def items(self, name: str) -> list[dict[str, Any]]:
        """The upstream's committed per-item rows `name` (its ctx.save_items), as a reader gets them."""
        from claims import items

        stored = self._store.read(self.node)
        meta = ((stored.sidecar if stored else None) or {}).get("items", {}).get(name)
        if meta is None:
            raise ExperimentError(f"upstream {self.name!r} ({self.node.label}) commits no per-item rows {name!r}")
        data = (self._store.project.root / meta["path"]).read_bytes()
        if sha256_bytes(data) != meta.get("sha256"):
            raise ExperimentError(f"upstream {self.name!r}: {meta['path']} no longer matches its sidecar's sha256")
        return items.decode(data, meta["path"])


class Checkpoint:
    """Partial work of one run, keyed by the run's cache key: a mapping of step -> JSON or arrays.

        ckpt = ctx.checkpoint("generations")
        for i, batch in enumerate(batches):
            if i not in ckpt:
                ckpt[i] = do_work(batch)     # saved atomically; survives an interruption
            out.extend(ckpt[i])
    """

    def __init__(self, folder: Path, label: str = ""):
        self.folder = folder
        self.label = label

    def _path(self, step: Any, suffix: str) -> Path:
        return self.folder / f"{step}{suffix}"

    def __contains__(self, step: Any) -> bool:
        return self._path(step, ".json").exists() or self._path(step, ".npz").exists()

    def __getitem__(self, step: Any) -> Any:
        path = self._path(step, ".npz") if self._path(step, ".npz").exists() else self._path(step, ".json")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    return {k: data[k] for k in data.files}
            return json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ExperimentError(
                f"{self.label}: checkpoint step {step!r} is corrupt ({path.name}: {type(exc).__name__}); "
                "run verify --rerun to discard this node's checkpoints") from None

    def __setitem__(self, step: Any, value: Any) -> None:
        if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            fd, tmp = temp_file(self.folder, f"{step}.npz")
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **value)
            os.replace(tmp, self._path(step, ".npz"))
        else:
            atomic_write_json(self._path(step, ".json"), value)


class Context:
    def __init__(self, node: Node, key: str, store: Store, upstream: dict[str, Upstream]):
        self.node = node
        self.key = key
        self.config = node.config
        self.seed = int(self.config.get("seed", 0))
        self.rng = np.random.default_rng(self.seed)
        self.cache_dir = store.cache
        self._store = store
        self._upstream = upstream
        self.files: dict[str, str] = {}
        self.items: dict[str, bytes] = {}  # name -> gzipped JSON lines, committed beside the result
        self.item_rows: dict[str, list[dict[str, Any]]] = {}
        self.recorded: dict[str, Any] = {}

    # ---- reading ----------------------------------------------------------------------------
    def upstream(self, name: str) -> Upstream:
        if name not in self._upstream:
            raise ExperimentError(
                f"{self.node.label}: no upstream named {name!r} (requires() declares: {sorted(self._upstream)})"
            )
        return self._upstream[name]

    # ---- writing large outputs ----------------------------------------------------------------
    def save_arrays(self, name: str, **arrays: np.ndarray) -> str:
        """Store arrays as one .npz in the blob cache; the result lists it under `files`."""
        fd, tmp = temp_file(self._store.cache, f"{name}.npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return self._register(name, Path(tmp), ".npz")

    def save_json(self, name: str, data: Any) -> str:
        """Store a JSON document (e.g. all generations) in the blob cache."""
        fd, tmp = temp_file(self._store.cache, f"{name}.json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, sort_keys=True)
        return self._register(name, Path(tmp), ".json")

    def save_items(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Commit the per-item rows an estimate is computed from (ids, labels, scores, outcomes,
        generated text) beside the result, so that `claims recompute` can rebuild it (claims/items.py)."""
        from claims.items import decode, encode

        if name in self.items:
            raise ExperimentError(f"{self.node.label}: items {name!r} saved twice")
        data = encode(name, rows)
        self.items[name] = data
        self.item_rows[name] = decode(data, name)  # what a reader will get back, types included

    def _register(self, name: str, path: Path, suffix: str) -> str:
        if name in self.files:
            path.unlink(missing_ok=True)
            raise ExperimentError(f"{self.node.label}: file {name!r} saved twice")
        sha = self._store.put_blob(path, suffix)
        self.files[name] = sha
        return sha

    # ---- long work -------------------------------------------------------------------------
    def progress(self, iterable: Iterable[T], total: int | None = None, desc: str | None = None) -> Iterator[T]:
        return progress(iterable, total=total, desc=desc or self.node.experiment.rpartition(".")[2])

    def checkpoint(self, name: str) -> Checkpoint:
        return Checkpoint(self._store.checkpoint_dir(self.key) / name, self.node.label)

    def unit_results(self) -> list[Any]:
        """A sweep's unit outputs in units() order, computing any that are missing (see
        claims/experiment.py: units() and run_unit())."""
        from claims.units import results

        return results(self)

    def record(self, **fingerprints: Any) -> None:
        """Record settings a reader must see in provenance (e.g. generation settings)."""
        json.dumps(fingerprints)  # must be plain data
        self.recorded.update(fingerprints)

    def log(self, message: str) -> None:
        log(f"  {self.node.experiment}: {message}")
