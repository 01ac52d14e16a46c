"""Summed-area tables: the local variance of any window of one image plane.

When many search windows lie in one plane, their running sums (the NCC's
denominator) repeat the same additions over and over: one table of the
plane's values and one of their squares, built once, give every window's
sums by 2**d lookups per output (Crow 1984; Lewis 1995).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._ncc import _FLAT_TOLERANCE, Workspace

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

    def variance(self, start, box, out: np.ndarray, workspace: Workspace):
        """n * variance of every `box`-shaped window, 'valid' mode, in `out`.

        Output element p covers the box that starts at ``start + p``.
        Scratch arrays come from `workspace`.
        """
        shape = out.shape
        sums = _box_sums(self.sums, start, box, shape, workspace, "sums")
        energy = _box_sums(
            self.squares, start, box, shape, workspace, "squares"
        )
        np.square(sums, out=sums)
        sums /= float(np.prod(box))
        return np.subtract(energy, sums, out=out)


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


def _box_sums(table, start, box, out_shape, workspace, name) -> np.ndarray:
    """Sums over the boxes that start at ``start + p`` for every p of
    `out_shape`: table differences along one axis at a time.

    d passes over a shrinking slab, where adding the 2**d corners of each
    box takes 2**d passes. Returns a workspace array.
    """
    part = table[
        tuple(slice(s, s + m + o) for s, m, o in zip(start, box, out_shape))
    ]
    for axis, (m, o) in enumerate(zip(box, out_shape)):
        shape = list(part.shape)
        shape[axis] = o
        before = (slice(None),) * axis
        part = np.subtract(
            part[before + (slice(m, m + o),)],
            part[before + (slice(0, o),)],
            out=workspace.get(f"{name} {axis}", shape),
        )
    return part
