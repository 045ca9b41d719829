"""Where a project's specs, artifacts, content, build outputs and cache live."""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from claims.errors import ClaimsError

DEFAULT_CACHE = Path("~/.cache/claims-interp")


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

    @classmethod
    def at(cls, root: Path) -> Project:
        root = root.resolve()
        settings: dict = {}
        pyproject = root / "pyproject.toml"
        if pyproject.is_file():
            try:
                settings = tomllib.loads(pyproject.read_text()).get("tool", {}).get("claims", {})
            except tomllib.TOMLDecodeError as exc:
                raise ClaimsError(f"{pyproject}: invalid TOML: {exc}") from None
        cache = os.environ.get("CLAIMS_CACHE") or settings.get("cache") or str(DEFAULT_CACHE)
        return cls(
            root=root,
            specs_dir=root / settings.get("specs", "claims/specs"),
            artifacts_dir=root / settings.get("artifacts", "artifacts"),
            content_dir=root / settings.get("content", "content"),
            templates_dir=root / settings.get("templates", "templates"),
            build_dir=root / settings.get("build", "build"),
            cache_dir=(root / Path(cache).expanduser()).resolve(),
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

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
