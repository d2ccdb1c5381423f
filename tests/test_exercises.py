"""The exercise checks can fail: every exercise has wrong answers, and the runner that tries
them (tools/check_exercises.py, ``make exercises``) reports a check that lets one through."""

import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_exercises  # noqa: E402
from exercise_wrong_answers import WRONG_ANSWERS, wrong  # noqa: E402

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=lambda path: path.stem)
def test_every_exercise_has_wrong_answers_that_fit_its_cell(path):
    notebook = nbformat.read(path, as_version=4)
    cells = check_exercises.exercise_cells(notebook)
    catalogue = WRONG_ANSWERS.get(path.stem, {})
    assert sorted(catalogue) == list(range(1, len(cells) + 1)), "one entry per exercise"
    for number, index in enumerate(cells, start=1):
        assert catalogue[number], f"exercise {number} has no wrong answer"
        assert notebook.cells[index + 1].cell_type == "code", "a check cell follows"
        source = notebook.cells[index].source
        for answer in catalogue[number]:
            replaced = check_exercises.with_blocks(source, answer.blocks)
            assert replaced != source, answer.label
            python = TransformerManager().transform_cell(replaced)  # as IPython runs it
            compile(python, f"{path.stem} exercise {number}", "exec")
    assert not set(WRONG_ANSWERS) - {lesson.stem for lesson in LESSONS}


def test_blocks_are_replaced_in_place_and_indented_like_their_markers():
    source = (
        "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\n\n"
        "### BEGIN SOLUTION\nanswer = 3\n### END SOLUTION\n"
    )
    replaced = check_exercises.with_blocks(source, ("y = x\nreturn y * 2", None))
    assert replaced == (
        "def f(x):\n    ### BEGIN SOLUTION\n    y = x\n    return y * 2\n    ### END SOLUTION\n"
        "\n\n### BEGIN SOLUTION\nanswer = 3\n### END SOLUTION\n"
    )
    with pytest.raises(ValueError, match="2 solution block"):
        check_exercises.with_blocks(source, ("return 0",))


def test_the_runner_reports_a_check_that_passes_a_wrong_answer(tmp_path):
    lesson = nbformat.v4.new_notebook()
    lesson.cells = [
        nbformat.v4.new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
        ),
        nbformat.v4.new_code_cell("assert double(0) == 0  # too weak: 3 * x passes too"),
    ]
    path = tmp_path / "lesson.ipynb"
    nbformat.write(lesson, path)
    catalogue = {1: [wrong("triple", "return 3 * x"), wrong("plus one", "return x + 1")]}
    outcomes = check_exercises.check_notebook(path, catalogue=catalogue)
    verdicts = {outcome.answer: outcome.ok for outcome in outcomes}
    assert verdicts == {"triple": False, "plus one": True, "solution": True}
    assert "PASSED a wrong answer" in outcomes[0].detail


def test_every_wrong_answer_of_lesson_00_fails_its_check():
    outcomes = check_exercises.check_notebook(ROOT / "notebooks" / "00_welcome.ipynb")
    assert outcomes and all(outcome.ok for outcome in outcomes), [
        (outcome.exercise, outcome.answer, outcome.detail) for outcome in outcomes
    ]
