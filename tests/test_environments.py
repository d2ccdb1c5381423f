"""The ways to install the course give the versions the tests run with (issue: environments)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent


def pins(lines: list[str]) -> dict[str, str]:
    """``{name: version}`` of every ``name==version`` line (names lower-cased, _ as -)."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s;#]+).*", line)
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_environment_yml_installs_the_constraints_versions():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    dependencies = environment["dependencies"]
    pip_sections = [item["pip"] for item in dependencies if isinstance(item, dict)]
    assert len(pip_sections) == 1, dependencies
    pip_lines = pip_sections[0]
    # pip reads the constraints file, so every package it installs gets the pinned version ...
    assert "-c constraints.txt" in pip_lines, pip_lines
    assert any(line.startswith("-e") and ".[dev]" in line for line in pip_lines), pip_lines
    # ... and no version is written a second time, where it could drift from the pins.
    constraints = pins((ROOT / "constraints.txt").read_text().splitlines())
    assert {"torch", "torchvision", "numpy", "scipy"} <= constraints.keys()
    assert pins(pip_lines) == {}, "pin versions in constraints.txt only"
    conda_pins = [item for item in dependencies if isinstance(item, str) and "==" in item]
    assert conda_pins == [], "conda installs Python and pip only; pip installs the rest"


def test_the_torch_pin_is_written_once():
    """constraints.txt holds the torch pin; the Makefile's refresh reads it from there."""
    makefile = (ROOT / "Makefile").read_text()
    torch = pins((ROOT / "constraints.txt").read_text().splitlines())["torch"]
    for path in ("Makefile", "environment.yml", "pyproject.toml", ".ci/run"):
        assert f"torch=={torch}" not in (ROOT / path).read_text(), path
    assert "grep -E '^(torch|torchvision)==' constraints.txt" in makefile
