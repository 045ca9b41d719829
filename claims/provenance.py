"""Provenance: what code, config, inputs and packages produced a result, and nothing secret.

The code fingerprint covers the experiment module and every project module it imports,
transitively, found by reading `import` statements (nothing is executed). The engine package
`claims` is left out: it is the harness, not the experiment. The same walk names the third-party
packages that code imports (outside the standard library and the project); their installed
versions, and those of the module's `PACKAGES`, are the packages part of the key, so a coin flip
that imports numpy does not go stale when torch is upgraded.
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

#: The packages whose versions entered every key under key rule 2 (before keys followed imports);
#: a result stored under rule 2 stays fresh while its rule-2 key still matches (claims/runner.py).
LEGACY_KEY_PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "transformers", "sae-lens")
#: Packages recorded in every sidecar (in the key only when the experiment's code imports them).
RECORDED_PACKAGES = (*LEGACY_KEY_PACKAGES, "safetensors", "peft", "accelerate", "gguf", "tokenizers", "bergson")
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
# CLAIMS_ and the libraries' own settings; ATEN_, MKL_, OPENBLAS_, ONEDNN_/DNNL_ and NPY_ choose which
# CPU kernels run (ATEN_CPU_CAPABILITY, MKL_CBWR, OPENBLAS_CORETYPE, ...), and so a result's last bits
_RECORDED_ENV = re.compile(r"^(CLAIMS_|HF_|TRANSFORMERS_|OMP_|MKL_|CUDA_|TORCH_|OPENAI_|ATEN_|OPENBLAS_|ONEDNN_|DNNL_|NPY_"
                           r"|PYTHONHASHSEED$)")
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


def _imports(path: Path, module: str) -> tuple[str, ...]:
    """Module names a file imports, including every parent package of each (parsed once per
    version of the file in a process)."""
    stat = path.stat()
    return _parsed_imports(str(path), module, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8192)
def _parsed_imports(path: str, module: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    return tuple(_walk_imports(Path(path), module))


def _walk_imports(path: Path, module: str) -> Iterable[str]:
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


#: A walk's result per (module, root): one command's memo (a Runner's), so that the nodes of one
#: experiment, and its code and packages, share one walk. Files are still hashed every time.
Walks = dict[tuple[str, str], tuple[dict[str, Path], set[str]]]


def project_modules(module: str, root: Path, memo: Walks | None = None) -> dict[str, Path]:
    """The module and the project modules it imports, transitively: name -> file."""
    return _import_walk(module, root, memo)[0]


def _import_walk(module: str, root: Path, memo: Walks | None = None) -> tuple[dict[str, Path], set[str]]:
    """(project modules reached from `module`: name -> file, top-level names of the other modules
    they import). The engine package is neither followed nor reported."""
    if memo is not None:
        if (module, str(root)) not in memo:
            memo[(module, str(root))] = _import_walk(module, root)
        return memo[(module, str(root))]
    found: dict[str, Path] = {}
    outside: set[str] = set()
    seen: set[str] = set()
    tops: dict[str, bool] = {}  # top-level name -> in the project (looked up once per walk)
    stack = [module]
    while stack:
        name = stack.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        if parts[0] == ENGINE_PACKAGE:
            continue
        if parts[0] not in tops:
            tops[parts[0]] = _in_project(parts[0], root)
        if not tops[parts[0]]:
            outside.add(parts[0])
            continue
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = _module_path(name, root)
        if path is not None:  # else a name imported from a module (`from a.b import f`)
            found[name] = path
            stack.extend(_imports(path, name))
    return found, outside


def _in_project(top: str, root: Path) -> bool:
    return _module_path(top, root) is not None or (root / top).is_dir()


def imported_packages(module: str, root: Path, cache: Path | None = None,
                      memo: Walks | None = None) -> tuple[str, ...]:
    """The distributions (pip names) of the third-party packages that the module and the project
    code it imports import, transitively; the standard library and the engine are left out. A
    name no installed distribution provides keeps its import name (its version reads 'absent')."""
    names = _import_walk(module, root, memo)[1] - set(sys.stdlib_module_names) - {"__main__"}
    providers = distributions_by_top_level(cache)
    return tuple(sorted({dist for name in names for dist in providers.get(name, [name])}))


_PROVIDERS: dict[str, dict[str, list[str]]] = {}


def distributions_by_top_level(cache: Path | None = None) -> dict[str, list[str]]:
    """Import name -> the installed distributions that provide it (normalised pip names). Scanning
    every installed distribution takes a second or more, so the map is remembered in the process
    and, with `cache`, in <cache>/packages/<key>.json, keyed by the folders on sys.path and their
    mtimes (installing, upgrading or removing a package changes its folder's mtime)."""
    signature = sha256_text(canonical_json([sys.version, *(
        [entry, os.stat(entry).st_mtime_ns] for entry in sys.path if entry and os.path.isdir(entry))]))
    if signature in _PROVIDERS:
        return _PROVIDERS[signature]
    path = cache / "packages" / f"{signature}.json" if cache else None
    providers = None
    if path is not None:
        try:
            providers = json.loads(path.read_text())
        except (OSError, ValueError):
            providers = None
    if not isinstance(providers, dict):
        providers = {name: sorted({re.sub(r"[-_.]+", "-", d).lower() for d in dists})
                     for name, dists in importlib.metadata.packages_distributions().items()}
        if path is not None:
            try:
                from claims.store import atomic_write_json

                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(path, providers)
            except OSError:  # a read-only cache only costs the next process the scan
                pass
    _PROVIDERS[signature] = providers
    return providers


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(Path(path))


def file_digest(path: Path) -> str:
    """sha256 of a file, memoised within the process on (path, mtime, size)."""
    stat = path.stat()
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size)


def code_files(module: str, root: Path, memo: Walks | None = None) -> dict[str, str]:
    """Relative path -> sha256 for the experiment module and the project code it imports."""
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for path in sorted(project_modules(module, root, memo).values())
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
    """Where a result was made. The CPU model and, when torch is loaded, the vector instruction set
    its kernels dispatch to (AVX2, AVX512, ...) say why a rerun elsewhere may differ in the last bits:
    kernels for another instruction set sum in another order."""
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    cpu = _cpu_model()
    if cpu:
        out["cpu"] = cpu
    torch = sys.modules.get("torch")
    capability = getattr(getattr(getattr(torch, "backends", None), "cpu", None), "get_cpu_capability", None)
    if capability is not None:
        try:
            out["cpu_capability"] = str(capability())
        except Exception:  # an old or partial torch: the model name is still recorded
            pass
    return out


@functools.cache
def _cpu_model() -> str | None:
    """The CPU's model name (Linux /proc/cpuinfo, else what platform reports), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()[:120] or None
    except OSError:
        pass
    return (platform.processor() or "").strip()[:120] or None


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


#: The settings that choose which CPU kernels run, and so the last bits of a float computation.
_KERNEL_ENV = re.compile(r"^(ATEN_|MKL_|OPENBLAS_|ONEDNN_|DNNL_|NPY_|OMP_NUM_THREADS$|CLAIMS_TORCH_THREADS$)")


def kernel_stamp(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Where partial work is being made, as far as its bits go: the CPU model and the kernel
    settings. A checkpoint made under another stamp is not resumed (Runner._run)."""
    environ = os.environ if environ is None else environ
    return {"cpu": _cpu_model(), "kernels": {k: v for k, v in sorted(environ.items()) if _KERNEL_ENV.match(k)}}


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
