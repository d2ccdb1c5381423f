"""Execute lesson notebooks in place, in order, each from a fresh kernel, then clean them.

Usage: ``COURSE_PROFILE=quick python tools/execute_notebooks.py notebooks/00_welcome.ipynb ...``
(``make notebooks`` runs it on every lesson). A notebook is written back only when every cell
ran without error, atomically, so a failed run never leaves a half-executed file behind.
Cleaning keeps outputs and execution counts but drops run-specific metadata: only cell tags,
slideshow settings and the kernel name survive; cells without slideshow settings get the
defaults of ``tools/make_slides.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from make_slides import tag_slides
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KEPT_CELL_METADATA = ("tags", "slideshow")
KERNEL_SPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop machine- and run-specific metadata (timings, widget state, versions)."""
    notebook.metadata = nbformat.from_dict(
        {"kernelspec": KERNEL_SPEC, "language_info": {"name": "python"}}
    )
    for cell in notebook.cells:
        cell.metadata = nbformat.from_dict(
            {key: cell.metadata[key] for key in KEPT_CELL_METADATA if key in cell.metadata}
        )
        cell.pop("id", None)
        if cell.cell_type == "code":
            for output in cell.outputs:
                output.get("metadata", {}).pop("execution", None)
    notebook.nbformat_minor = 4  # without cell ids, so diffs stay small
    return tag_slides(notebook)  # default slide types where the cells name none


def execute(path: Path, timeout: int) -> float:
    """Run ``path`` top to bottom in a fresh kernel started in its folder; return seconds."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    cleaned = clean(notebook)
    handle, temporary = tempfile.mkstemp(suffix=".ipynb", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        nbformat.write(cleaned, stream)
    os.replace(temporary, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    profile = os.environ.get("COURSE_PROFILE", "(default)")
    failed = []
    for path in sorted(args.notebooks):
        if not path.exists():
            parser.error(f"{path} does not exist")
        try:
            seconds = execute(path, args.timeout)
        except CellExecutionError as error:
            print(f"FAILED {path} (not written back):\n{error}", file=sys.stderr)
            failed.append(path)
            continue
        print(f"{path}: executed in {seconds:.1f} s under profile {profile}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
