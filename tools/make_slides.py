"""Build a reveal.js deck per lesson from the notebooks' slideshow metadata.

Usage: ``python tools/make_slides.py notebooks/[0-9][0-9]_*.ipynb --out slides`` (``make
slides``) writes ``slides/NN_name.slides.html``; open one in a browser (reveal.js and MathJax
load from their CDNs, so a deck needs internet to show its styling and formulas).

Where a cell has no ``slideshow`` metadata, :func:`default_slide_type` gives it one (``make
notebooks`` stores these defaults in the notebooks, where an instructor can change any of them
in JupyterLab's property inspector):

* the title and every ``##`` section start a new slide;
* inside a section, prose that follows code starts a new sub-slide (one idea per sub-slide:
  its explanation, its code, its output);
* the setup cell and the exercises' solution cells are skipped: a deck shows the exercise and
  its check, not the answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

SOLUTION_MARKER = "### BEGIN SOLUTION"
SETUP_MARKER = "config.setup("


def default_slide_type(cell: nbformat.NotebookNode, previous: nbformat.NotebookNode | None) -> str:
    """The slide type a cell gets when its metadata names none."""
    source = cell.source.lstrip()
    if cell.cell_type == "markdown":
        if source.startswith(("# ", "## ")):
            return "slide"
        if source.startswith("### ") or (previous is not None and previous.cell_type == "code"):
            return "subslide"
        return "-"
    if SETUP_MARKER in source or SOLUTION_MARKER in source:
        return "skip"
    return "-"


def tag_slides(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give every cell without ``slideshow`` metadata its default type (in place)."""
    previous = None
    for cell in notebook.cells:
        if "slideshow" not in cell.metadata:
            cell.metadata["slideshow"] = {"slide_type": default_slide_type(cell, previous)}
        previous = cell
    return notebook


def build_deck(path: Path, out: Path) -> Path:
    """Write the deck of the lesson at ``path`` into the folder ``out``; return its path."""
    notebook = tag_slides(nbformat.read(path, as_version=4))
    exporter = SlidesExporter(reveal_scroll=True, exclude_input_prompt=True)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": path.stem}})
    target = out / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("slides"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.notebooks):
        deck = build_deck(path, args.out)
        print(f"{deck}: {deck.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
