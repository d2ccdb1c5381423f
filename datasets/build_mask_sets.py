"""Build the course's fixed evaluation mask sets into datasets/masks/ (lesson 01).

    python datasets/build_mask_sets.py            # refuses to replace existing files
    python datasets/build_mask_sets.py --force    # rebuild and replace them

For every size (64 and 256), every kind below and every coverage band of the
partial-convolution paper (``course_lib.masks.COVERAGE_BANDS``), it draws N masks whose
coverage lies inside the band: each mask's target is drawn uniformly from the band shrunk by
the generator's tolerance on both sides, so the mask always lands inside its band.

Kinds: "box" (LaMa's boxes), "irregular" (medium brush strokes), "mixed" (LaMa's training
mix: thick strokes or boxes), "shape" (outlines of procedural-scene objects) and "patches"
(random square cells): the families an inpainting method is compared on in lesson 07.

Output, one file per size and kind, ``datasets/masks/<size>/<kind>.npz`` with, per band
``i``: ``band<i>`` the masks as ``np.packbits`` rows ``(N, ceil(H * W / 8))`` (1 = hole,
raster order), ``coverage<i>`` ``(N,)``, ``target<i>`` ``(N,)`` and ``touches_border<i>``
``(N,)``; plus ``size`` ``(H, W)`` and ``bands`` ``(6, 2)``. ``datasets/masks/manifest.json``
records the sha256 of every file, this command, the seeds, N and the versions used.
``course_lib.masks.load_eval_set(kind, size, band)`` reads them back and checks the sha256.

Everything is seeded and the archives carry no time stamps, so running the script twice
gives byte-identical files (with the same library versions).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import skimage
import torch

import course_lib
from course_lib import masks
from course_lib.mask_files import (
    BUILD_COMMAND,
    EVAL_SET_KINDS,
    MANIFEST_NAME,
    npz_bytes,
    sha256_hex,
    write_atomically,
)

OUT = Path(__file__).resolve().parent / "masks"
BASE_SEED = 2018  # the year of the partial-convolution paper, whose bands these are
# Per size: N masks in each band of each kind, enough for the full profile's 100 per cell.
MASKS_PER_BAND = {64: 128, 256: 128}
KINDS = EVAL_SET_KINDS  # kind -> options passed to masks.generate


def band_seed(size: int, kind: str, band: int) -> np.random.SeedSequence:
    """The seed of one (size, kind, band) cell: independent of which other cells are built."""
    return np.random.SeedSequence([BASE_SEED, size, zlib.crc32(kind.encode()), band])


def build_set(size: int, kind: str) -> dict[str, np.ndarray]:
    """The arrays of ``<size>/<kind>.npz``: N masks per coverage band and their statistics."""
    count = MASKS_PER_BAND[size]
    arrays = {
        "size": np.array([size, size], dtype=np.int64),
        "bands": np.array(masks.COVERAGE_BANDS, dtype=np.float64),
    }
    for band, (low, high) in enumerate(masks.COVERAGE_BANDS):
        rng = np.random.default_rng(band_seed(size, kind, band))
        # Shrunk by the tolerance, so that a mask within tolerance of its target stays inside.
        margin = masks.COVERAGE_TOLERANCE
        targets = rng.uniform(low + margin, high - margin, count)
        seeds = rng.integers(2**62, size=count)
        batch = torch.cat(
            [
                masks.generate(kind, 1, size, size, float(t), seed=int(s), **KINDS[kind])
                for t, s in zip(targets, seeds, strict=True)
            ]
        )  # (N, 1, H, W)
        if masks.band_of(batch) != [band] * count:
            raise RuntimeError(f"{kind} masks at {size} left band {band}; this is a bug.")
        flat = batch[:, 0].numpy().astype(bool).reshape(count, -1)  # (N, H * W)
        arrays[f"band{band}"] = np.packbits(flat, axis=1)
        arrays[f"coverage{band}"] = masks.coverage(batch).numpy()
        arrays[f"target{band}"] = targets.astype(np.float32)
        arrays[f"touches_border{band}"] = masks.touches_border(batch).numpy()
    return arrays


def manifest(files: dict[str, bytes]) -> dict:
    """What was built, how, and the sha256 of every file (no time stamps: reproducible)."""
    return {
        "description": "Fixed evaluation masks per coverage band (course_lib lesson 01); "
        "read them with course_lib.masks.load_eval_set(kind, size, band).",
        "command": BUILD_COMMAND,
        "course_lib_version": course_lib.__version__,
        "built_with": {
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "scikit-image": skimage.__version__,
            "torch": torch.__version__.split("+")[0],
        },
        "base_seed": BASE_SEED,
        "seeding": "each (size, kind, band) draws its targets and mask seeds from "
        "numpy.random.SeedSequence([base_seed, size, zlib.crc32(kind), band]); mask j is "
        "masks.generate(kind, 1, size, size, target_j, seed=seed_j, **options)",
        "bands": [list(band) for band in masks.COVERAGE_BANDS],
        "tolerance": masks.COVERAGE_TOLERANCE,
        "masks_per_band": {str(size): count for size, count in MASKS_PER_BAND.items()},
        "kinds": KINDS,
        "format": "per band i: band<i> = np.packbits of the (N, H*W) masks (1 = hole, raster "
        "order), coverage<i>, target<i>, touches_border<i> (N,); size = (H, W); bands (6, 2)",
        "files": {
            name: {"sha256": sha256_hex(data), "bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    # Subsets are for quick checks (the tests); the committed sets are built without them.
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(MASKS_PER_BAND), choices=list(MASKS_PER_BAND)
    )
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    args = parser.parse_args(argv)
    names = [f"{size}/{kind}.npz" for size in args.sizes for kind in args.kinds]
    existing = [name for name in [*names, MANIFEST_NAME] if (args.out / name).exists()]
    if existing and not args.force:
        print(
            f"refusing to overwrite {len(existing)} existing file(s) in {args.out} "
            f"({', '.join(existing)}); rerun with --force to rebuild them.",
            file=sys.stderr,
        )
        return 1
    files = {}
    for name in names:
        size, kind = int(name.split("/")[0]), name.split("/")[1].removesuffix(".npz")
        files[name] = npz_bytes(build_set(size, kind))
        write_atomically(args.out / name, files[name], overwrite=args.force)
        print(f"{name}: {len(files[name]) / 1024:.0f} KiB, sha256 {sha256_hex(files[name])}")
    text = json.dumps(manifest(files), indent=2, sort_keys=True) + "\n"
    write_atomically(args.out / MANIFEST_NAME, text.encode(), overwrite=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
