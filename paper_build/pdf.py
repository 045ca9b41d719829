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
