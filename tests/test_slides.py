"""Slides (tools/make_slides.py): every lesson builds a deck with every section heading."""

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import make_slides  # noqa: E402 (a maintainer script, imported from tools/)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


class Headings(HTMLParser):
    """Collects the text of every h1-h3 of a page and counts its <section> tags."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.sections = 0
        self._inside = False

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3"):
            self._inside = True
            self.headings.append("")
        elif tag == "section":
            self.sections += 1

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3"):
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.headings[-1] += data


def letters(text: str) -> str:
    """Letters and digits only: markdown and HTML spell a heading differently."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def lesson_headings(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        line.lstrip("#").strip()
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if re.match(r"^#{1,3} ", line)
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_deck_builds_with_every_section_heading(path, tmp_path):
    deck = make_slides.build_deck(path, tmp_path)
    assert deck.name == f"{path.stem}.slides.html"
    page = Headings()
    page.feed(deck.read_text(encoding="utf-8"))
    shown = {letters(heading) for heading in page.headings}
    notebook = nbformat.read(path, as_version=4)
    missing = [h for h in lesson_headings(notebook) if letters(h) not in shown]
    assert not missing, f"{path.name}: headings missing from the deck: {missing}"
    sections = sum(cell.source.lstrip().startswith("## ") for cell in notebook.cells)
    assert page.sections > sections, "every ## section starts its own slide"
    assert "reveal" in deck.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_notebooks_carry_slide_metadata(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    untagged = [
        i for i, cell in enumerate(notebook["cells"]) if "slideshow" not in cell["metadata"]
    ]
    assert not untagged, (
        f"{path.name}: cells {untagged} have no slideshow metadata (make notebooks)"
    )


def test_default_structure():
    markdown, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        markdown("# 09 · Title"),
        code("session = config.setup(seed=0)"),
        markdown("## 1. A section"),
        markdown("More prose."),
        code("x = 1"),
        markdown("What to notice."),
        code("### BEGIN SOLUTION\nx = 2\n### END SOLUTION"),
        markdown("### A subsection"),
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = cells
    types = [
        cell.metadata["slideshow"]["slide_type"] for cell in make_slides.tag_slides(notebook).cells
    ]
    assert types == ["slide", "skip", "slide", "-", "-", "subslide", "skip", "subslide"]
    notebook.cells[0].metadata["slideshow"] = {"slide_type": "notes"}  # an instructor's choice
    assert make_slides.tag_slides(notebook).cells[0].metadata["slideshow"]["slide_type"] == "notes"


def test_the_command_writes_one_deck_per_lesson(tmp_path, capsys):
    assert make_slides.main([str(NOTEBOOKS[0]), "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{NOTEBOOKS[0].stem}.slides.html").is_file()
    assert "MB" in capsys.readouterr().out
