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


def optional_cv2():
    """OpenCV if installed (a benchmark-only dependency), else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2
