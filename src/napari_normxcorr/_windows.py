"""Windows of radius r around points: (2r + 1) pixels, clipped at borders."""

from __future__ import annotations

import numpy as np


def window_bounds(centre, radius, shape) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) of windows around `centre`.

    A window of radius r spans round(c) - r .. round(c) + r inclusive,
    clipped to the array `shape`. Works on one point (D,) or many (N, D).

    Parameters
    ----------
    centre : (D,) or (N, D) array_like of float
        Point(s) in pixel coordinates.
    radius : (D,) array_like of int
        Radius per axis.
    shape : (D,) sequence of int
        Shape of the array the windows are cut from.

    Returns
    -------
    start, stop : ndarray of int
        Same shape as `centre`.
    """
    middle = np.rint(np.asarray(centre, dtype=np.float64)).astype(np.int64)
    radius = np.asarray(radius, dtype=np.int64)
    start = np.clip(middle - radius, 0, np.asarray(shape))
    stop = np.clip(middle + radius + 1, 0, np.asarray(shape))
    return start, stop


def as_slices(start, stop) -> tuple[slice, ...]:
    """Slices for one window given its start and stop per axis."""
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
