"""The benchmark suites, one function per ``python -m course_lib.bench NAME``.

Each suite yields dicts; :mod:`course_lib.bench` prints them as JSON lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from course_lib.bench import benchmark, median_seconds


@benchmark("data")
def data_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Seconds to generate a batch of 64 procedural scenes / photo patches at 64x64."""
    from course_lib.data import PhotoPatches, ProceduralScenes

    scenes = ProceduralScenes(size=64, length=64, seed=0)
    seconds = median_seconds(lambda: scenes.batch(0, 64), repeats=args.repeats)
    yield {"what": "ProceduralScenes.batch", "batch": 64, "size": 64, "seconds": round(seconds, 4)}
    photos = PhotoPatches(patch_size=64, split="train", length=64, seed=0)
    seconds = median_seconds(lambda: photos.batch(0, 64), repeats=args.repeats)
    yield {"what": "PhotoPatches.batch", "batch": 64, "size": 64, "seconds": round(seconds, 4)}
