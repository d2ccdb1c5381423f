"""Student versions (tools/make_student.py): solutions out, checks kept, nothing else changed.

Each student notebook is run once, in one kernel: without solutions it may fail only in its
exercise cells and their check cells; then the instructor's solutions are put back into those
cells, which are run again with their checks, and must pass.
"""

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import make_student  # noqa: E402 (a maintainer script, imported from tools/)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def errors_of(cell: nbformat.NotebookNode) -> list[str]:
    return [
        f"{output.ename}: {output.evalue}"
        for output in cell.outputs
        if output.output_type == "error"
    ]


def next_code_cell(notebook: nbformat.NotebookNode, index: int) -> int:
    """The check cell of the exercise in cell ``index``: the next code cell."""
    return next(
        later
        for later in range(index + 1, len(notebook.cells))
        if notebook.cells[later].cell_type == "code"
    )


def test_the_command_writes_every_lesson(tmp_path, capsys):
    assert make_student.main([*map(str, NOTEBOOKS), "--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [path.name for path in NOTEBOOKS]
    assert "exercise cells replaced" in capsys.readouterr().out


def test_unbalanced_markers_are_refused():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n")]
    with pytest.raises(ValueError, match="do not form"):
        make_student.student_version(notebook, "broken.ipynb")


def test_a_solution_inside_a_function_keeps_the_def_line_and_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ny = 1"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source)]
    student = make_student.student_version(notebook)
    assert student.cells[0].source == (
        "def f(x):\n"
        "    # Your solution here: replace the next line, then run the check cell below.\n"
        '    raise NotImplementedError("Exercise: write your solution in this cell.")\n'
        "\ny = 1"
    )
    assert make_student.restore_solutions(student, notebook).cells[0].source == source
    compile(student.cells[0].source, "student", "exec")  # still valid Python


def test_a_written_answer_in_markdown_is_hidden_from_students():
    source = (
        "Which band?\n\n<!-- BEGIN ANSWER -->\n*Answer:* the 50-60% band.\n<!-- END ANSWER -->"
        "\n\n## Summary"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(source)])
    student = make_student.student_version(notebook)
    assert "50-60%" not in student.cells[0].source
    assert student.cells[0].source.endswith(make_student.ANSWER_PLACEHOLDER + "\n\n## Summary")
    assert make_student.restore_solutions(student, notebook).cells[0].source == source
    notebook.cells[0].source = source.replace(make_student.ANSWER_END, "")
    with pytest.raises(ValueError, match="lacks"):
        make_student.student_version(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_student_version_differs_only_in_the_solutions(path):
    instructor = nbformat.read(path, as_version=4)
    student = make_student.student_version(instructor, path.name)
    exercises = make_student.exercise_cells(instructor)
    assert exercises, f"{path.name} has no exercises"
    text = "\n".join(cell.source for cell in student.cells)
    assert make_student.BEGIN not in text and make_student.END not in text
    assert make_student.ANSWER_BEGIN not in text and "Answer to the question" not in text
    assert text.count("NotImplementedError") >= len(exercises)
    assert all(not cell.get("outputs") for cell in student.cells if cell.cell_type == "code")
    restored = make_student.restore_solutions(student, instructor)
    assert [cell.source for cell in restored.cells] == [cell.source for cell in instructor.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_student_notebook_fails_only_in_exercises_and_passes_with_the_solutions(path):
    instructor = nbformat.read(path, as_version=4)
    student = make_student.student_version(instructor, path.name)
    exercises = make_student.exercise_cells(instructor)
    checks = {index: next_code_cell(instructor, index) for index in exercises}
    allowed = set(exercises) | set(checks.values())

    client = NotebookClient(
        student,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(student.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        failing = {
            index
            for index, cell in enumerate(student.cells)
            if cell.cell_type == "code" and errors_of(cell)
        }
        assert failing <= allowed, {index: errors_of(student.cells[index]) for index in failing}
        for index in exercises:  # a placeholder raises when run (or when its function is called)
            raised = errors_of(student.cells[index]) + errors_of(student.cells[checks[index]])
            assert any("NotImplementedError" in error for error in raised), (index, raised)

        # Same kernel: put each solution back, run it and its check cell.
        restored = make_student.restore_solutions(student, instructor)
        for index in exercises:
            for cell_index in (index, checks[index]):
                cell = restored.cells[cell_index]
                cell.outputs = []
                client.execute_cell(cell, cell_index)
                assert not errors_of(cell), (cell_index, errors_of(cell))
