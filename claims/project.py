"""Where a project's specs, artifacts, content, build outputs and cache live."""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from claims.errors import ClaimsError

#: Where results' large files and checkpoints go unless `$CLAIMS_CACHE` or `[tool.claims] cache` say:
#: one folder per project, named by `[tool.claims] name` (else `[project] name`, else the folder).
DEFAULT_CACHE = Path("~/.cache/claims")
#: The `[tool.claims]` settings and what each means (the README's reference is generated from these).
SETTINGS = {
    "name": "The project's name: names its default cache folder, ~/.cache/claims/<name> "
            "(default: [project] name, else the folder's name).",
    "specs": "Folder of claim specs, one <id>.yaml each (default: claims/specs; `claims init` uses specs, "
             "since a top-level claims/ folder could be imported in place of the engine).",
    "artifacts": "Folder of committed results and their provenance sidecars (default: artifacts).",
    "content": "Folder of the prose: front.md, site pages, paper/ sections, references.bib (default: content).",
    "templates": "Folder of Jinja templates and static/ files that override the engine's, name by name "
                 "(default: templates).",
    "build": "Folder the builds write to: site/, paper/, verify.json (default: build).",
    "cache": "Folder for large intermediates, blobs and checkpoints, relative to the project or absolute, "
             "~ expanded (default: ~/.cache/claims/<name>; $CLAIMS_CACHE overrides it).",
    "environment": "Table of environment variables set for every command before it imports a library, "
                   "e.g. { MKL_CBWR = \"AVX2,STRICT\", ATEN_CPU_CAPABILITY = \"avx2\" } to pin the "
                   "CPU kernels, so that a result lost from the cache reruns bit for bit on another x86 CPU "
                   "(kernels for another instruction set sum in another order). Only variables provenance "
                   "records are accepted (MKL_, ATEN_, OMP_, OPENBLAS_, ONEDNN_/DNNL_, NPY_, TORCH_, ...); "
                   "one set in the shell to another value wins, with a warning, and is what the sidecar "
                   "records (default: none).",
}


@dataclass(frozen=True)
class Project:
    """A checkout: settings come from `[tool.claims]` in its pyproject.toml, paths are relative to it."""

    root: Path
    specs_dir: Path
    artifacts_dir: Path
    content_dir: Path
    templates_dir: Path
    build_dir: Path
    cache_dir: Path
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def at(cls, root: Path) -> Project:
        root = root.resolve()
        settings: dict = {}
        pyproject = root / "pyproject.toml"
        data: dict = {}
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ClaimsError(f"{pyproject}: invalid TOML: {exc}") from None
            settings = data.get("tool", {}).get("claims", {})
            unknown = sorted(set(settings) - set(SETTINGS))
            if unknown:
                raise ClaimsError(f"{pyproject}: [tool.claims] has unknown setting(s) {', '.join(unknown)} "
                                  f"(known: {', '.join(SETTINGS)})")
            wrong = next((k for k, v in settings.items()
                          if k != "environment" and (not isinstance(v, str) or not v.strip())), None)
            if wrong:
                raise ClaimsError(f"{pyproject}: [tool.claims] {wrong} must be a non-empty string, "
                                  f"not {settings[wrong]!r}")
            environment = _environment(pyproject, settings.get("environment", {}))
        name = settings.get("name") or data.get("project", {}).get("name") or root.name
        cache = os.environ.get("CLAIMS_CACHE") or settings.get("cache") or str(DEFAULT_CACHE / name)
        return cls(
            root=root,
            specs_dir=root / settings.get("specs", "claims/specs"),
            artifacts_dir=root / settings.get("artifacts", "artifacts"),
            content_dir=root / settings.get("content", "content"),
            templates_dir=root / settings.get("templates", "templates"),
            build_dir=root / settings.get("build", "build"),
            cache_dir=(root / Path(cache).expanduser()).resolve(),
            environment=environment if pyproject.is_file() else {},
        )

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """The nearest directory upward from `start` (default: cwd) with a claims specs folder."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "pyproject.toml").is_file() and (candidate / "claims" / "specs").is_dir():
                return cls.at(candidate)
            pyproject = candidate / "pyproject.toml"
            if pyproject.is_file() and "[tool.claims]" in pyproject.read_text():
                return cls.at(candidate)
        raise ClaimsError(
            f"no claims project found at or above {here} (looked for pyproject.toml with claims/specs/)"
        )

    def check(self) -> None:
        """A usable project: its root is a folder with claim specs (else exit 2 with one line)."""
        from claims.spec import SPEC_SUFFIXES

        if not self.root.is_dir():
            raise ClaimsError(f"{self.root}: no such project folder")
        shadow = self.root / "claims" / "__init__.py"
        if shadow.is_file() and shadow.parent.resolve() != Path(__file__).resolve().parent:
            raise ClaimsError(f"{self.rel(shadow.parent)}/ is a Python package named like the engine and is imported "
                              "in its place: rename it (your code in its own package; specs in specs/ with "
                              '[tool.claims] specs = "specs")')
        specs = [p for p in self.specs_dir.iterdir() if p.suffix in SPEC_SUFFIXES] if self.specs_dir.is_dir() else []
        if not specs:
            raise ClaimsError(f"{self.root}: not a claims project: no claim specs in {self.rel(self.specs_dir)}/ "
                              "(write <id>.yaml files there, or pass --project DIR)")

    def check_cache(self) -> None:
        """The cache must be a folder this process can write (results and checkpoints go there)."""
        import tempfile

        where = f"the cache {self.cache_dir} (set by $CLAIMS_CACHE or [tool.claims] cache)"
        if self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise ClaimsError(f"{where} is a file, not a folder")
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.cache_dir):
                pass
        except OSError as exc:
            raise ClaimsError(f"{where} is not writable: {exc.strerror}") from None

    def activate(self) -> None:
        """Make the project's modules importable (experiments are named by module path), and let
        them, and only modules of a project, be experiments."""
        from claims.experiment import allow_root

        allow_root(self.root)
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        self.apply_environment()

    def apply_environment(self) -> None:
        """Set `[tool.claims] environment` in this process (and so in the processes it starts). A value
        the shell set otherwise is kept, with one warning line. A CPU-kernel pin that comes too late
        to hold in this process (OpenBLAS loaded by numpy, or torch's kernels chosen, before the
        project was activated, as in a notebook or a test run) is not set, with one warning line, so
        that no sidecar records a pin the run did not have."""
        from claims.progress import log

        blas_loaded = next((m for m in ("numpy", "scipy") if m in sys.modules), None)
        torch = sys.modules.get("torch")
        for name, value in self.environment.items():
            current = os.environ.get(name)
            if current is not None:
                if current != value:
                    log(f"warning: {name}={current} from the environment overrides the project's {name}={value} "
                        "([tool.claims] environment); results made so may not rerun bit for bit elsewhere")
                continue
            if blas_loaded and name.startswith("OPENBLAS_"):
                log(f"warning: {name}={value} ([tool.claims] environment) not set: {blas_loaded} loaded OpenBLAS in "
                    "this process before the project was activated, so it would not hold (python -m claims sets it "
                    "first)")
                continue
            os.environ[name] = value
            if name == "ATEN_CPU_CAPABILITY" and torch is not None:
                chosen = torch.backends.cpu.get_cpu_capability()
                if chosen.lower() != value.lower():
                    del os.environ[name]
                    log(f"warning: {name}={value} ([tool.claims] environment) not set: torch chose its {chosen} "
                        "kernels in this process before the project was activated")

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _environment(pyproject: Path, table: object) -> dict[str, str]:
    """`[tool.claims] environment`, checked: a table of strings, each a variable provenance records."""
    from claims.provenance import recorded_environment

    if not isinstance(table, dict):
        raise ClaimsError(f"{pyproject}: [tool.claims] environment must be a table of NAME = \"value\", "
                          f"not {table!r}")
    out: dict[str, str] = {}
    for name, value in table.items():
        if not isinstance(value, str):
            raise ClaimsError(f"{pyproject}: [tool.claims] environment: {name} must be a string, not {value!r}")
        if name not in recorded_environment({name: value}):
            raise ClaimsError(f"{pyproject}: [tool.claims] environment: {name} is not a variable provenance "
                              "records (MKL_, ATEN_, OMP_, OPENBLAS_, ONEDNN_, DNNL_, NPY_, TORCH_, CUDA_, HF_, "
                              "TRANSFORMERS_, CLAIMS_...), so a result made under it would not say so")
        out[name] = value
    return out
