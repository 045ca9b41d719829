"""PDF from the standalone paper HTML, with WeasyPrint (PyPI) over Debian's pango.

WeasyPrint is optional: where it (or pango) is missing, `pdf_renderer()` says why and the paper
build skips the PDF with a note. The PDF carries no creation date unless SOURCE_DATE_EPOCH is
set, so that a rebuild from the same inputs gives the same bytes. It is tagged for accessibility
(PDF/UA-1, as far as WeasyPrint supports it); page numbers and the running head come from the
style sheet's @page rules; charts stay vectors (WeasyPrint draws SVG itself).
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

from claims.errors import BuildError


@dataclass(frozen=True)
class PdfRenderer:
    version: str

    def render(self, html: bytes, base: Path) -> bytes:
        import weasyprint

        quiet = logging.getLogger("weasyprint")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # screen-only CSS (overflow, user-select) is ignored in print, by design
        try:
            document = weasyprint.HTML(string=html.decode("utf-8"), base_url=str(base))
            # PDF/UA-1: a tagged PDF (structure tree, reading order, alt text of the charts, language)
            return document.write_pdf(pdf_identifier=b"claims-paper", uncompressed_pdf=False, pdf_variant="pdf/ua-1")
        except Exception as exc:  # weasyprint raises many kinds; name the file and move on
            raise BuildError(f"build/paper/paper.pdf: WeasyPrint failed: {type(exc).__name__}: {exc}") from None
        finally:
            quiet.setLevel(level)


def pdf_renderer() -> tuple[PdfRenderer | None, str]:
    """(renderer, "") when WeasyPrint loads, else (None, why not)."""
    try:
        import weasyprint  # noqa: F401  (loads pango through cffi: OSError when the library is absent)
    except ImportError:
        return None, "WeasyPrint is not installed (pip install weasyprint; Debian: libpango-1.0-0 libpangoft2-1.0-0)"
    except OSError as exc:
        return None, f"WeasyPrint cannot load pango ({exc}); install Debian's libpango-1.0-0 and libpangoft2-1.0-0"
    return PdfRenderer(importlib.metadata.version("weasyprint")), ""


def layout_problems(html: bytes, base: Path) -> tuple[int, list[str]]:
    """The paper laid out by WeasyPrint as it is printed: (pages, problems), a problem being a
    line of text that runs past its block or past the page's text area, a table wider than the
    text area, or a claim title in the appendix wrapped over more than two lines. The same check
    the browser tests make on screens, here on the rendered pages of the PDF."""
    import weasyprint
    from weasyprint.formatting_structure import boxes

    document = weasyprint.HTML(string=html.decode("utf-8"), base_url=str(base)).render()
    problems: list[str] = []

    def text_of(box: object) -> str:
        if isinstance(box, boxes.TextBox):
            return box.text
        return "".join(text_of(c) for c in getattr(box, "children", []))[:60]

    def walk(box: object, block: object, page: int, right_edge: float) -> None:
        if isinstance(box, boxes.BlockContainerBox) and not isinstance(box, boxes.LineBox):
            block = box
        if isinstance(box, boxes.LineBox) and block is not None:
            limit = min(block.content_box_x() + block.width, right_edge) + 1
            for child in box.descendants():
                if isinstance(child, boxes.TextBox) and child.text.strip():
                    end = child.position_x + child.margin_width()
                    if end > limit:
                        problems.append(f"page {page}: text runs {end - limit:.0f}px past its box: {child.text[:50]!r}")
        if isinstance(box, boxes.TableBox) and box.position_x + box.margin_width() > right_edge + 1:
            problems.append(f"page {page}: a table is {box.position_x + box.margin_width() - right_edge:.0f}px wider "
                            f"than the text area: {text_of(box)!r}")
        element = getattr(box, "element", None)
        if isinstance(box, boxes.TableCellBox) and element is not None and element.get("scope") == "rowgroup":
            lines = [d for d in box.descendants() if isinstance(d, boxes.LineBox)]
            if len(lines) > 2:
                problems.append(f"page {page}: an appendix title wraps over {len(lines)} lines: {text_of(box)!r}")
        for child in getattr(box, "children", []):
            walk(child, block, page, right_edge)

    for number, page in enumerate(document.pages, 1):
        root = page._page_box  # WeasyPrint's laid-out page: margin boxes and the document's boxes
        right = root.content_box_x() + root.width
        for child in root.children:
            if not isinstance(child, boxes.MarginBox):
                walk(child, None, number, right)
    return len(document.pages), problems
