"""Timing helpers shared by the benchmark scripts."""

import sys
import time
from pathlib import Path

import numpy as np

# The slow references (the seed's formula) live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def median_time(function, repeats=5, budget=20.0):
    """Median wall time of `function()` over `repeats` calls."""
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
        if time.perf_counter() - start > budget:
            break
    return float(np.median(times))


def paired_ratios(functions, reference, repeats=5):
    """Per repeat, each of `functions` timed right beside `reference`.

    On a shared machine whose speed drifts by a factor of two within
    minutes, a ratio of two runs made seconds apart is steadier than a
    ratio of medians taken minutes apart. Returns, per name, the median
    seconds of the function, of the reference, and the ratios (function
    time / reference time, one per repeat).
    """
    timed = {name: ([], [], []) for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            ours, theirs, ratios = timed[name]
            ours.append(_seconds(function))
            theirs.append(_seconds(reference))
            ratios.append(ours[-1] / theirs[-1])
    return {
        name: (float(np.median(ours)), float(np.median(theirs)), ratios)
        for name, (ours, theirs, ratios) in timed.items()
    }


def _seconds(function):
    begin = time.perf_counter()
    function()
    return time.perf_counter() - begin


def optional_cv2():
    """OpenCV if installed (a benchmark-only dependency), else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2
