"""Benchmarks: ``python -m course_lib.bench NAME`` prints one JSON line per measurement.

Machines are shared and noisy, so every figure is a median over repeats, and speed targets
are stated as ratios against a plain-PyTorch (or OpenCV) baseline measured in the same run.
Each benchmark is a function registered under a name with :func:`benchmark`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch

Measurement = dict
BENCHMARKS: dict[str, Callable[[argparse.Namespace], Iterator[Measurement]]] = {}


def benchmark(name: str):
    """Register a generator function that yields one dict per measurement."""

    def register(function: Callable[[argparse.Namespace], Iterator[Measurement]]):
        BENCHMARKS[name] = function
        return function

    return register


def median_seconds(function: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls after ``warmup`` calls.

    CUDA work is synchronised before the clock is read, so GPU timings are honest.
    """
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_medians(*functions: Callable[[], object], repeats: int) -> tuple[float, ...]:
    """Median seconds of each function, the functions timed in turn, one call each per round,
    so that the load of a shared machine falls on all alike (their ratios are what gets
    reported). Each round starts with the next function, so that none always runs first,
    with cold caches, or always right after the same other one."""
    times: list[list[float]] = [[] for _ in functions]
    for round_index in range(repeats):
        for offset in range(len(functions)):
            which = (round_index + offset) % len(functions)
            times[which].append(median_seconds(functions[which], repeats=1, warmup=0))
    return tuple(statistics.median(recorded) for recorded in times)


def emit(benchmark_name: str, **fields: object) -> Measurement:
    """Print one measurement as a JSON line and return it."""
    record = {"bench": benchmark_name, **fields}
    print(json.dumps(record), flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    # Import the modules that register benchmarks; each adds its own names to BENCHMARKS.
    from course_lib import bench_suites  # noqa: F401

    parser = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__)
    parser.add_argument("name", help=f"benchmark to run: one of {sorted(BENCHMARKS)}")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.name not in BENCHMARKS:
        parser.error(f"unknown benchmark {args.name!r}; choose one of {sorted(BENCHMARKS)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for record in BENCHMARKS[args.name](args):
        emit(args.name, **record)
    return 0


if __name__ == "__main__":
    # Run as `python -m course_lib.bench`, this file is the module __main__; the suites
    # register into `course_lib.bench` proper, so hand over to that module's main.
    from course_lib.bench import main as registered_main

    sys.exit(registered_main())
