"""Windows of radius r around points: (2r + 1) pixels, clipped at borders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._arrays import LazyArray


def window_bounds(
    centre: npt.ArrayLike,
    radius: npt.ArrayLike,
    shape: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
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


def as_slices(
    start: np.ndarray | Sequence[int], stop: np.ndarray | Sequence[int]
) -> tuple[slice, ...]:
    """Slices for one window given its start and stop per axis."""
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


def inside(point: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether the pixel nearest `point` lies in an array of `shape`."""
    rounded = np.rint(point)
    return bool(np.all((rounded >= 0) & (rounded < np.asarray(shape))))


def all_finite(values: np.ndarray, total: float | None = None) -> bool:
    """No NaN or infinity in `values` (whose sum is `total`, when known)."""
    # Any NaN or infinity makes the sum NaN or infinite: one fast pass,
    # and the exact test only when it is (or the sum overflowed).
    if total is None:
        total = values.sum(dtype=np.float64)
    return bool(np.isfinite(total) or np.isfinite(values).all())


@dataclass
class Window:
    """The two windows of one point: where they lie, and their pixels.

    `row` is the point's row in the input; the template window is cut
    from `source` and searched for in the search window of `target`.
    """

    row: int
    plane: tuple[int, ...]
    template_start: np.ndarray
    search_start: np.ndarray
    source: LazyArray
    template_slices: tuple
    target: LazyArray
    search_slices: tuple
    template: np.ndarray | None = None
    search: np.ndarray | None = None
    search_sum: float = 0.0

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the template window and of the search window."""
        template, search = (
            tuple(s.stop - s.start for s in slices if isinstance(s, slice))
            for slices in (self.template_slices, self.search_slices)
        )
        return template, search

    def origin(self, point: np.ndarray) -> np.ndarray:
        """Where the surface's first element puts `point` in the target.

        `point` is the point the window was cut around (matched axes, in
        its source's pixels); surface element ``q`` matches it at
        ``origin + q``.
        """
        return self.search_start + (point - self.template_start)

    def read(self) -> bool:
        """Read both windows; False when they hold NaN or infinity."""
        self.template = np.asarray(self.source[self.template_slices])
        self.search = np.asarray(self.target[self.search_slices])
        self.search_sum = float(self.search.sum(dtype=np.float64))
        return all_finite(self.template) and all_finite(
            self.search, self.search_sum
        )

    def release(self) -> None:
        """Forget the pixels (the placement stays)."""
        self.template = self.search = None

    def reading_order(self) -> tuple:
        """Plane, then bands one window high, then along the band.

        Neighbouring windows share pixels (and variance map entries):
        taken one after the other, they find them still in cache.
        """
        start = self.search_start
        height = self.shapes[1][:-1]
        return (
            self.plane,
            *(int(s) // h for s, h in zip(start[:-1], height)),
            int(start[-1]),
        )
