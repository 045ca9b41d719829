"""Provenance: what code, config, inputs and packages produced a result, and nothing secret.

The code fingerprint covers the experiment module and every project module it imports,
transitively, found by reading `import` statements (nothing is executed). The engine package
`claims` is left out: it is the harness, not the experiment.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Packages whose versions enter every cache key (numerics can change with them).
KEY_PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "transformers", "sae-lens")
#: Packages recorded in every sidecar (not in the key unless a module lists them).
RECORDED_PACKAGES = (*KEY_PACKAGES, "safetensors", "peft", "accelerate", "gguf", "tokenizers", "bergson")
ENGINE_PACKAGE = "claims"

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
_SECRET_VALUE = re.compile(
    r"^(sk-|sk_|hf_|ghp_|gho_|github_pat_|xox[bp]-|AKIA|ya29\.)|^[A-Za-z0-9_\-]{32,}$|^[A-Za-z0-9+/]{40,}={0,2}$"
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/\s:@]*):(?P<secret>[^/\s@]+)@", re.I)
# a credential after an auth scheme, not prose ("next-token distributions"): a digit, or 20+ characters
_BEARER = re.compile(r"(?<![\w-])(?P<kind>Bearer|Basic|Token)\s+"
                     r"(?P<secret>(?=[A-Za-z0-9._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{8,}|[A-Za-z0-9._~+/=\-]{20,})", re.I)
_SECRET_ASSIGN = re.compile(r"(?P<key>[A-Za-z_][\w\-]*)(?P<eq>\s*[=:]\s*)(?P<value>[^\s,;&'\"]+)")
#: A credential by its shape, anywhere in a text: a provider's prefix and a long tail (OpenAI,
#: Anthropic, Stripe, Hugging Face, GitHub, Slack, AWS, Google OAuth) or a JSON web token.
_CREDENTIAL = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abpr]-[A-Za-z0-9\-]{10,}"
    r"|AKIA[0-9A-Z]{16}|ya29\.[A-Za-z0-9_\-]{20,}|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})")
#: Environment values shorter than this are not looked for in texts (they would match words).
_MIN_ENV_SECRET = 8
_RECORDED_ENV = re.compile(r"^(CLAIMS_|HF_|TRANSFORMERS_|OMP_|MKL_|CUDA_|TORCH_|OPENAI_|PYTHONHASHSEED$)")
REDACTED = "<redacted>"


def canonical_json(data: Any) -> str:
    """The one serialisation that keys are computed from: sorted keys, no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(material: dict[str, Any]) -> str:
    """The cache key: sha256 of the canonical JSON of (code, config, inputs, upstream, packages)."""
    return sha256_text(canonical_json(material))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# code fingerprint


def _module_path(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> Iterable[str]:
    """Module names a file imports, including every parent package of each."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join(p for p in base_parts if p)
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def project_modules(module: str, root: Path) -> dict[str, Path]:
    """The module and the project modules it imports, transitively: name -> file."""
    found: dict[str, Path] = {}
    stack = [module]
    while stack:
        name = stack.pop()
        if not name or name in found:
            continue
        parts = name.split(".")
        if parts[0] == ENGINE_PACKAGE:
            continue
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = _module_path(name, root)
        if path is None:
            continue
        found[name] = path
        stack.extend(_imports(path, name))
    return found


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(Path(path))


def file_digest(path: Path) -> str:
    """sha256 of a file, memoised within the process on (path, mtime, size)."""
    stat = path.stat()
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size)


def code_files(module: str, root: Path) -> dict[str, str]:
    """Relative path -> sha256 for the experiment module and the project code it imports."""
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for path in sorted(project_modules(module, root).values())
    }


# --------------------------------------------------------------------------------------------
# environment


def package_versions(names: Iterable[str]) -> dict[str, str]:
    return {name: package_version(name) for name in sorted(set(names))}


@functools.lru_cache(maxsize=256)
def package_version(name: str) -> str:
    """An installed package's version ('absent' if it is not installed), read once per process: the
    modules a process has imported cannot change version under it (reading metadata costs ms)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=8)
def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirtiness of the project checkout (None outside a git repository); changes
    under artifacts/ and build/ do not make it dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        # results and build outputs are not code: a run that finds older results modified in
        # the work tree (from an earlier run) was still made by the committed code
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)artifacts",
             ":(exclude)build"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def untracked_files(root: Path, paths: Iterable[str]) -> list[str]:
    """Those of `paths` (relative to root) that git does not track: code a result would depend on
    that no commit holds. Empty outside a git checkout (git_state says so there)."""
    paths = sorted(paths)
    if not paths:
        return []
    try:
        proc = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=root, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    tracked = {p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p}
    return [p for p in paths if p not in tracked]


def platform_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


# --------------------------------------------------------------------------------------------
# redaction


def looks_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(name)) or bool(_SECRET_VALUE.search(value.strip()))


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of environment variables whose names say secret (OPENAI_API_KEY, HF_TOKEN, ...):
    what an experiment's error message or result could carry into a record. Longest first."""
    environ = os.environ if environ is None else environ
    values = {v.strip() for k, v in environ.items()
              if _SECRET_NAME.search(k) and len(v.strip()) >= _MIN_ENV_SECRET and not v.startswith("/")}
    return sorted(values, key=len, reverse=True)


def find_credential(text: str) -> str | None:
    """The first credential in a text (by its shape, or an environment secret's value), else None."""
    match = _CREDENTIAL.search(text)
    if match:
        return match.group(0)
    return next((v for v in environment_secrets() if v in text), None)


def credential_path(data: Any, path: str = "") -> str | None:
    """Where in a JSON-like structure a credential sits ('values.note', 'estimates.x.method'), or None."""
    if isinstance(data, str):
        return (path or "(value)") if find_credential(data) else None
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list | tuple) else ()
    for key, value in items:
        if isinstance(key, str) and find_credential(key):
            return f"{path}.{{key}}" if path else "{key}"
        found = credential_path(value, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key)
        if found:
            return found
    return None


def redact_text(text: str) -> str:
    """Credentials inside a text: the value of a secret environment variable wherever it appears,
    a token shaped like a provider's key (sk-..., hf_..., ghp_...), the password of
    https://user:pw@host, a Bearer/Basic token, and the value of key=value pairs whose key names a
    secret (api_key=..., token: ...). Every path that records text goes through here."""
    from claims.spec import secret_key

    for value in environment_secrets():
        if value in text:
            text = text.replace(value, REDACTED)
    text = _CREDENTIAL.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m['kind']} {REDACTED}", text)
    return _SECRET_ASSIGN.sub(
        lambda m: f"{m['key']}{m['eq']}{REDACTED}" if secret_key(m["key"]) and m["value"] != REDACTED else m.group(0),
        text)


def redact(data: Any) -> Any:
    """`redact_text` over every string of a JSON-like structure."""
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        return {k: redact(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact(v) for v in data]
    return data


def recorded_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables that can change results, with secret-looking values redacted."""
    environ = os.environ if environ is None else environ
    return {
        k: (REDACTED if looks_secret(k, v) else redact_text(v))
        for k, v in sorted(environ.items())
        if _RECORDED_ENV.match(k)
    }


def redact_argv(argv: list[str]) -> list[str]:
    """Command-line arguments with values of secret-looking options or values redacted."""
    from claims.spec import secret_key

    out: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next:
            out.append(REDACTED)
            redact_next = False
        elif arg.startswith("-") and "=" in arg:
            key, _, value = arg.partition("=")
            out.append(f"{key}={REDACTED}" if looks_secret(key, value) else redact_text(arg))
        elif arg.startswith("-") and _SECRET_NAME.search(arg):
            out.append(arg)
            redact_next = True
        elif "=" in arg and secret_key(arg.partition("=")[0].strip()):  # --set api_key=...
            out.append(f"{arg.partition('=')[0]}={REDACTED}")
        else:
            out.append(REDACTED if looks_secret("", arg) else redact_text(arg))
    return out


class PathScrubber:
    """Replaces machine-specific absolute paths with portable placeholders, and redacts
    credentials (redact_text) in every string it passes."""

    def __init__(self, root: Path, cache: Path):
        pairs = [
            (str(cache.resolve()), "$CLAIMS_CACHE"),
            (str(root.resolve()), "."),
            (sys.prefix, "<venv>"),
            (str(Path.home()), "~"),
        ]
        # longest first so that nested locations are replaced by their most specific name
        self.pairs = sorted({p for p in pairs if p[0] not in ("", "/")}, key=lambda p: -len(p[0]))

    def __call__(self, data: Any) -> Any:
        if isinstance(data, str):
            for old, new in self.pairs:
                data = data.replace(old, new)
            return redact_text(data)
        if isinstance(data, dict):
            return {k: self(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self(v) for v in data]
        return data
