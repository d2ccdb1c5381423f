"""Shared test set-up: the tests leave nothing behind in the clone they run from."""

import pytest

from course_lib import evaluate


@pytest.fixture(autouse=True)
def evaluation_cache_outside_the_clone(monkeypatch, tmp_path_factory):
    """Scores the tests compute are cached in pytest's temporary folder, shared by the whole
    session, instead of the clone's .cache/ (the notebooks, run by nbval, keep theirs)."""
    folder = tmp_path_factory.getbasetemp() / "evaluation-cache"
    monkeypatch.setenv(evaluate.CACHE_VARIABLE, str(folder))
