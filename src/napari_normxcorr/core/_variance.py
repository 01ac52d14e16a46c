"""Variance maps: the local variance of every window of one shape in a plane.

When many search windows lie in one plane, their NCC denominators repeat
the same sums over and over: the variance of every template-sized window
of the plane, computed once with the correlation core's running sums,
turns each window's denominator into a slice of the map.
"""

from __future__ import annotations

import numpy as np

from ._window_sums import FLAT_TOLERANCE, window_energies

# A float64 map of this many pixels takes 128 MiB: larger planes (and
# lazy arrays) keep the running sums per window, which need no memory.
MAX_MAP_PIXELS = 2**24


class VarianceMap:
    """n * variance of every window of shape `box` in one plane.

    The sums behind it are of values centred on the plane mean, which
    keeps them far from where float64 loses the variance of a window.
    Windows whose n * variance is within rounding of zero are flat: they
    carry no pattern, and get an infinite variance (so an NCC of 0).

    Parameters
    ----------
    plane : ndarray
        Finite pixel values, with as many axes as are matched.
    box : tuple of int
        Window shape (the template's).
    """

    def __init__(self, plane: np.ndarray, box: tuple[int, ...]):
        self.box = tuple(box)
        mean = plane.mean(dtype=np.float64)
        self.energy, total = window_energies(plane, self.box, mean)
        # The running sums behind each window are exact to a few eps of
        # the squares they have summed, at most the plane's whole energy.
        self.noise = FLAT_TOLERANCE * total
        self.energy[self.energy <= self.noise] = np.inf

    def norms(
        self, start: np.ndarray, template_energy: float, out: np.ndarray
    ) -> np.ndarray:
        """``sum(w**2) * sum(t**2)`` of the centred windows w that start at
        ``start + p`` and a centred template t of energy
        `template_energy`, into `out`: an NCC's denominator squared."""
        region = tuple(slice(s, s + o) for s, o in zip(start, out.shape))
        return np.multiply(self.energy[region], template_energy, out=out)
