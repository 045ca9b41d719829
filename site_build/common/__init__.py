"""What the site builder and the paper builder share, so that each of them reads as gather,
render, write:

  records        gather: check every claim without running anything, read its results
  content        the prose, its front matter (title, authors, abstract) and its bibliography
  prose          Markdown with claim references and citations, through a Jinja sandbox
  references     claim references in prose: the only way a number reaches a reader
  bibliography   `[@key]` citations and the works cited, with citeproc-py
  figures        the charts each claim's spec asks for, as SVG
  render         the Jinja environment of the templates, and their filters
  outputs        incremental outputs: render only what changed, write atomically
  report         warnings, and --strict
"""
