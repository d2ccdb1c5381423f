"""Build a reveal.js deck per lesson from the notebooks' slideshow metadata.

Usage: ``python tools/make_slides.py notebooks/[0-9][0-9]_*.ipynb --out slides`` (``make
slides``) writes ``slides/NN_name.slides.html``; open one in a browser. A deck loads reveal.js,
MathJax, require.js and jQuery from ``slides/vendor/``, next to it, so it presents with its
formulas in a classroom without network. The first build downloads those four packages once
from the npm registry (pinned versions, checked against their published sha512); later builds
reuse them. ``--cdn`` builds decks that load them from public CDNs instead (smaller folder,
but they need internet when shown).

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
import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

SOLUTION_MARKER = "### BEGIN SOLUTION"
SETUP_MARKER = "config.setup("
REGISTRY = "https://registry.npmjs.org"
# What a deck loads: npm package -> (version, its published sha512 integrity). The versions are
# the ones nbconvert's reveal template is written for (reveal.js 4, MathJax 2).
PACKAGES = {
    "reveal.js": ("4.0.2", "LWZSUenufF1gpD7npxJ7KfoQQFKgc1D6XrLTFgKlwWNP1BQ74hT48KONFWMAw+8R/QUeaScCLCLrBVHDfFIEiw=="),
    "requirejs": ("2.3.6", "ipEzlWQe6RK3jkzikgCupiTbTvm4S0/CAU5GlgptkN5SO6F3u0UD0K18wy6ErDqiCyP4J4YYe1HuAShvsxePLg=="),
    "jquery": ("3.5.1", "XwIBPqcMn57FxfT+Go5pzySnm4KWkT1Tv7gjrpT1srtf8Weynl6R273VJ5GjkRb51IzMp5nbaPjJXMWeju2MKg=="),
    "mathjax": ("2.7.7", "OOl0B2/0tSJAtAZarXnQuLDBLgTNRqiI9VqHTQzPsxf4okT2iIpDrvaklK9x2QEMD1sDj4yRn11Ygci41DxMAQ=="),
}  # fmt: skip
# Parts of the MathJax package a deck never loads: sources, tests, the SVG and HTML-CSS outputs
# (decks use CommonHTML) and the fonts other than TeX's.
MATHJAX_UNUSED = (
    *("unpacked/", "test/", "docs/", "jax/output/SVG/", "jax/output/HTML-CSS/"),
    *(f"fonts/HTML-CSS/{font}/" for font in ("Asana-Math", "Gyre-Pagella", "Gyre-Termes")),
    *(f"fonts/HTML-CSS/{font}/" for font in ("Latin-Modern", "Neo-Euler", "STIX-Web")),
)


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


def fetch(url: str) -> bytes:
    """The bytes at ``url`` (tests replace this to stay offline)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def vendor(out: Path) -> dict[str, str]:
    """Put the four packages into ``out/vendor/NAME`` (once) and return the exporter settings
    that point a deck in ``out`` at them, as paths relative to the deck."""
    for name, (version, integrity) in PACKAGES.items():
        folder = out / "vendor" / name
        stamp = folder / ".version"
        if stamp.is_file() and stamp.read_text() == version:
            continue
        url = f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
        try:
            archive = fetch(url)
        except OSError as error:
            raise SystemExit(
                f"make slides needs {name} {version} once, from {url}, for decks that work "
                f"offline; the download failed ({error}). Connect once and run it again, or "
                "build decks that load it from a CDN with --cdn."
            ) from error
        digest = base64.b64encode(hashlib.sha512(archive).digest()).decode()
        if digest != integrity:
            raise SystemExit(f"{url} is not the published {name} {version} (sha512 differs).")
        unpack(archive, folder, skip=MATHJAX_UNUSED if name == "mathjax" else ())
        stamp.write_text(version)
    return {
        "reveal_url_prefix": "vendor/reveal.js",
        "require_js_url": "vendor/requirejs/require.js",
        "jquery_url": "vendor/jquery/dist/jquery.min.js",
        "mathjax_url": "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
    }


def unpack(archive: bytes, folder: Path, skip: tuple[str, ...] = ()) -> None:
    """Extract an npm tarball's ``package/`` into ``folder``, leaving out paths under ``skip``."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = []
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not inner or inner.startswith(skip) or not (member.isfile() or member.isdir()):
                continue
            member.name = inner
            members.append(member)
        folder.mkdir(parents=True, exist_ok=True)
        tar.extractall(folder, members=members, filter="data")  # no paths outside folder


def build_deck(path: Path, out: Path, assets: dict[str, str] | None = None) -> Path:
    """Write the deck of the lesson at ``path`` into the folder ``out``; return its path.

    ``assets``: where the deck loads reveal.js, MathJax, require.js and jQuery from
    (:func:`vendor`'s settings); ``None`` keeps nbconvert's CDN addresses.
    """
    notebook = tag_slides(nbformat.read(path, as_version=4))
    exporter = SlidesExporter(reveal_scroll=True, exclude_input_prompt=True, **(assets or {}))
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": path.stem}})
    target = out / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("slides"), help="output folder")
    parser.add_argument(
        "--cdn", action="store_true", help="load reveal.js and MathJax from CDNs (needs internet)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    assets = None if args.cdn else vendor(args.out)
    for path in sorted(args.notebooks):
        deck = build_deck(path, args.out, assets)
        print(f"{deck}: {deck.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
