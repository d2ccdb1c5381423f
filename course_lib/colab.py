"""Setting the course up on Google Colab: the first cell of every lesson (lesson 00).

A Colab runtime starts with PyTorch but without the course. The first cell of each lesson
(:data:`SETUP_CELL`, the same in every notebook) does the one thing that cannot wait for the
library: it fetches the repository if no checkout is there, moving an incomplete one aside
first (an interrupted clone must not wedge every later run). Everything else is
:func:`setup`, which the cell then calls:

1. check that the checkout is complete (a half-written one is moved aside, not deleted, and
   fetched again);
2. install ``course_lib`` from it, editable, keeping Colab's own torch and torchvision
   (pip gets them as constraints), unless that install is already there;
3. put the checkout first on ``sys.path`` exactly once (an editable install is only seen by a
   new kernel);
4. say in one line what it did, and in another when there is no GPU, how to get one.

Any failure stops with one :class:`SetupError` saying what went wrong and what to do. Running
the cell again is always safe: a complete, installed checkout is left as it is.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from course_lib.config import REPOSITORY

CHECKOUT = "course-kit"  # the folder the course is fetched into, in Colab's working directory
DISTRIBUTION = "course_lib"  # the project name in pyproject.toml
# What a complete checkout holds: the package, its build file and the fixed evaluation masks.
REQUIRED_FILES = (
    "pyproject.toml",
    "course_lib/__init__.py",
    "course_lib/colab.py",
    "datasets/masks",
)
GPU_HINT = (
    "No GPU in this runtime, so the lessons run their quick profile. For the full profile choose "
    "Runtime > Change runtime type > a GPU, then run the notebook again."
)

_FETCH = (
    f"test -f {CHECKOUT}/course_lib/colab.py || "
    f"(test ! -e {CHECKOUT} || mv {CHECKOUT} {CHECKOUT}.incomplete-$(date +%s); "
    f"git clone --quiet --depth 1 https://{REPOSITORY} {CHECKOUT})"
)
SETUP_CELL = f"""\
# Setup. On Colab: fetch the course and install it (course_lib/colab.py says how); locally
# `make lab` already did both.
import sys

if "google.colab" in sys.modules:
    !{_FETCH}
    if _exit_code:  # noqa: F821 (IPython sets it: the exit status of the ! line)
        raise RuntimeError("Could not download the course (see git's message above): check that this runtime is online, then run this cell again.")
    sys.path.insert(0, "{CHECKOUT}")
    from course_lib import colab

    colab.setup()

from course_lib import config

session = config.setup(seed=0)
profile, device = session.profile, session.device"""
"""The first code cell of every lesson (a test checks each notebook against it)."""

Runner = Callable[..., subprocess.CompletedProcess]


class SetupError(RuntimeError):
    """The course could not be set up; the message says why and what to do."""


def setup(
    checkout: str | Path = CHECKOUT,
    *,
    run: Runner = subprocess.run,
    cuda_available: bool | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Make ``checkout`` a complete, installed, importable course on Colab; return what it did.

    ``run`` runs git and pip (tests pass a fake); ``cuda_available`` defaults to asking torch.
    """
    folder = Path(checkout).absolute()
    fetched = ""
    missing = _missing_files(folder)
    if missing:
        if folder.exists():
            aside = _move_aside(folder)
            say(f"{folder.name} was incomplete (no {missing[0]}); it is kept as {aside.name}.")
        _clone(folder, run)
        fetched = "fetched now, "
    for kept in sorted(folder.parent.glob(f"{folder.name}.incomplete-*")):
        say(f"An incomplete earlier copy is kept as {kept.name}; delete it when you like.")
    commit = _git_commit(folder, run)
    if _installed_from(folder):
        installed = "already installed"
    else:
        _install(folder, run)
        installed = "installed now"
    _put_first_on_path(folder)
    import torch

    summary = (
        f"The course is ready: {folder.name} at commit {commit} ({fetched}{installed}, "
        f"with this runtime's torch {torch.__version__})."
    )
    say(summary)
    if not (torch.cuda.is_available() if cuda_available is None else cuda_available):
        say(GPU_HINT)
    return summary


def _missing_files(folder: Path) -> list[str]:
    """The entries of :data:`REQUIRED_FILES` that ``folder`` lacks (all of them if absent)."""
    return [name for name in REQUIRED_FILES if not (folder / name).exists()]


def _move_aside(folder: Path) -> Path:
    """Rename an incomplete checkout so that nothing in it is lost; return its new path."""
    aside = folder.with_name(f"{folder.name}.incomplete-{int(time.time())}")
    while aside.exists():
        aside = aside.with_name(aside.name + "x")
    folder.rename(aside)
    return aside


def _clone(folder: Path, run: Runner) -> None:
    """Clone the course into a temporary folder beside ``folder``, then rename it into place,
    so that an interrupted clone never leaves a half-written ``folder``."""
    temporary = Path(tempfile.mkdtemp(prefix=f"{folder.name}.fetch-", dir=folder.parent))
    result = run(
        ["git", "clone", "--quiet", "--depth", "1", f"https://{REPOSITORY}", str(temporary)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or _missing_files(temporary):
        shutil.rmtree(temporary, ignore_errors=True)
        reason = _last_line(result.stderr) or "the clone is incomplete"
        raise SetupError(
            f"Could not download the course from https://{REPOSITORY} ({reason}). Check that "
            "this runtime is online, then run this cell again."
        )
    temporary.rename(folder)


def _git_commit(folder: Path, run: Runner) -> str:
    """The short commit of the checkout, or "unknown" when git cannot tell."""
    result = run(
        ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def _installed_from(folder: Path) -> bool:
    """True if ``course_lib`` is installed in editable mode from ``folder``."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    direct_url = distribution.read_text("direct_url.json")
    if not direct_url:
        return False
    origin = json.loads(direct_url)
    return origin.get("url") == folder.as_uri() and origin.get("dir_info", {}).get(
        "editable", False
    )


def _install(folder: Path, run: Runner) -> None:
    """``pip install -e folder`` with this runtime's torch and torchvision held as they are."""
    import torch
    import torchvision

    held = f"torch=={torch.__version__}\ntorchvision=={torchvision.__version__}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write(held)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-c", constraints.name, "-e", str(folder),
    ]  # fmt: skip
    try:
        result = run(command, capture_output=True, text=True)
    finally:
        Path(constraints.name).unlink(missing_ok=True)  # also when pip could not be started
    if result.returncode != 0:
        raise SetupError(
            f"Could not install course_lib from {folder.name} ({_last_line(result.stderr)}). "
            "Run this cell again; if it fails the same way, use Runtime > Disconnect and delete "
            "runtime, then start the notebook again."
        )


def _put_first_on_path(folder: Path) -> None:
    """``folder`` first on ``sys.path``, once (the cell's relative entry counts as it)."""
    others = [entry for entry in sys.path if not entry or Path(entry).absolute() != folder]
    sys.path[:] = [str(folder), *others]


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
