"""Files a training run leaves behind: checkpoints and shipped weights (lesson 03).

Two kinds of file, two sets of rules:

* **Checkpoints** (``run_dir/checkpoint.pt``, written by :func:`course_lib.train.train`) hold
  everything needed to continue a run. They are written *atomically* by :func:`save_atomic`:
  to a temporary file first, then renamed over the old one, so a crash or a full disk in the
  middle of a write leaves the previous checkpoint intact (the writer of lesson 01's mask
  files, :func:`course_lib.mask_files.write_via_temporary`).
* **Shipped weights** (``course_lib/weights/NAME.pt`` + ``NAME.json``, written by
  :func:`export_weights`) hold only the model's tensors. The JSON record next to them says
  which command produced them, on which data and profile, and the sha256 of the ``.pt`` file;
  :func:`load_weights` checks that hash before loading anything.

Everything is read back with ``torch.load(..., weights_only=True)``: a file can then only
contain tensors and plain Python values, never code that runs when it is opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_lib import __version__
from course_lib.mask_files import write_via_temporary

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where the course's trained weights live (package data, shipped with course_lib)."""

# Keys export_weights writes itself; the caller's metadata may not replace them.
RECORD_KEYS = ("name", "file", "sha256", "bytes", "model", "parameters", "course_lib_version")


def save_atomic(state: object, path: str | os.PathLike) -> Path:
    """``torch.save(state, path)``, atomically: a crash mid-write leaves the old file intact."""
    return write_via_temporary(path, lambda handle: torch.save(state, handle))


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, like :func:`save_atomic`."""
    return write_via_temporary(path, lambda handle: handle.write(text.encode("utf-8")))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; only tensors and plain values are accepted.

    A damaged file (cut short by a full disk or a copy that stopped) raises ``ValueError``
    saying how to start over, not the reader's internal error.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no checkpoint at {source}.")
    unreadable = (
        f"{source} is not a readable checkpoint: it is damaged (e.g. cut short by a full disk "
        "or an interrupted copy) or is not a course_lib checkpoint. Delete it, or start the "
        "run over with resume=False (command line: --no-resume), which replaces the run's files."
    )
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(unreadable) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(unreadable)
    return checkpoint


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_files(name_or_path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(.pt, .json)`` pair of a set of weights.

    A bare name such as ``"pconv_unet_small"`` means the shipped weights in
    :data:`WEIGHTS_DIR`; anything with a folder in it (``"runs/x.pt"``, an absolute path)
    is used as given. The ``.pt`` suffix is optional.
    """
    given = Path(name_or_path)
    stem = given.name[: -len(".pt")] if given.name.endswith(".pt") else given.name
    if not stem:
        raise ValueError(
            f"{str(name_or_path)!r} is not a weights name; use e.g. 'pconv_unet_small'."
        )
    folder = WEIGHTS_DIR if given.parent == Path(".") else given.parent
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def _model_name(model: nn.Module) -> str:
    return type(model).__qualname__


def first_difference(
    saved: Mapping[str, Sequence[int]], current: Mapping[str, Sequence[int]]
) -> str:
    """The first tensor name whose shape differs between two ``{name: shape}`` maps (saved
    names first): it tells a student which setting of the network changed."""
    names = list(dict.fromkeys([*saved, *current]))
    return next(name for name in names if saved.get(name) != current.get(name))


def _shapes(state: Mapping[str, Any]) -> dict[str, list[int]]:
    """``{name: shape}`` of the tensors of a state dict."""
    return {
        key: list(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)
    }


def _configuration_name(model: nn.Module, shapes: Mapping[str, list[int]]) -> str | None:
    """The named configuration of ``model``'s class (``from_config(name)``, one of its module's
    ``CONFIGS``) whose tensors have exactly ``shapes``, or ``None``.

    Each candidate is built on the "meta" device: shapes without numbers, so even the
    paper-sized networks cost nothing to compare.
    """
    model_class = type(model)
    configs = getattr(sys.modules.get(model_class.__module__), "CONFIGS", None)
    if not isinstance(configs, Mapping) or not hasattr(model_class, "from_config"):
        return None
    for name in configs:
        try:
            with torch.device("meta"):
                candidate = model_class.from_config(name)
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            continue  # cannot be built without real numbers: not a candidate
        if _shapes(candidate.state_dict()) == shapes:
            return name
    return None


def _describe_configuration(model: nn.Module, shapes: Mapping[str, list[int]]) -> str:
    """``"configuration 'small' (2,162,371 weights)"``, or a custom one's weight count."""
    count = sum(torch.Size(shape).numel() for shape in shapes.values())
    name = _configuration_name(model, shapes)
    which = f"configuration {name!r}" if name else "a custom configuration"
    return f"{which} ({count:,} weights)"


def _check_same_configuration(model: nn.Module, state: Mapping[str, Any], weights: Path) -> None:
    """Refuse weights of the same class but another configuration (depth, widths, ...),
    naming both configurations, instead of ``load_state_dict``'s list of size mismatches."""
    saved, current = _shapes(state), _shapes(model.state_dict())
    if saved == current:
        return
    model_name = _model_name(model)
    first = first_difference(saved, current)
    file_config = _configuration_name(model, saved)
    build = (
        f"Build it with {model_name}.from_config({file_config!r}) to load them."
        if file_config
        else "Build the model with the arguments the weights were made with."
    )
    raise ValueError(
        f"{weights.name} holds weights of another {model_name} configuration than this model: "
        f"the file has {_describe_configuration(model, saved)}, this model "
        f"{_describe_configuration(model, current)} ({first}: {saved.get(first)} in the file, "
        f"{current.get(first)} here). {build}"
    )


def _read_record(record_path: Path) -> dict[str, Any]:
    """The JSON record of a set of weights, as a dict; a damaged record raises ``ValueError``."""
    fix = (
        f"Restore it (e.g. `git checkout {record_path}` for shipped weights), or recreate the "
        "weights with `python -m course_lib.train MODEL --profile PROFILE --export NAME`."
    )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{record_path} is not a valid JSON weights record. {fix}") from error
    if not isinstance(record, dict):
        raise ValueError(
            f"{record_path} holds a JSON {type(record).__name__}, not the weights record (an "
            f"object with 'sha256', 'model' and 'command'). {fix}"
        )
    return record


def export_weights(
    model: nn.Module,
    path: str | os.PathLike,
    metadata: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Save ``model``'s weights as ``NAME.pt`` plus a ``NAME.json`` record; return the ``.pt`` path.

    * ``path``: a bare name (stored in ``course_lib/weights``) or a path (see
      :func:`weights_files`).
    * ``metadata``: plain JSON values describing how the weights were made. It must contain
      ``"command"``, the exact command that recreates the file (``python -m course_lib.train
      ...``); add the data, profile and steps used. The record adds the sha256 and size of the
      ``.pt`` file, the model class, its parameter count and the course_lib version.
    * Existing weights are never replaced unless ``overwrite=True``.
    """
    weights, record_path = weights_files(path)
    if not isinstance(metadata.get("command"), str) or not metadata["command"].strip():
        raise ValueError(
            "metadata must contain 'command': the exact command that recreates these weights, "
            "e.g. 'python -m course_lib.train pconv_unet_small --profile full --export NAME'."
        )
    reserved = sorted(set(metadata) & set(RECORD_KEYS))
    if reserved:
        raise ValueError(f"metadata may not set {reserved}: export_weights records those itself.")
    existing = [str(file) for file in (weights, record_path) if file.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"weights already exist: {', '.join(existing)}. Choose another name, or pass "
            "overwrite=True (command line: --overwrite) to replace them."
        )
    # Own copies on the CPU: a tensor that is a view would otherwise save its whole storage.
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    save_atomic(state, weights)
    record = {
        "name": weights.stem,
        "file": weights.name,
        "sha256": file_sha256(weights),
        "bytes": weights.stat().st_size,
        "model": _model_name(model),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "course_lib_version": __version__,
        **metadata,
    }
    write_text_atomic(json.dumps(record, indent=2) + "\n", record_path)
    return weights


def load_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load weights written by :func:`export_weights` into ``model``; return their record.

    The sha256 of the ``.pt`` file is checked against its ``.json`` record *before* the file
    is opened; a missing file, a hash mismatch or a record of another model class raises an
    error that names the command recreating the weights, and weights of another configuration
    of the same class (another depth or width) an error naming both configurations.
    """
    weights, record_path = weights_files(path)
    if not record_path.is_file():
        available = sorted(file.stem for file in record_path.parent.glob("*.json"))
        raise FileNotFoundError(
            f"no weights record {record_path}. Weights are made by "
            "`python -m course_lib.train MODEL --profile PROFILE --export NAME`; available in "
            f"{record_path.parent}: {available or 'none'}."
        )
    record = _read_record(record_path)
    command = record.get("command", "(no command recorded)")
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} is missing (its record {record_path.name} exists). Recreate it with:\n"
            f"    {command}"
        )
    actual = file_sha256(weights)
    if actual != record.get("sha256"):
        raise ValueError(
            f"{weights} has sha256 {actual}, but {record_path.name} records "
            f"{record.get('sha256')}: the file is damaged or was replaced. Recreate it with:\n"
            f"    {command}"
        )
    if record.get("model") != _model_name(model):
        raise ValueError(
            f"{weights.name} holds weights of a {record.get('model')}, not of a "
            f"{_model_name(model)}; build that model class to load them."
        )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    _check_same_configuration(model, state, weights)
    model.load_state_dict(state)
    return record
