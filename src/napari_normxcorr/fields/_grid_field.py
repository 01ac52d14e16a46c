"""A vector field known on a regular grid, read anywhere by cubic splines.

Window deformation reads the previous pass's field at every pixel of the
target image and at each match. The grid is regular, so the spline is a
tensor product: along each axis, the interpolating cubic spline is a fixed
linear map from the grid values to the values at the wanted positions
(one small matrix per axis), and the whole image costs one matrix product
per axis.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import BSpline, make_interp_spline


class GridField:
    """Values (D components) on the grid `axes`, interpolated by splines.

    Parameters
    ----------
    axes : sequence of 1-D ndarray
        Increasing positions of the grid along each axis (pixels).
    values : (*grid, D) ndarray
        The field at the grid points, finite everywhere.

    Notes
    -----
    Beyond the grid the splines continue their end polynomials for at
    most one grid step, and hold still past that: window deformation
    reads the field up to a window radius beyond the outer points, where
    a continued rotation or shear is closer than a constant, but a cubic
    let run far from its data is not.
    """

    def __init__(self, axes: Sequence[np.ndarray], values: np.ndarray):
        self.axes = [np.asarray(a, dtype=np.float64) for a in axes]
        self.values = np.asarray(values, dtype=np.float64)

    def at(self, points: np.ndarray) -> np.ndarray:
        """The field at (n, D) `points`: (n, D)."""
        points = np.asarray(points, dtype=np.float64)
        weights = [
            _basis(axis, points[:, k]) for k, axis in enumerate(self.axes)
        ]
        out = np.einsum("ni,i...->n...", weights[0], self.values)
        for w in weights[1:]:
            out = np.einsum("ni,ni...->n...", w, out)
        return out

    def dense(self, shape: Sequence[int]) -> np.ndarray:
        """The field at every pixel of an image of `shape`: (*shape, D)."""
        out = self.values
        for k, (axis, n) in enumerate(zip(self.axes, shape)):
            w = _pixel_basis(tuple(axis), int(n))
            # The axis first, the rest flattened: one matrix product.
            moved = np.moveaxis(out, k, 0)
            product = w @ moved.reshape(moved.shape[0], -1)
            out = np.moveaxis(product.reshape(n, *moved.shape[1:]), 0, k)
        return np.ascontiguousarray(out)


def _basis(axis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(len(x), len(axis)): row i weighs the grid values into the spline's
    value at x[i]."""
    n = len(axis)
    if n == 1:
        return np.ones((len(x), 1))
    step = (axis[-1] - axis[0]) / (n - 1)
    x = np.clip(x, axis[0] - step, axis[-1] + step)
    return _spline(tuple(axis))(x)


@functools.lru_cache(maxsize=8)
def _pixel_basis(axis: tuple[float, ...], n: int) -> np.ndarray:
    """`_basis` at every pixel of an axis of `n`: the same for each pass
    over one grid (read-only: shared)."""
    basis = _basis(np.asarray(axis), np.arange(n, dtype=np.float64))
    basis.flags.writeable = False
    return basis


@functools.lru_cache(maxsize=8)
def _spline(axis: tuple[float, ...]) -> BSpline:
    """The interpolating cubic splines of the unit vectors on `axis`: the
    same for every pass over one grid."""
    n = len(axis)
    return make_interp_spline(np.asarray(axis), np.eye(n), k=min(3, n - 1))
