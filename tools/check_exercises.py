"""Run every exercise check against plausible wrong answers: each must fail, the solution pass.

Usage: ``COURSE_PROFILE=quick python tools/check_exercises.py notebooks/01_masking.ipynb ...``
(``make exercises`` runs it on every lesson). For each notebook, one kernel executes the lesson
top to bottom (the checks need what the lesson built: its images, tables and models); then, for
each exercise, every wrong answer of ``tests/exercise_wrong_answers.py`` replaces the solution
block(s) of the exercise's cell and the check cell after it runs; it must raise. Last, the
solution and the check run again and must pass. Nothing is written back to the notebooks.

An exercise is a code cell with ``### BEGIN SOLUTION`` / ``### END SOLUTION`` blocks, checked
by the code cell that follows it; exercises are numbered by their order in the notebook.
Exits with 1 if a wrong answer passes, a solution fails, a wrong answer cannot even be defined,
or an exercise has no wrong answer.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exercise_wrong_answers import WRONG_ANSWERS, WrongAnswer  # noqa: E402

ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks
BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\n(?P<body>.*?)^(?P=indent)### END SOLUTION$",
    re.MULTILINE | re.DOTALL,
)


def exercise_cells(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells holding solution blocks, in order: exercise k is entry k - 1."""
    return [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and BLOCK.search(cell.source)
    ]


def with_blocks(source: str, replacements: tuple[str | None, ...]) -> str:
    """``source`` with the body of its k-th solution block replaced by ``replacements[k]``
    (``None`` keeps the solution's), indented like the block's markers."""
    blocks = list(BLOCK.finditer(source))
    if len(replacements) != len(blocks):
        raise ValueError(
            f"the cell has {len(blocks)} solution block(s); a wrong answer gives "
            f"{len(replacements)} replacement(s)"
        )
    pieces, end = [], 0
    for match, replacement in zip(blocks, replacements, strict=True):
        body = match["body"]
        if replacement is not None:
            lines = replacement.strip("\n").splitlines()
            body = "".join(f"{match['indent']}{line}\n" if line else "\n" for line in lines)
        pieces += [source[end : match.start("body")], body]
        end = match.end("body")
    return "".join([*pieces, source[end:]])


@dataclass
class Outcome:
    notebook: str
    exercise: int
    answer: str  # a wrong answer's label, or "solution"
    ok: bool
    detail: str


def _run(client: NotebookClient, source: str, index: int) -> str | None:
    """Run ``source`` as a code cell; ``None`` if it ran, else the error's last line."""
    cell = nbformat.v4.new_code_cell(source)
    try:
        client.execute_cell(cell, index)
    except CellExecutionError as error:
        text = ANSI_COLOURS.sub("", str(error))
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else type(error).__name__
    return None


def check_notebook(
    path: Path, timeout: int = 1200, catalogue: dict[int, list[WrongAnswer]] | None = None
) -> list[Outcome]:
    """Every outcome for the lesson at ``path``; ``catalogue``: its wrong answers (default
    its entry in ``WRONG_ANSWERS``)."""
    notebook = nbformat.read(path, as_version=4)
    stem, outcomes = path.stem, []
    catalogue = WRONG_ANSWERS.get(stem, {}) if catalogue is None else catalogue
    cells = exercise_cells(notebook)
    for number in range(1, len(cells) + 1):
        if not catalogue.get(number):
            outcomes.append(Outcome(stem, number, "-", False, "no wrong answer in the catalogue"))
    for number in sorted(set(catalogue) - set(range(1, len(cells) + 1))):
        outcomes.append(Outcome(stem, number, "-", False, "the notebook has no such exercise"))
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )  # fmt: skip
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and (error := _run(client, cell.source, index)):
                return [Outcome(stem, 0, "lesson", False, f"cell {index} fails: {error}")]
        for number, index in enumerate(cells, start=1):
            solution, check = notebook.cells[index].source, notebook.cells[index + 1].source
            for wrong in catalogue.get(number, []):
                error = _run(client, with_blocks(solution, wrong.blocks), index)
                if error is not None:
                    outcomes.append(
                        Outcome(stem, number, wrong.label, False, f"cannot be defined: {error}")
                    )
                    continue
                error = _run(client, check, index + 1)
                detail = f"check failed: {error}" if error else "the check PASSED a wrong answer"
                outcomes.append(Outcome(stem, number, wrong.label, error is not None, detail))
            error = _run(client, solution, index) or _run(client, check, index + 1)
            detail = "the check passed" if error is None else f"FAILED: {error}"
            outcomes.append(Outcome(stem, number, "solution", error is None, detail))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    bad = 0
    for path in sorted(args.notebooks):
        if not path.exists():
            parser.error(f"{path} does not exist")
        start = time.perf_counter()
        outcomes = check_notebook(path, args.timeout)
        for outcome in outcomes:
            mark = "ok  " if outcome.ok else "BAD "
            print(
                f"{mark}{outcome.notebook} exercise {outcome.exercise} [{outcome.answer}]: {outcome.detail}"
            )
        bad += sum(not outcome.ok for outcome in outcomes)
        seconds = time.perf_counter() - start
        profile = os.environ.get("COURSE_PROFILE", "(default)")
        print(f"{path}: {len(outcomes)} runs in {seconds:.0f} s under profile {profile}")
    print(
        f"{bad} problem(s)" if bad else "every wrong answer failed its check; every solution passed"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
