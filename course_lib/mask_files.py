"""Masks on disk: lossless files, atomic writes and the fixed evaluation sets (lesson 01).

A mask file must give back exactly the 0/1 values that were saved. PNG and NPZ are lossless;
JPEG is refused, because its compression blurs the sharp hole edges into in-between grey
values, so the mask that comes back is not the mask that was saved.

* PNG holds one mask, white (255) = hole, as most mask files of the literature do.
* NPZ holds a batch ``(B, H, W)`` of 0/1 values under the key ``"hole"``.

Files are never overwritten unless asked (``overwrite=True``) and are written atomically:
to a temporary file in the same folder, then renamed over the target, so an interrupted
save never leaves half a file behind. :func:`write_via_temporary` is that writer; the
checkpoints and weights of lesson 03 are written by it too.

The fixed evaluation sets (masks per coverage band, built by
``python datasets/build_mask_sets.py``) are read with :func:`load_eval_set`, which checks
every file against the sha256 in the sets' manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from course_lib.validate import check_mask, check_number

LOSSLESS_SUFFIXES = (".png", ".npz")
LOSSY_SUFFIXES = (".jpg", ".jpeg")
NPZ_KEY = "hole"

# The evaluation sets live in the repository checkout, next to the package folder.
EVAL_SETS_ROOT = Path(__file__).resolve().parent.parent / "datasets" / "masks"
MANIFEST_NAME = "manifest.json"
BUILD_COMMAND = "python datasets/build_mask_sets.py"
# The mask families every method is scored on, with the options they are drawn with.
EVAL_SET_KINDS: dict[str, dict[str, str]] = {
    "box": {},
    "irregular": {"preset": "medium"},
    "mixed": {},
    "shape": {"source": "scenes"},
    "patches": {},
}


def _mask_suffix(path: Path) -> str:
    """The lower-case suffix of a mask file, checked: PNG or NPZ only."""
    suffix = path.suffix.lower()
    if suffix in LOSSY_SUFFIXES:
        raise ValueError(
            f"{path.name}: masks are never stored as JPEG, because its lossy compression turns "
            "the 0/1 hole values into in-between greys around every edge; use .png (one mask) "
            "or .npz (a batch)."
        )
    if suffix not in LOSSLESS_SUFFIXES:
        raise ValueError(
            f"{path.name}: unsupported mask file type {suffix!r}; use .png (one mask, white = "
            "hole) or .npz (a batch)."
        )
    return suffix


def _temporary_path(target: Path) -> Path:
    """A fresh temporary name next to ``target``: ``.NAME.<16 hex digits>.tmp`` (hidden)."""
    return target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"


def write_via_temporary(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    * Same folder: ``os.replace`` is then a rename within one file system, which is atomic, so
      ``path`` is always either the old file or the new one, whole. The data is flushed to
      disk (``os.fsync``) before the rename.
    * On any exception (a full disk, Ctrl-C, a failing ``write``) the temporary file is
      removed and ``path`` is untouched. Only a process killed outright leaves a temporary
      file behind; :func:`remove_stale_temporaries` clears those.
    * Opened with ``open(..., "xb")``, not ``tempfile``: the file gets the usual permissions
      (``0o666`` minus the umask, typically ``0o644``) instead of tempfile's private ``0o600``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(target)
    file = open(temporary, "xb")  # "x": never reuse a file that exists; not ours to remove
    try:
        with file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def remove_stale_temporaries(folder: str | os.PathLike, names: tuple[str, ...]) -> list[Path]:
    """Remove the temporary files that writes of ``names`` in ``folder`` left behind when
    their process was killed; return the files removed."""
    removed = []
    for name in names:
        for leftover in Path(folder).glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def write_atomically(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`write_via_temporary`).

    Refuses (``FileExistsError``) to replace an existing file unless ``overwrite=True``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists and would be overwritten; pass overwrite=True to replace "
            "it, or choose another name."
        )
    return write_via_temporary(path, lambda file: file.write(data))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (readable by ``np.load``) whose bytes depend only on ``arrays``.

    ``np.savez_compressed`` stamps each member with the current time; fixing the time stamp
    (and the other zip metadata) makes a rebuild byte-identical, so sha256 sums are stable.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # "Unix", whatever system builds the file
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as a hex string."""
    return hashlib.sha256(data).hexdigest()


def save(mask: torch.Tensor, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a mask ``(B, 1, H, W)`` losslessly: ``.png`` for one mask (white = hole), ``.npz``
    for any batch. Refuses JPEG, and existing files unless ``overwrite=True``."""
    path = Path(path)
    suffix = _mask_suffix(path)
    check_mask(mask)
    holes = mask.detach().cpu()[:, 0].numpy().astype(np.uint8)  # (B, H, W) 0/1
    if suffix == ".png":
        if holes.shape[0] != 1:
            raise ValueError(
                f"a PNG holds one mask, got a batch of {holes.shape[0]}; save each mask to its "
                "own PNG (mask[i : i + 1]) or the whole batch to one .npz file."
            )
        buffer = io.BytesIO()
        Image.fromarray(holes[0] * 255).save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        data = npz_bytes({NPZ_KEY: holes})
    return write_atomically(path, data, overwrite=overwrite)


def _read_png(path: Path) -> np.ndarray:
    """A PNG mask as values in ``[0, 1]``, ``(H, W)`` (colour images are turned grey)."""
    try:
        with Image.open(path) as picture:
            if picture.mode.startswith("I;16"):  # 16-bit grey
                return np.asarray(picture, dtype=np.float32) / 65535.0
            return np.asarray(picture.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"{path.name} is not a readable PNG image (not a picture, or a damaged one); "
            "save masks with course_lib.masks.save, or re-export the file from your editor."
        ) from error


def _read_npz(path: Path) -> np.ndarray:
    """The mask array of an NPZ file: key "hole", or its only array."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            if NPZ_KEY in names:
                return archive[NPZ_KEY]
            if len(names) == 1:
                return archive[names[0]]
    except ValueError as error:  # numpy refuses object arrays and pickles without allow_pickle
        raise ValueError(
            f"{path.name} holds Python objects (an array of dtype object, or pickled data), "
            "which mask files never do: they are read without unpickling, which could run "
            "code. Store the mask as numbers 0/1 (course_lib.masks.save does)."
        ) from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path.name} is not a readable .npz archive (damaged, or another kind of file); "
            "save masks with course_lib.masks.save."
        ) from error
    raise ValueError(
        f"{path.name} holds the arrays {names}; expected one array or one named {NPZ_KEY!r}."
    )


def _check_values(values: np.ndarray, path: Path) -> None:
    """Mask values must be finite numbers: strings cannot be thresholded, and NaN is above no
    threshold, so a NaN hole would silently become a known pixel."""
    if values.dtype.kind not in "buif":  # bool, unsigned, int, float
        raise ValueError(
            f"{path.name} holds values of dtype {values.dtype}; a mask holds numbers, 0 = known "
            "and 1 = hole. Convert it, e.g. (array == 'hole').astype(np.uint8)."
        )
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(
            f"{path.name} holds NaN or infinite values; a mask holds 0 (known) or 1 (hole) in "
            "every pixel. Replace them first, e.g. np.nan_to_num(array, nan=1.0) for holes."
        )


def load(path: str | os.PathLike, threshold: float = 0.5) -> torch.Tensor:
    """Load a mask file as float32 ``(B, 1, H, W)``, 1 = hole, thresholded explicitly.

    A pixel is a hole where its value is above ``threshold``, a number in ``[0, 1)``: PNG
    values are first scaled to ``[0, 1]`` (white = hole), NPZ values are compared as stored.
    Thresholding makes a file with in-between values (a resized or hand-painted mask) binary
    again. Files that are not masks (not a picture, strings, NaN, pickled objects) are refused.
    """
    threshold = check_number(
        threshold,
        "threshold",
        minimum=0.0,
        below=1.0,
        hint="Pixels whose value (PNG: scaled to [0, 1]) is above it become holes; 0.5 splits "
        "black from white, and 1 or more would leave no hole at all.",
    )
    path = Path(path)
    suffix = _mask_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mask file at {path}; check the path.")
    values = _read_png(path) if suffix == ".png" else _read_npz(path)
    _check_values(values, path)
    if values.ndim == 4 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3:
        raise ValueError(
            f"{path.name} holds an array of shape {values.shape}; expected (H, W), (B, H, W) "
            "or (B, 1, H, W)."
        )
    return torch.from_numpy(values > threshold).float().unsqueeze(1)  # (B, 1, H, W)


def load_eval_set(
    kind: str, size: int, band: int | None = None, root: str | os.PathLike | None = None
) -> torch.Tensor:
    """The fixed evaluation masks of ``kind`` at ``size x size``: float32 ``(N, 1, H, W)``.

    ``band`` picks one coverage band (an index into ``course_lib.masks.COVERAGE_BANDS``);
    ``None`` returns all bands, band 0 first, the same number of masks per band. ``root`` is
    the folder holding ``manifest.json`` (default: ``datasets/masks`` of the repository
    checkout). Each file's sha256 is checked against the manifest before it is used.
    """
    root = EVAL_SETS_ROOT if root is None else Path(root)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"no evaluation mask sets at {root} (missing {MANIFEST_NAME}). They live in the "
            "course repository's datasets/masks/ folder, which an installed course_lib does "
            f"not include: clone the repository, or build them with `{BUILD_COMMAND}`."
        )
    files = json.loads(manifest_path.read_text())["files"]
    name = f"{size}/{kind}.npz"
    if name not in files:
        raise ValueError(
            f"no evaluation set {name!r} in {manifest_path}; available: {sorted(files)}."
        )
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is listed in the manifest but missing; restore it with git, or rebuild "
            f"the sets with `{BUILD_COMMAND} --force`."
        )
    data = path.read_bytes()
    if sha256_hex(data) != files[name]["sha256"]:
        raise ValueError(
            f"{path} has changed: its sha256 does not match {manifest_path}, so results on it "
            "would not be comparable. Restore it with `git checkout datasets/masks`, or rebuild "
            f"all sets with `{BUILD_COMMAND} --force`."
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:  # the bytes just checked
        height, width = archive["size"].tolist()
        count = len(archive["bands"])
        if band is not None and (not isinstance(band, int) or not 0 <= band < count):
            raise ValueError(f"band must be an int from 0 to {count - 1} or None, got {band!r}.")
        chosen = range(count) if band is None else [band]
        packed = [archive[f"band{index}"] for index in chosen]  # (N, ceil(H * W / 8)) each
    bits = np.concatenate([np.unpackbits(p, axis=1, count=height * width) for p in packed])
    return torch.from_numpy(bits.reshape(-1, 1, height, width).astype(np.float32))
