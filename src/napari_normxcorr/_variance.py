"""Variance maps: the local variance of every window of one shape in a plane.

When many search windows lie in one plane, their NCC denominators repeat
the same sums over and over: the variance of every template-sized window
of the plane, computed once with the correlation core's running sums,
turns each window's denominator into a slice of the map.
"""

from __future__ import annotations

import numpy as np

from ._ncc import _FLAT_TOLERANCE, window_energies

# A float64 map of this many pixels takes 128 MiB: larger planes (and
# lazy arrays) keep the running sums per window, which need no memory.
MAX_MAP_PIXELS = 2**24


class VarianceMap:
    """n * variance of every window of shape `box` in one plane.

    The values are centred on the plane mean first, which keeps the sums
    of squares far from where float64 loses the variance of a window;
    what rounding is left sets `noise`, the n * variance below which a
    window counts as flat.

    Parameters
    ----------
    plane : ndarray
        Finite pixel values, with as many axes as are matched.
    box : tuple of int
        Window shape (the template's).
    """

    def __init__(self, plane: np.ndarray, box):
        self.box = tuple(box)
        mean = plane.mean(dtype=np.float64)
        self.energy, total = window_energies(plane, self.box, mean)
        # The running sums behind each window are exact to a few eps of
        # the squares they have summed, at most the plane's whole energy.
        self.noise = _FLAT_TOLERANCE * total

    def variance(self, start, out: np.ndarray) -> np.ndarray:
        """n * variance of the windows starting at ``start + p``, in `out`."""
        region = tuple(slice(s, s + o) for s, o in zip(start, out.shape))
        np.copyto(out, self.energy[region])
        return out
