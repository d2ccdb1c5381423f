"""Committed notebooks are executed, in order, without errors, with clean metadata.

`make notebooks` produces them; this test catches a notebook edited and committed without
re-running it.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"


def test_there_are_lessons():
    assert NOTEBOOKS, "no lesson notebooks found in notebooks/"
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(len(numbers))), f"lessons must be numbered 00, 01, ...: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_executed_in_order_without_errors(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    counts = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        assert cell["execution_count"] is not None, f"{path.name}: cell {index} was never run"
        counts.append(cell["execution_count"])
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{path.name}: cell {index} has an error"
            text = "".join(output.get("text", ""))
            assert "Traceback" not in text, f"{path.name}: cell {index} printed a traceback"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1, 2, 3, ...: "
        "run `make notebooks` to execute it from a fresh kernel"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_metadata_is_clean(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert set(notebook["metadata"]) <= {"kernelspec", "language_info"}
    for cell in notebook["cells"]:
        assert set(cell.get("metadata", {})) <= {"tags", "slideshow"}, cell.get("metadata")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_follows_the_lesson_template(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    assert notebook["cells"][0]["cell_type"] == "markdown" and sources[0].startswith("# ")
    assert "colab.research.google.com" in sources[0], "the title cell needs its Colab badge"
    assert any("config.setup(" in source for source in sources), "one setup cell from the library"
    begins = sum(source.count(SOLUTION_BEGIN) for source in sources)
    ends = sum(source.count(SOLUTION_END) for source in sources)
    assert begins == ends, f"{path.name}: unbalanced solution markers"
    assert re.search(r"^#+ .*Summary", "\n".join(sources), re.MULTILINE), "needs a Summary section"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_markdown_has_no_control_characters(path):
    """A TAB or other control character in markdown is a LaTeX escape gone wrong ("\\times"
    written in a non-raw Python string becomes TAB + "imes")."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        found = sorted(
            {hex(ord(char)) for char in "".join(cell["source"]) if ord(char) < 32 and char != "\n"}
        )
        assert not found, f"{path.name}: markdown cell {index} holds control characters {found}"
