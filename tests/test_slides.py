"""Slides (tools/make_slides.py): every lesson builds a deck with every section heading."""

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
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
    assert make_slides.main([str(NOTEBOOKS[0]), "--out", str(tmp_path), "--cdn"]) == 0
    assert (tmp_path / f"{NOTEBOOKS[0].stem}.slides.html").is_file()
    assert "MB" in capsys.readouterr().out


def npm_tarball(files: dict[str, str]) -> bytes:
    """An archive laid out as the npm registry's: every path under package/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"package/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def fake_registry(monkeypatch):
    """The four packages as small fake archives, with their sha512 in PACKAGES; fetch counts."""
    archives = {
        name: npm_tarball({"dist/reveal.js": "// " + name, "unpacked/big.js": "x"})
        for name in make_slides.PACKAGES
    }
    packages = {
        name: ("1.0.0", base64.b64encode(hashlib.sha512(archive).digest()).decode())
        for name, archive in archives.items()
    }
    monkeypatch.setattr(make_slides, "PACKAGES", packages)
    fetched = []

    def fetch(url):
        fetched.append(url)
        name = url.split("/")[3]
        return archives[name]

    monkeypatch.setattr(make_slides, "fetch", fetch)
    return fetched


def test_decks_load_their_scripts_from_the_vendor_folder_beside_them(tmp_path, fake_registry):
    assets = make_slides.vendor(tmp_path)
    assert len(fake_registry) == 4
    assert (tmp_path / "vendor" / "reveal.js" / "dist" / "reveal.js").read_text() == "// reveal.js"
    assert not (tmp_path / "vendor" / "mathjax" / "unpacked").exists()  # never loaded by a deck
    assert make_slides.vendor(tmp_path) == assets and len(fake_registry) == 4  # downloaded once
    deck = make_slides.build_deck(NOTEBOOKS[3], tmp_path, assets).read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"]+)"', deck) + re.findall(r'"([^"]+\.js)"', deck)
    for name in ("reveal", "require", "jquery", "MathJax"):
        used = [source for source in sources if name.lower() in source.lower()]
        assert used and all(source.startswith("vendor/") for source in used), (name, used)


def test_a_vendor_download_that_fails_or_differs_says_what_to_do(
    tmp_path, fake_registry, monkeypatch
):
    def offline(url):
        raise OSError("no network")

    monkeypatch.setattr(make_slides, "fetch", offline)
    with pytest.raises(SystemExit, match="no network.*--cdn"):
        make_slides.vendor(tmp_path)
    monkeypatch.setattr(make_slides, "fetch", lambda url: npm_tarball({"evil.js": "x"}))
    with pytest.raises(SystemExit, match="sha512 differs"):
        make_slides.vendor(tmp_path)
    assert not list((tmp_path / "vendor").glob("*/.version"))  # nothing half-installed counts


VENDOR = ROOT / "slides" / "vendor"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")
@pytest.mark.skipif(
    not (VENDOR / "mathjax" / ".version").is_file(),
    reason="slides/vendor is empty: run make slides",
)
def test_a_deck_opened_from_disk_without_network_presents_with_formulas(tmp_path):
    (tmp_path / "vendor").symlink_to(VENDOR)
    deck = make_slides.build_deck(NOTEBOOKS[3], tmp_path, make_slides.vendor(tmp_path))
    page = shown_offline(deck, tmp_path / "profile")
    assert re.search(r'class="reveal[^"]*\bready\b', page), "reveal.js did not start"
    assert "MathJax_CHTML" in page, "no formula was rendered by MathJax"
    # The same deck loading from CDNs stays a page of raw text here: the network is off.
    (tmp_path / "cdn").mkdir()
    online = make_slides.build_deck(NOTEBOOKS[3], tmp_path / "cdn", None)
    page = shown_offline(online, tmp_path / "profile")
    assert not re.search(r'class="reveal[^"]*\bready\b', page) and "MathJax_CHTML" not in page


def shown_offline(deck: Path, profile: Path) -> str:
    """The page headless Chromium has built from ``deck`` after 20 s, with no network."""
    shown = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",  # no network
            "--allow-file-access-from-files", "--virtual-time-budget=20000", "--dump-dom",
            deck.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return shown.stdout
