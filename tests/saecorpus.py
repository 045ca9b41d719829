"""A small Debian-shaped tree with the SAE corpus's four sources, for tests (no system packages)."""

from __future__ import annotations

import os
from pathlib import Path

WORDS = ("river", "stone", "candle", "garden", "letter", "window", "bridge", "harbor", "meadow", "lantern")
VERBS = ("carries", "holds", "lights", "shelters", "opens", "crosses", "greets", "guards")


def _sentences(n: int, seed: int) -> list[str]:
    out = []
    for i in range(n):
        a, b = WORDS[(i * 3 + seed) % len(WORDS)], WORDS[(i * 7 + seed + 1) % len(WORDS)]
        out.append(f"The {a} {VERBS[(i + seed) % len(VERBS)]} the {b} near the old {WORDS[(i + seed) % len(WORDS)]}.")
    return out


def write_tree(root: Path, n: int = 120) -> Path:
    """wordnet-base, fortunes, bible-kjv (a stand-in `bible` script) and python3-doc, n documents each."""
    wn = root / "usr/share/wordnet"
    wn.mkdir(parents=True, exist_ok=True)
    header = "  1 This software and database is being provided to you, the LICENSEE.\n"
    for k, name in enumerate(("data.noun", "data.verb", "data.adj", "data.adv")):
        lines = [f"{10000000 + i:08d} 03 n 01 {WORDS[i % len(WORDS)]} 0 000 | {s}; \"{s.lower()}\"" for i, s in
                 enumerate(_sentences(n // 4, k))]
        (wn / name).write_text(header + "\n".join(lines) + "\n")
    fortunes = root / "usr/share/games/fortunes"
    fortunes.mkdir(parents=True, exist_ok=True)
    (fortunes / "wisdom").write_text("\n%\n".join(_sentences(n, 5)) + "\n%\n")
    (fortunes / "art").write_text("  /\\_/\\\n ( o.o )\n%\n")
    (fortunes / "wisdom.dat").write_bytes(b"\0\0")
    bible = root / "usr/bin/bible"
    bible.parent.mkdir(parents=True, exist_ok=True)
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/bible.data").write_bytes(b"stand-in")
    verses = "\n".join(f"  {i + 1} {s}" for i, s in enumerate(_sentences(n, 9)))
    bible.write_text(f"#!/bin/sh\ncat <<'TEXT'\n\nGenesis 1\n\n{verses}\nTEXT\n")
    os.chmod(bible, 0o755)
    pydoc = root / "usr/share/doc/python3.11/html/_sources/tutorial"
    pydoc.mkdir(parents=True, exist_ok=True)
    paragraphs = [f"A :func:`~os.path.join` call {s.lower()} and then ``returns`` the result." for s in _sentences(n, 13)]
    (pydoc / "intro.rst.txt").write_text("Intro\n=====\n\n" + "\n\n".join(paragraphs) + "\n\n.. note::\n\n   skipped\n")
    return root
