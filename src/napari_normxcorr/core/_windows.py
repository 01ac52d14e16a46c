"""Windows of radius r around points: (2r + 1) pixels, clipped at borders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._arrays import LazyArray, safe_scale, scaled, sum_shows_in_range


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


def inside_all(
    points: np.ndarray, shape: npt.ArrayLike, radius: npt.ArrayLike = 0
) -> np.ndarray:
    """Whether the pixel nearest each of (N, D) `points`, and the window of
    `radius` (per axis) around it, lie in an array of `shape`: an (N,)
    mask."""
    rounded = np.rint(points)
    return np.all(
        (rounded - radius >= 0) & (rounded + radius < np.asarray(shape)),
        axis=1,
    )


def all_finite(values: np.ndarray, total: float | None = None) -> bool:
    """No NaN or infinity in `values` (whose sum is `total`, when known)."""
    # Any NaN or infinity makes the sum NaN or infinite: one fast pass,
    # and the exact test only when it is (or the sum overflowed).
    if total is None:
        total = values.sum(dtype=np.float64)
    return bool(np.isfinite(total) or np.isfinite(values).all())


def valid_pixels(
    values: np.ndarray,
    mask: LazyArray | None,
    slices: tuple,
    nodata: float | None,
    total: float | None = None,
) -> np.ndarray | None:
    """Where a window of `values` holds data, or None when all of it does.

    Invalid are NaN and infinity, pixels where `mask` (of the whole image,
    read at `slices`) is True, and pixels equal to `nodata`. None keeps a
    window with nothing masked on the plain (fast) path.
    """
    invalid = []
    if not all_finite(values, total):
        invalid.append(~np.isfinite(values))
    if mask is not None:
        invalid.append(np.asarray(mask[slices], dtype=bool))
    if nodata is not None:
        invalid.append(values == nodata)
    invalid = [part for part in invalid if part.any()]
    if not invalid:
        return None
    return ~np.logical_or.reduce(invalid)


@dataclass
class Window:
    """The two windows of one point: where they lie, and their pixels.

    `row` is the point's row in the input; the template window is cut
    from `source` and searched for in the search window of `target`.
    `source_mask` and `target_mask` (True = ignore) and `nodata` say
    which pixels hold no data; once read, `template_valid` and
    `search_valid` say where each window holds data (None: everywhere).
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
    source_mask: LazyArray | None = None
    target_mask: LazyArray | None = None
    nodata: float | None = None
    template_valid: np.ndarray | None = None
    search_valid: np.ndarray | None = None
    scale: float = 1.0  # what the search window was multiplied by
    # Whether the target's plane is known to need no scaling as a whole
    # (see `rescale`).
    plane_in_range: bool = False

    @property
    def masked(self) -> bool:
        """Whether either window, once read, has pixels without data."""
        return self.template_valid is not None or self.search_valid is not None

    def overlap(self, peak: np.ndarray) -> int:
        """Pixels with data in both the template and the search window
        placed at `peak` (a whole-pixel position on the surface): those
        a score there rests on. Where both images miss pixels at random,
        it is a fraction of either window's own count."""
        assert self.template is not None
        valid = (
            np.ones(self.template.shape, dtype=bool)
            if self.template_valid is None
            else self.template_valid
        )
        if self.search_valid is not None:
            at = tuple(
                slice(int(p), int(p) + n)
                for p, n in zip(peak, self.template.shape)
            )
            valid = valid & self.search_valid[at]
        return int(np.count_nonzero(valid))

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
        """Read both windows and where they hold data.

        True: NaN, infinity, masked and `nodata` pixels are marked in
        `template_valid` and `search_valid`, to be left out.
        """
        self.template = np.asarray(self.source[self.template_slices])
        self.search = np.asarray(self.target[self.search_slices])
        self.search_sum = float(self.search.sum(dtype=np.float64))
        self.template_valid = valid_pixels(
            self.template, self.source_mask, self.template_slices, self.nodata
        )
        self.search_valid = valid_pixels(
            self.search,
            self.target_mask,
            self.search_slices,
            self.nodata,
            self.search_sum,
        )
        self.rescale()
        return True

    def rescale(self) -> None:
        """Scale read windows whose values would over- or underflow when
        squared (see `safe_scale`); `scale` says by how much."""
        assert self.template is not None and self.search is not None
        self.template = scaled(self.template)
        if self.plane_in_range and sum_shows_in_range(
            self.search_sum, self.search.size
        ):
            self.scale = 1.0  # its sum says as much as a look would
        else:
            self.scale = safe_scale(self.search)
        if self.scale != 1.0:
            self.search = self.search * self.scale
            self.search_sum = float(self.search.sum(dtype=np.float64))

    def release(self) -> None:
        """Forget the pixels (the placement stays)."""
        self.template = self.search = None
        self.template_valid = self.search_valid = None

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
