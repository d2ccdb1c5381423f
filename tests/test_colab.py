"""The Colab setup (course_lib.colab): every case of the first cell, with a fake git and pip."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib import colab, config

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def make_checkout(folder: Path) -> None:
    for name in colab.REQUIRED_FILES:
        path = folder / name
        if name == "datasets/masks":
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("# a file of the course\n")


class FakeTools:
    """Stands in for subprocess.run: git clone makes a checkout (or fails), pip installs."""

    def __init__(self, clone_fails: bool = False, pip_fails: bool = False) -> None:
        self.clone_fails, self.pip_fails = clone_fails, pip_fails
        self.commands: list[list[str]] = []
        self.installed: set[Path] = set()

    def __call__(self, command, **options) -> subprocess.CompletedProcess:
        self.commands.append(command)
        if command[:2] == ["git", "clone"]:
            if self.clone_fails:
                error = "fatal: unable to access 'https://github.com/...': Could not resolve host"
                return subprocess.CompletedProcess(command, 128, "", error)
            make_checkout(Path(command[-1]))
        elif command[:2] == ["git", "-C"]:
            return subprocess.CompletedProcess(command, 0, "1a2b3c4\n", "")
        elif command[1:4] == ["-m", "pip", "install"]:
            if self.pip_fails:
                return subprocess.CompletedProcess(command, 1, "", "ERROR: No space left on device")
            self.installed.add(Path(command[-1]))
        return subprocess.CompletedProcess(command, 0, "", "")

    def called(self, *start: str) -> int:
        return sum(command[: len(start)] == list(start) for command in self.commands)


@pytest.fixture
def tools(monkeypatch):
    fake = FakeTools()
    monkeypatch.setattr(colab, "_installed_from", lambda folder: folder in fake.installed)
    monkeypatch.setattr(sys, "path", list(sys.path))  # setup() edits it; give it back after
    return fake


def test_a_partial_checkout_is_kept_aside_and_fetched_again(tmp_path, tools):
    folder = tmp_path / colab.CHECKOUT
    (folder / "course_lib").mkdir(parents=True)
    (folder / "course_lib" / "colab.py").write_text("")
    (folder / "my_notes.txt").write_text("a student's file")  # must not be lost
    said = []
    colab.setup(folder, run=tools, cuda_available=True, say=said.append)
    assert not colab._missing_files(folder)
    (aside,) = tmp_path.glob(f"{colab.CHECKOUT}.incomplete-*")
    assert (aside / "my_notes.txt").read_text() == "a student's file"
    assert (
        said[0]
        == f"{colab.CHECKOUT} was incomplete (no pyproject.toml); it is kept as {aside.name}."
    )
    assert "fetched now, installed now" in said[-1] and "commit 1a2b3c4" in said[-1]
    assert tools.called("git", "clone") == 1 and folder in tools.installed
    assert sys.path[0] == str(folder)


def test_a_failed_download_stops_with_one_message_and_leaves_no_half_folder(tmp_path, monkeypatch):
    failing = FakeTools(clone_fails=True)
    monkeypatch.setattr(colab, "_installed_from", lambda folder: False)
    folder = tmp_path / colab.CHECKOUT
    with pytest.raises(colab.SetupError, match="Could not download the course") as raised:
        colab.setup(folder, run=failing, cuda_available=True, say=lambda text: None)
    assert "Could not resolve host" in str(raised.value)
    assert "run this cell again" in str(raised.value)
    assert not folder.exists() and not list(tmp_path.glob("*fetch*"))
    assert failing.called(sys.executable, "-m", "pip") == 0


def test_a_second_run_changes_nothing(tmp_path, tools):
    folder = tmp_path / colab.CHECKOUT
    make_checkout(folder)
    colab.setup(folder, run=tools, cuda_available=True, say=lambda text: None)
    commands = len(tools.commands)
    # The cell inserts the folder again on every run; setup keeps one entry of it.
    sys.path.insert(0, str(folder))
    said = []
    colab.setup(folder, run=tools, cuda_available=True, say=said.append)
    assert tools.called("git", "clone") == 0
    assert [command[:2] for command in tools.commands[commands:]] == [["git", "-C"]]
    assert "already installed" in said[-1]
    assert sys.path.count(str(folder)) == 1 and sys.path[0] == str(folder)


def test_the_install_keeps_the_runtimes_torch(tmp_path, tools):
    import torch

    folder = tmp_path / colab.CHECKOUT
    make_checkout(folder)
    seen = []

    def reading_constraints(command, **options):
        if "pip" in command:
            seen.append(Path(command[command.index("-c") + 1]).read_text())
        return tools(command, **options)

    colab.setup(folder, run=reading_constraints, cuda_available=True, say=lambda text: None)
    assert f"torch=={torch.__version__}" in seen[0].splitlines()


def test_a_failed_install_says_so(tmp_path, monkeypatch):
    broken = FakeTools(pip_fails=True)
    monkeypatch.setattr(colab, "_installed_from", lambda folder: False)
    folder = tmp_path / colab.CHECKOUT
    make_checkout(folder)
    with pytest.raises(colab.SetupError, match="Could not install course_lib.*No space left"):
        colab.setup(folder, run=broken, cuda_available=True, say=lambda text: None)


@pytest.mark.parametrize("gpu", [True, False])
def test_without_a_gpu_the_student_is_told_how_to_get_one(tmp_path, tools, gpu):
    folder = tmp_path / colab.CHECKOUT
    make_checkout(folder)
    said = []
    colab.setup(folder, run=tools, cuda_available=gpu, say=said.append)
    assert (colab.GPU_HINT in said) is not gpu
    assert len(said) == (1 if gpu else 2)


def test_installed_from_reads_pips_record_of_an_editable_install(tmp_path, monkeypatch):
    folder = tmp_path / colab.CHECKOUT
    record = {"url": folder.as_uri(), "dir_info": {"editable": True}}

    class Distribution:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    monkeypatch.setattr(
        colab.importlib.metadata, "distribution", lambda name: Distribution(json.dumps(record))
    )
    assert colab._installed_from(folder)
    assert not colab._installed_from(tmp_path / "elsewhere")
    record["dir_info"]["editable"] = False
    assert not colab._installed_from(folder)


def fake_git(tmp_path: Path, fails: bool) -> dict:
    """An environment whose `git clone URL DIR` makes DIR/course_lib/colab.py (or fails)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "git"
    body = (
        "echo 'fatal: could not resolve host' >&2; exit 128"
        if fails
        else ('dest="${@: -1}"; mkdir -p "$dest/course_lib"; touch "$dest/course_lib/colab.py"')
    )
    script.write_text(f"#!/bin/bash\necho clone >> {tmp_path / 'calls'}\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("before", "fails", "exit_ok", "clones"),
    [
        ("absent", False, True, 1),
        ("partial", False, True, 1),  # a folder without colab.py is moved aside, not cloned into
        ("complete", False, True, 0),
        ("absent", True, False, 1),
    ],
)
def test_the_cells_fetch_line(tmp_path, before, fails, exit_ok, clones):
    work = tmp_path / "content"
    work.mkdir()
    if before == "partial":
        (work / colab.CHECKOUT / ".git").mkdir(parents=True)
    elif before == "complete":
        make_checkout(work / colab.CHECKOUT)
    result = subprocess.run(
        ["sh", "-c", colab._FETCH], cwd=work, env=fake_git(tmp_path, fails), capture_output=True
    )
    assert (result.returncode == 0) is exit_ok, result.stderr
    calls = tmp_path / "calls"
    assert (len(calls.read_text().splitlines()) if calls.exists() else 0) == clones
    assert (work / colab.CHECKOUT / "course_lib" / "colab.py").exists() is exit_ok
    if before == "partial":
        (aside,) = work.glob(f"{colab.CHECKOUT}.incomplete-*")
        assert (aside / ".git").is_dir()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_lesson_starts_with_the_setup_cell_and_its_colab_badge(path):
    notebook = nbformat.read(path, as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first_code.source == colab.SETUP_CELL, f"{path.name}: copy colab.SETUP_CELL"
    assert config.colab_url(path.name) in notebook.cells[0].source
    assert f"https://{config.REPOSITORY}" in colab.SETUP_CELL
