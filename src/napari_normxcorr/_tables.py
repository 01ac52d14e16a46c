"""Summed-area tables: the local variance of any window of one image plane.

When many search windows lie in one plane, their running sums (the NCC's
denominator) repeat the same additions over and over: one table of the
plane's values and one of their squares, built once, give every window's
sums by 2**d lookups per output (Crow 1984; Lewis 1995).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._ncc import _FLAT_TOLERANCE

# Two float64 tables of this many pixels take 256 MiB: larger planes (and
# lazy arrays) keep the running sums per window, which need no memory.
MAX_TABLE_PIXELS = 2**24


class PlaneTables:
    """Summed-area tables of one plane's values and squares.

    The values are centred on the plane mean first, which keeps the sums
    of squares far from where float64 loses the variance of a window;
    what rounding is left sets `noise`, the n * variance below which a
    window counts as flat.

    Parameters
    ----------
    plane : ndarray
        Finite pixel values, with as many axes as are matched.
    """

    def __init__(self, plane: np.ndarray):
        inner = (slice(1, None),) * plane.ndim
        self.sums = _table_of(plane.shape)
        values = self.sums[inner]
        values[...] = plane
        values -= values.mean()
        biggest = max(float(values.max()), -float(values.min()))
        self.squares = _table_of(plane.shape)
        np.square(values, out=self.squares[inner])
        # numpy releases the GIL: the two tables fill side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(_accumulate, [values, self.squares[inner]]))
        energy = float(self.squares.flat[-1])
        # A lookup adds 2**d table entries, each a long running sum: its
        # error is a few eps of the plane's totals; n * variance subtracts
        # sums**2 / n, whose error is 2 |mean| times that of the sums
        # (sum |values| is at most sqrt(size * energy), Cauchy-Schwarz).
        self.noise = (
            2**plane.ndim
            * _FLAT_TOLERANCE
            * (energy + 2 * biggest * np.sqrt(plane.size * energy))
        )

    def variance(self, start, box, out: np.ndarray, scratch: np.ndarray):
        """n * variance of every `box`-shaped window, 'valid' mode, in `out`.

        Output element p covers the box that starts at ``start + p``.
        `scratch` is an array of the same shape to work in.
        """
        sums = _box_sums(self.sums, start, box, scratch)
        energy = _box_sums(self.squares, start, box, out)
        np.square(sums, out=sums)
        sums /= float(np.prod(box))
        energy -= sums
        return energy


def _table_of(shape) -> np.ndarray:
    """Zeros for a table of `shape`, plus the leading zeros on each axis."""
    return np.zeros(tuple(s + 1 for s in shape))


def _accumulate(values: np.ndarray) -> None:
    """Running sums along every axis, in place: a summed-area table."""
    np.cumsum(values, axis=-1, out=values)
    for axis in range(values.ndim - 1):
        # Whole-row additions: numpy's accumulate along a strided axis is
        # several times slower.
        rows = np.moveaxis(values, axis, 0)
        for i in range(1, len(rows)):
            np.add(rows[i - 1], rows[i], out=rows[i])


def _box_sums(table, start, box, out) -> np.ndarray:
    """Sums over boxes by inclusion-exclusion of the table's corners."""
    d = len(box)
    corners = sorted(
        itertools.product((0, 1), repeat=d), key=lambda c: -sum(c)
    )
    for k, corner in enumerate(corners):
        part = table[
            tuple(
                slice(s + c * m, s + c * m + o)
                for s, c, m, o in zip(start, corner, box, out.shape)
            )
        ]
        if k == 0:
            # The far corner, always added: it sums the whole box.
            np.copyto(out, part)
        elif (d - sum(corner)) % 2 == 0:
            out += part
        else:
            out -= part
    return out
