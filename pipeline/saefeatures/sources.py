"""Human-written English that Debian packages ship, read as documents (id, text).

  wordnet   wordnet-base: every synset's gloss, its definition and example sentences
            (/usr/share/wordnet/data.{noun,verb,adj,adv})
  fortunes  fortunes + fortunes-min: quotations, jokes, verse (/usr/share/games/fortunes/*, the
            ASCII-art files left out); one fortune is one document
  kjv       bible-kjv-text, read through its reader `bible` (bible-kjv): the King James Bible, four
            consecutive verses per document
  pydoc     python3-doc: the prose paragraphs of the Python tutorial, HOWTOs, FAQ, library and
            language reference (reStructuredText sources; code blocks, directives and tables left out)

`root` prefixes every path (tests point it at a fixture tree laid out the same way). A missing
source is one clear error naming the Debian package that provides it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from claims.errors import ExperimentError

PACKAGES = {"wordnet": ("wordnet-base",), "fortunes": ("fortunes", "fortunes-min"),
            "kjv": ("bible-kjv", "bible-kjv-text"), "pydoc": ("python3-doc",)}
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
FORTUNES_SKIPPED = {"art", "ascii-art"}  # pictures made of characters, not prose
PYDOC_PARTS = ("tutorial", "howto", "faq", "library", "reference")
KJV_RANGE = "Gen1:1-Rev22:21"
VERSES_PER_DOCUMENT = 4


def _missing(source: str, path: Path) -> ExperimentError:
    return ExperimentError(f"corpus source {source!r}: {path} not found; install Debian's "
                           f"{' and '.join(PACKAGES[source])} (sh scripts/setup_system.sh does)")


def files(source: str, root: Path) -> list[Path]:
    """The files a source is read from (their bytes enter the corpus's cache key)."""
    if source == "wordnet":
        found = [root / "usr/share/wordnet" / name for name in WORDNET_FILES]
    elif source == "fortunes":
        folder = root / "usr/share/games/fortunes"
        found = sorted(p for p in folder.glob("*") if p.is_file() and not p.suffix and p.name not in FORTUNES_SKIPPED) \
            if folder.is_dir() else []
        if not found:
            raise _missing(source, folder)
    elif source == "kjv":
        found = [root / "usr/bin/bible", root / "usr/lib/bible.data"]
    else:
        base = pydoc_root(root)
        found = sorted(p for part in PYDOC_PARTS for p in (base / part).rglob("*.rst.txt"))
        if not found:
            raise _missing(source, base)
    for path in found:
        if not path.is_file():
            raise _missing(source, path)
    return found


def pydoc_root(root: Path) -> Path:
    candidates = sorted((root / "usr/share/doc").glob("python3*/html/_sources"))
    return candidates[-1] if candidates else root / "usr/share/doc/python3/html/_sources"


def fingerprint(source: str, root: Path) -> str:
    """sha256 over the names and bytes of a source's files."""
    digest = hashlib.sha256()
    for path in files(source, root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def documents(source: str, root: Path) -> Iterator[tuple[str, str]]:
    """(document id, text) in the source's own order."""
    reader = {"wordnet": _wordnet, "fortunes": _fortunes, "kjv": _kjv, "pydoc": _pydoc}[source]
    yield from reader(root)


def _wordnet(root: Path) -> Iterator[tuple[str, str]]:
    for path in files("wordnet", root):
        pos = path.name.removeprefix("data.")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header, or a synset without a gloss
            fields, gloss = line.split(" | ", 1)
            parts = fields.split()
            word = parts[4].replace("_", " ")
            yield f"wordnet/{pos}/{parts[0]}", f"{word}: {gloss.strip()}"


def _fortunes(root: Path) -> Iterator[tuple[str, str]]:
    for path in files("fortunes", root):
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, chunk in enumerate(re.split(r"\n%\n", text)):
            chunk = chunk.strip("%\n ").strip()
            if chunk:
                yield f"fortunes/{path.name}/{i}", chunk


_VERSE = re.compile(r"^\s+(\d+) (.*)$")


def _kjv(root: Path) -> Iterator[tuple[str, str]]:
    bible, data = files("kjv", root)
    try:
        out = subprocess.run([str(bible), "-l0", "-p", str(data.parent), KJV_RANGE], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, check=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExperimentError(f"corpus source 'kjv': running {bible} failed ({type(exc).__name__}: {exc})") from None
    chapter, verses = "", []

    def flush() -> Iterator[tuple[str, str]]:
        for i in range(0, len(verses), VERSES_PER_DOCUMENT):
            group = verses[i:i + VERSES_PER_DOCUMENT]
            yield f"kjv/{chapter}:{group[0][0]}", " ".join(text for _, text in group)

    for line in out.splitlines():
        match = _VERSE.match(line)
        if match:
            verses.append((match[1], match[2].strip()))
        elif line.strip() and not line.startswith(" "):
            yield from flush()
            chapter, verses = line.strip().replace(" ", ""), []
    yield from flush()


_ROLE = re.compile(r":[\w:+-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :func:`~os.path.join` -> os.path.join
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]*>`_+")  # `text <url>`_ -> text
_SKIP = re.compile(r"^(\.\.|::|[=\-~^*+#]{3,}|\+[-=]|>>>|\|)")


def _pydoc(root: Path) -> Iterator[tuple[str, str]]:
    base = pydoc_root(root)
    for path in files("pydoc", root):
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, block in enumerate(re.split(r"\n\s*\n", text)):
            lines = block.splitlines()
            if not lines or lines[0].startswith((" ", "\t")) or any(_SKIP.match(ln.strip()) for ln in lines):
                continue  # indented (code, quoted directive bodies), directives, headings, tables
            para = " ".join(ln.strip() for ln in lines)
            para = _LINK.sub(r"\1", _ROLE.sub(r"\1", para))
            para = para.replace("``", "").replace("**", "").replace("`", "")
            para = re.sub(r"::$", ":", para).strip()
            if len(para.split()) >= 8:
                yield f"pydoc/{path.relative_to(base).as_posix().removesuffix('.rst.txt')}/{i}", para
