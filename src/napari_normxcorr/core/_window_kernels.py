"""Window sums of 2-D images as compiled loops (see ``_window_sums`` for
the method and the numpy path).

The numpy path makes about ten passes over every strip of rows (box sums
from the tables' corners, running means, the variance, the flat test,
the square root, the division, the clip); here each row of windows is
made in one pass from the tables, with running sums along it. The tables
themselves are the same prefix sums down the columns. Importing this
module compiles it (numba is then required: see ``_compiled``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._compiled import JIT_OPTIONS

jit = numba.njit(**JIT_OPTIONS)


def _column_sums_signatures():
    """Images of either float precision, taken as read-only: writable
    ones pass too, and an image read from a file may be read-only."""
    tables = numba.float64[:, ::1]
    return [
        numba.float64(
            numba.types.Array(dtype, 2, "A", readonly=True),
            numba.float64,
            tables,
            tables,
        )
        for dtype in (numba.float32, numba.float64)
    ]


@numba.njit(_column_sums_signatures(), **JIT_OPTIONS)
def column_sums(image, mean, values, squares):
    """Prefix sums down the columns of `image` - `mean` and of its
    squares, into `values` and `squares` (a row of zeros first); returns
    the sum of all the squares."""
    rows, width = image.shape
    for j in range(width):
        values[0, j] = 0.0
        squares[0, j] = 0.0
    for i in range(rows):
        for j in range(width):
            value = image[i, j] - mean
            values[i + 1, j] = values[i, j] + value
            squares[i + 1, j] = squares[i, j] + value * value
    return squares[rows].sum()


@jit
def _row_energies(values, squares, row, m0, m1, sums, energies):
    """n * variance of the windows (m0, m1) whose first row is `row`, at
    every valid column, into `energies`; `sums` is scratch, 2 × width."""
    width = values.shape[1]
    for j in range(width):
        sums[0, j] = values[row + m0, j] - values[row, j]
        sums[1, j] = squares[row + m0, j] - squares[row, j]
    total = square = 0.0
    for j in range(m1):
        total += sums[0, j]
        square += sums[1, j]
    count = float(m0 * m1)
    energies[0] = square - total * total / count
    for k in range(1, width - m1 + 1):
        total += sums[0, k + m1 - 1] - sums[0, k - 1]
        square += sums[1, k + m1 - 1] - sums[1, k - 1]
        energies[k] = square - total * total / count


@numba.njit(
    "void(float64[:, ::1], float64[:, ::1], int64, int64, int64, int64,"
    " float64[:, :])",
    **JIT_OPTIONS,
)
def window_energies(values, squares, first, stop, m0, m1, out):
    """n * variance of the windows (m0, m1) starting in rows first:stop
    of the tables' image, into `out` (its rows from 0)."""
    sums = np.empty((2, values.shape[1]))
    energies = np.empty(values.shape[1] - m1 + 1)
    for row in range(first, stop):
        _row_energies(values, squares, row, m0, m1, sums, energies)
        out[row - first] = energies


_NORMALISE = (
    "void(float64[:, ::1], float64[:, ::1], int64, int64, int64, int64,"
    " float64, boolean, float64, {}[:, :], float64[:, :])"
)


# Numerators of either precision of the transforms.
@numba.njit(
    [_NORMALISE.format("float64"), _NORMALISE.format("float32")],
    **JIT_OPTIONS,
)
def normalise(
    values, squares, first, stop, m0, m1, energy, flat, floor, rows, out
):
    """NCC of the windows (m0, m1) starting in rows first:stop from their
    numerators `rows` (the valid windows from column m1 - 1) and a
    template of `energy`, into `out`, clipped to [-1, 1]. Windows whose n
    * variance is at or below `floor` (rounding), and all when the
    template is `flat`, score numerator / inf (0)."""
    sums = np.empty((2, values.shape[1]))
    energies = np.empty(values.shape[1] - m1 + 1)
    for row in range(first, stop):
        _row_energies(values, squares, row, m0, m1, sums, energies)
        numerators = rows[row]
        target = out[row]
        for k in range(out.shape[1]):
            window = energies[k]
            norm = math.inf
            if window > floor and not flat:
                norm = math.sqrt(window * energy)
            score = numerators[k + m1 - 1] / norm
            target[k] = min(max(score, -1.0), 1.0) if score == score else score
