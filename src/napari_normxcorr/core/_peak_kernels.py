"""Second peaks of stacked 2-D surfaces as one compiled loop (see
``_peaks.second_peaks`` for what they are and for the numpy path).

The numpy path makes the local-maximum mask of every surface in several
passes and then masks each main peak's box; here each surface is scanned
once, row by row, with the 3-wide row maxima of three rows at hand.
Importing this module compiles it (numba is then required: see
``_compiled``).
"""

from __future__ import annotations

import numba
import numpy as np

from ._compiled import JIT_OPTIONS

jit = numba.njit(**JIT_OPTIONS)


@jit
def _larger(a, b):
    """The larger of two values, NaN if either is (as np.maximum)."""
    if a != a or b != b:
        return np.float32(np.nan)
    return max(a, b)


@jit
def _row_maxima(surface, row, out):
    """The 3-wide maximum along `row` of `surface`, in float32 (as the
    numpy path compares), into `out`."""
    width = surface.shape[1]
    line = surface[row]
    for j in range(width):
        best = np.float32(line[j])
        if j > 0:
            best = _larger(best, np.float32(line[j - 1]))
        if j < width - 1:
            best = _larger(best, np.float32(line[j + 1]))
        out[j] = best


_SECOND_PEAKS = "void({}[:, :, ::1], int64[:, ::1], int64[:, ::1], int64[::1])"


# Surfaces of either precision of the transforms.
@numba.njit(
    [_SECOND_PEAKS.format("float64"), _SECOND_PEAKS.format("float32")],
    **JIT_OPTIONS,
)
def best_maxima_outside(surfaces, low, high, best):
    """For each surface (n, h, w), the flat index of its largest local
    maximum (no neighbour of the 3 × 3 around it larger, compared in
    float32) outside the box [low, high) (n, 2), the first in C order
    on ties, into `best`; -1 where there is none."""
    n, height, width = surfaces.shape
    maxima = np.empty((3, width), dtype=np.float32)
    for k in range(n):
        surface = surfaces[k]
        found, value = -1, -np.inf
        for row in range(min(2, height)):
            _row_maxima(surface, row, maxima[row % 3])
        for i in range(height):
            if i + 1 < height:
                _row_maxima(surface, i + 1, maxima[(i + 1) % 3])
            inside_rows = low[k, 0] <= i < high[k, 0]
            for j in range(width):
                if inside_rows and low[k, 1] <= j < high[k, 1]:
                    continue
                here = surface[i, j]
                if not here > value:
                    continue
                top = maxima[i % 3, j]
                if i > 0:
                    top = _larger(top, maxima[(i - 1) % 3, j])
                if i + 1 < height:
                    top = _larger(top, maxima[(i + 1) % 3, j])
                if np.float32(here) == top:
                    found, value = i * width + j, here
        best[k] = found
