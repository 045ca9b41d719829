"""Layout checks run inside a page (Playwright's `page.evaluate`), shared by the browser tests.

OVERFLOW lists every text box that does not fit: the page scrolling sideways, a box running past
the viewport, a box whose text spills out of it, text cut by an ellipsis or hidden overflow, and a
box that scrolls sideways to hide part of its content (code blocks excepted: they scroll by
design). LABELS lists the chart text of every SVG a page shows (inline or as <img>), with boxes in
the drawing's own units, so that a test can check that no two labels overlap and none is clipped.
"""

OVERFLOW = """() => {
  const width = document.documentElement.clientWidth, out = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const text = el => (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 50);
  const codeLike = el => !!el.closest('pre, table.source, .sha');
  const scroller = el => {
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) return e;
    }
    return null;
  };
  if (document.documentElement.scrollWidth > width + 1)
    out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  for (const el of document.body.querySelectorAll('*')) {
    const s = getComputedStyle(el);
    if (s.display === 'none' || s.visibility === 'hidden' || el.closest('svg, [hidden]')) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const inScroller = scroller(el.parentElement);
    if (!inScroller && r.right > width + 1)
      out.push(`${name(el)} "${text(el)}": right edge ${Math.round(r.right)} > viewport ${width}`);
    const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (ownText && s.overflowX === 'visible' && s.display !== 'inline' && el.clientWidth > 0 &&
        el.scrollWidth > el.clientWidth + 1 && !codeLike(el))
      out.push(`${name(el)} "${text(el)}": text ${el.scrollWidth}px wide in a box of ${el.clientWidth}px`);
    if ((s.textOverflow === 'ellipsis' || s.overflowX === 'hidden') && el.scrollWidth > el.clientWidth + 1 &&
        ownText)
      out.push(`${name(el)} "${text(el)}": text cut (${el.scrollWidth} > ${el.clientWidth})`);
    if (['auto', 'scroll'].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1 && !codeLike(el) &&
        el.tagName !== 'PRE')
      out.push(`${name(el)} "${text(el)}": scrolls sideways, ${el.scrollWidth - el.clientWidth}px hidden`);
  }
  return out;
}"""

SVG_LABELS = """(svg) => {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim() &&
      getComputedStyle(t).opacity !== '0' && t.getAttribute('opacity') !== '0');
  return {box: [box.left, box.top, box.right, box.bottom],
          texts: texts.map(t => { const r = t.getBoundingClientRect();
            return {text: t.textContent, box: [r.left, r.top, r.right, r.bottom]}; })};
}"""


def label_problems(name: str, drawn: dict) -> list[str]:
    """Labels outside their drawing (clipped) and pairs of labels whose boxes overlap."""
    left, top, right, bottom = drawn["box"]
    texts, out = drawn["texts"], []
    for t in texts:
        x0, y0, x1, y1 = t["box"]
        if x0 < left - 0.5 or x1 > right + 0.5 or y0 < top - 0.5 or y1 > bottom + 0.5:
            out.append(f"{name}: {t['text']!r} is outside the drawing")
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            overlap_x = min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0])
            overlap_y = min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1])
            if overlap_x > 1 and overlap_y > 1:
                out.append(f"{name}: {a['text']!r} overlaps {b['text']!r}")
    return out
