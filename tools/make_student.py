"""Write student versions of the lessons: every solution block becomes a placeholder.

Usage: ``python tools/make_student.py notebooks/[0-9][0-9]_*.ipynb --out student`` (``make
student``). In each code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION``
(markers included) are replaced by a comment and ``raise NotImplementedError(...)`` at the
same indentation, so a ``def`` line above the block and anything below it stay. In markdown,
a written answer between ``<!-- BEGIN ANSWER -->`` and ``<!-- END ANSWER -->`` (comments,
invisible when rendered) becomes a line asking for the student's own. Check cells, prose and
every other cell are kept; outputs and execution counts are cleared, so students
start from a clean notebook. The instructor notebooks are never modified.

:func:`restore_solutions` puts the instructor's blocks back into a student notebook; the tests
use it to show that the two versions differ only in the solution blocks.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = (
    "# Your solution here: replace the next line, then run the check cell below.\n"
    'raise NotImplementedError("Exercise: write your solution in this cell.")'
)
# A solution block: its indentation, then everything from BEGIN to END (markers included).
BLOCK = re.compile(rf"^([ \t]*){re.escape(BEGIN)}\n.*?^[ \t]*{re.escape(END)}[ \t]*$", re.M | re.S)
# A placeholder in a student notebook: its two lines, at any indentation.
_FIRST, _SECOND = PLACEHOLDER.splitlines()
PLACED = re.compile(rf"^[ \t]*{re.escape(_FIRST)}\n[ \t]*{re.escape(_SECOND)}", re.M)
# A written answer in markdown, and what the student sees instead.
ANSWER_BEGIN, ANSWER_END = "<!-- BEGIN ANSWER -->", "<!-- END ANSWER -->"
ANSWER = re.compile(rf"{re.escape(ANSWER_BEGIN)}.*?{re.escape(ANSWER_END)}", re.S)
ANSWER_PLACEHOLDER = "*Your answer:* (write it here, then compare with a classmate's)"


def solution_blocks(source: str) -> list[str]:
    """The solution blocks of one cell's source, markers included, in order."""
    return [match.group(0) for match in BLOCK.finditer(source)]


def _check_markers(source: str, where: str) -> None:
    """Refuse unbalanced or nested markers: the student version would be wrong silently."""
    begins, ends = source.count(BEGIN), source.count(END)
    if begins != ends or begins != len(solution_blocks(source)):
        raise ValueError(
            f"{where}: {begins} '{BEGIN}' and {ends} '{END}' markers do not form "
            f"{max(begins, ends)} separate blocks; each BEGIN needs its own END on a later line."
        )


def placeholder(indent: str) -> str:
    """The text that replaces a solution block indented by ``indent``."""
    return "\n".join(indent + line for line in PLACEHOLDER.splitlines())


def student_version(
    notebook: nbformat.NotebookNode, name: str = "notebook"
) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with every solution block replaced and all outputs cleared."""
    student = nbformat.from_dict(notebook)
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "markdown":
            if cell.source.count(ANSWER_BEGIN) != len(ANSWER.findall(cell.source)):
                raise ValueError(f"{name}, cell {index}: an answer block lacks {ANSWER_END}")
            cell.source = ANSWER.sub(ANSWER_PLACEHOLDER, cell.source)
        if cell.cell_type != "code":
            continue
        _check_markers(cell.source, f"{name}, cell {index}")
        cell.source = BLOCK.sub(lambda match: placeholder(match.group(1)), cell.source)
        cell.outputs = []
        cell.execution_count = None
    return student


def restore_solutions(
    student: nbformat.NotebookNode, instructor: nbformat.NotebookNode
) -> nbformat.NotebookNode:
    """A copy of ``student`` with the instructor's solution blocks put back, in order."""
    if len(student.cells) != len(instructor.cells):
        raise ValueError(
            f"the student notebook has {len(student.cells)} cells, the instructor's "
            f"{len(instructor.cells)}: they are not versions of the same lesson."
        )
    restored = nbformat.from_dict(student)
    for cell, original in zip(restored.cells, instructor.cells, strict=True):
        if cell.cell_type == "markdown":
            answers = iter(ANSWER.findall(original.source))
            placed = re.escape(ANSWER_PLACEHOLDER)
            cell.source = re.sub(placed, lambda _, answers=answers: next(answers), cell.source)
            continue
        blocks = solution_blocks(original.source)
        if len(PLACED.findall(cell.source)) != len(blocks):
            raise ValueError(
                f"a cell has {len(PLACED.findall(cell.source))} placeholders where the "
                f"instructor's has {len(blocks)} solution blocks."
            )
        remaining = iter(blocks)
        cell.source = PLACED.sub(lambda _, blocks=remaining: next(blocks), cell.source)
    return restored


def exercise_cells(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells holding a solution block, in order."""
    return [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and solution_blocks(cell.source)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("student"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.notebooks):
        if path.resolve().parent == args.out.resolve():
            parser.error(
                f"{path} is inside the output folder {args.out}: it would overwrite itself"
            )
        notebook = nbformat.read(path, as_version=4)
        student = student_version(notebook, path.name)
        target = args.out / path.name
        nbformat.write(student, target)
        print(f"{target}: {len(exercise_cells(notebook))} exercise cells replaced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
