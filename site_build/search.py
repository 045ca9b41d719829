"""The site's search index: every claim, every content page and each of its sections, and the
feature pages, as small records a local script matches against (templates/static/search.js).

  search.json               [{"title", "url", "kind", "text"}], for the script and for other tools
  static/search-index.js    the same records as a script, so that search also works from file://
                            (where a browser refuses to fetch a local JSON file)

Nothing here is fetched from elsewhere: the index and the script are files of the site.
The text of a page is its Markdown with the claim references and markup taken out (numbers come
from the claims' own records, so the index never carries a number a claim did not produce).
"""

from __future__ import annotations

import json
import re
from typing import Any

from site_build.common.xref import headings

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_MARKUP = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|[*_`>#|]|\[@[^\]]*\]|\{ref\}`[^`]*`")
SNIPPET = 400  # characters of text kept per record


def plain(markdown: str) -> str:
    text = _JINJA.sub(" ", markdown)
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    return " ".join(text.split())


def _sections(body: str) -> list[tuple[str, str, str]]:
    """(title, anchor, text) of each heading of a page, its text up to the next heading."""
    found = headings(body)
    parts = re.split(r"^#{1,6}\s+.*$", body, flags=re.M)
    out = []
    for i, (_, title, anchor) in enumerate(found):
        text = parts[i + 1] if i + 1 < len(parts) else ""
        out.append((title, anchor, plain(text)[:SNIPPET]))
    return out


def records(study: Any, content: Any) -> list[dict[str, str]]:
    """The index: claims first (title, id, statement or reason, status), then pages and sections."""
    out: list[dict[str, str]] = []
    for r in study.records:
        o = r.outcome
        words = [o.id, o.statement or o.reason, o.status.replace("_", " "), o.verdict, o.section]
        out.append({"title": o.title, "url": f"claims/{o.id}.html", "kind": "claim",
                    "text": " ".join(w for w in words if w)[:SNIPPET * 2]})
    for page in content.pages:
        url = f"{page.path.stem}.html"
        out.append({"title": page.title, "url": url, "kind": "page", "text": plain(page.body)[:SNIPPET]})
        for title, anchor, text in _sections(page.body):
            if title != page.title:
                out.append({"title": f"{title} ({page.title})", "url": f"{url}#{anchor}", "kind": "section",
                            "text": text})
    if content.paper:
        body = "\n\n".join(p.body for p in content.paper)
        out.append({"title": content.paper_title, "url": "paper.html", "kind": "paper", "text": plain(body)[:SNIPPET]})
        for title, anchor, text in _sections(body):
            out.append({"title": f"{title} (paper)", "url": f"paper.html#{anchor}", "kind": "section", "text": text})
    from site_build.features import concept_features, feature_rel

    for entry in concept_features(study):
        for f in entry["features"]:
            out.append({"title": f"{entry['concept']}: latent {f.get('id', '')}", "url": feature_rel(entry["concept"], f),
                        "kind": "feature", "text": f"{entry['concept']} {entry['claim']} layer {f.get('layer')}"})
    return out


def search_json(index: list[dict[str, str]]) -> bytes:
    return (json.dumps(index, ensure_ascii=False, sort_keys=True, indent=0) + "\n").encode("utf-8")


def search_script(index: list[dict[str, str]]) -> bytes:
    data = json.dumps(index, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
    return f"window.claimsSearchIndex = {data};\n".encode()
