"""The compiled kernels (numba, the ``fast`` extra) against their numpy
paths, and what compiling and loading them costs.

- Ratios compiled / numpy (< 1: the kernels are faster), each run of the
  kernels timed right before a run of the numpy path, for `match_points`
  with its defaults and with whole pixels and no back-match (1000 points
  of a 3000² texture, radii 50 / 200), and for the whole-image NCC in
  'full' mode (2048² × 101²).
- Compiling from a cold cache and loading from a warm one, each in a
  fresh interpreter (its own NUMBA_CACHE_DIR); and, while a thread
  compiles or loads them, the longest time the main thread could not
  run (a 1 ms ticker: what a GUI would feel).

Run: python benchmarks/bench_kernels.py [--repeats N] [--quick]
"""

import functools
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy import ndimage

import _timing
from _timing import paired_ratios
from napari_normxcorr import match_points, normalized_cross_correlation
from napari_normxcorr.core._compiled import enabled, numpy_only

# Run in a fresh interpreter: warm the kernels up in a thread while the
# main thread ticks every millisecond; print the seconds the warm-up
# took and the longest gap between ticks.
_TICKER = """
import threading, time
from napari_normxcorr.core._compiled import warm_up_in_background
from napari_normxcorr.matching import KERNEL_MODULES
start = time.perf_counter()
thread = warm_up_in_background(KERNEL_MODULES)
last, gap = time.perf_counter(), 0.0
while thread.is_alive():
    time.sleep(0.001)
    now = time.perf_counter()
    gap, last = max(gap, now - last), now
print(time.perf_counter() - start, gap)
"""


def main():
    args = _timing.repeats_and_quick(__doc__)
    print(_timing.machine_line())
    if not enabled():
        print("numba is not installed or turned off: nothing to compare")
        return
    warm_up_rows()
    count = 200 if args.quick else 1000
    print(f"{'compiled / numpy':<58} {'median':>7}  pairs")
    for label, function in speed_rows(count).items():
        compiled, plain, ratios = paired_ratios(
            {label: function},
            functools.partial(_numpy_only, function),
            args.repeats,
        )[label]
        print(
            f"{label:<58} {np.median(ratios):6.2f}x  "
            + " ".join(f"{r:.2f}" for r in ratios)
            + f"   (compiled {compiled * 1e3:.0f} ms, numpy"
            f" {plain * 1e3:.0f} ms)"
        )


def _numpy_only(function):
    with numpy_only():
        function()


def speed_rows(count):
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(3000, 3000)), 1.5)
    moved = np.roll(base, (7, -12), axis=(0, 1))
    points = rng.uniform(200, 3000 - 201, size=(count, 2))
    radii = dict(template_radius=50, search_radius=200)
    run = functools.partial(match_points, base, moved, points, **radii)
    image = rng.random((2048, 2048))
    template = image[:101, :101].copy()
    rows = {
        f"match_points defaults, {count} points": run,
        "  whole pixels, no back-match": functools.partial(
            run, subpixel=False, check_consistency=False
        ),
        "whole image 2048² x 101² 'full'": functools.partial(
            normalized_cross_correlation, template, image, "full"
        ),
    }
    for function in rows.values():  # warm: kernels, plans, scratch
        function()
        _numpy_only(function)
    return rows


def warm_up_rows():
    """Compile from a cold cache, then load from it, in fresh
    interpreters: the time each took and the longest main-thread gap."""
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for what in ("compile (cold cache)", "load (warm cache)"):
            out = subprocess.run(
                [sys.executable, "-c", _TICKER],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            seconds, gap = (float(value) for value in out)
            print(
                f"{what:<22} {seconds:5.2f} s in a thread; the main thread"
                f" waited at most {gap * 1e3:.0f} ms"
            )


if __name__ == "__main__":
    main()
