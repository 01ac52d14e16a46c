"""Matching through a known transform: templates resampled into the target.

When a transform M from template pixels to target pixels is known (even
roughly), rotation, scale and shear within it need not be searched for:
the template of a point p is resampled onto the target's pixel grid around
c = M(p), ``T'(k) = template_image(M^-1(c + k))`` for the window offsets
k, and only the remaining shift is found by NCC. The GuidedMatcher places
such windows; everything else (correlation, peaks, refinement, statuses)
is the plain Matcher's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ..core._windows import Window, all_finite, as_slices, window_bounds
from ._matcher import Matcher
from ._result import Status

__all__ = [
    "GuidedMatcher",
    "GuidedWindow",
    "Transform",
    "apply_matrix",
    "transform_matrix",
]

# The B-spline prefilter's reach fades by 0.27 per pixel: reading 12
# pixels beyond the samples gives the whole image's coefficients to 1e-7.
_SPLINE_MARGIN = 12
# Samples this little beyond the first or last pixel are rounding.
_EDGE_SLACK = 1e-9


class Transform(Protocol):
    """A fitted transform, such as a TransformFit: its homogeneous matrix
    from template pixels to target pixels."""

    @property
    def matrix(self) -> np.ndarray: ...


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points through a homogeneous matrix.

    Parameters
    ----------
    matrix : (D+1, D+1) ndarray
        Homogeneous transform matrix.
    points : (..., D) ndarray
        Points to map.

    Returns
    -------
    (..., D) ndarray
        The mapped points.
    """
    mapped = points @ matrix[:-1, :-1].T + matrix[:-1, -1]
    w = points @ matrix[-1, :-1] + matrix[-1, -1]
    return mapped / w[..., np.newaxis]


def transform_matrix(
    transform: Transform | npt.ArrayLike, ndim: int
) -> np.ndarray:
    """The (ndim+1, ndim+1) float matrix of `transform`, or raise.

    Parameters
    ----------
    transform : TransformFit or (ndim+1, ndim+1) array_like
        A fit (its ``matrix``) or a homogeneous matrix.
    ndim : int
        Number of matched axes.

    Returns
    -------
    (ndim+1, ndim+1) ndarray
        The matrix, scaled so that its last element is 1.
    """
    matrix = np.asarray(getattr(transform, "matrix", transform), dtype=float)
    if matrix.shape != (ndim + 1, ndim + 1):
        raise ValueError(
            f"transform has shape {matrix.shape} but the points are matched "
            f"in {ndim} axes; give a ({ndim + 1}, {ndim + 1}) homogeneous "
            "matrix (or give one radius per axis to match in more axes)."
        )
    if not np.all(np.isfinite(matrix)):
        raise ValueError("transform holds NaN or infinity.")
    if np.linalg.cond(matrix) > 1e12:
        raise ValueError("transform is singular: it cannot be inverted.")
    if matrix[-1, -1] == 0:
        raise ValueError("transform maps pixel (0, 0) to infinity.")
    return matrix / matrix[-1, -1]


@dataclass(kw_only=True)
class GuidedWindow(Window):
    """A window whose template is resampled through a transform.

    `template_slices` is the region of `source` the samples need (with a
    margin for the spline); the template is ``(2r + 1)`` pixels wide per
    axis, sampled at ``to_source(centre + k)``. `template_start` is
    ``centre - r``, in the target's pixels, so that the plain bookkeeping
    ``origin = search_start + (centre - template_start)`` holds.
    """

    centre: np.ndarray  # the point's position in the target, not rounded
    to_source: np.ndarray  # target pixels -> source pixels
    region_start: np.ndarray  # first pixel of the region read
    offsets: np.ndarray  # (2r0 + 1, ..., D) window offsets k

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the resampled template and of the search window."""
        search = tuple(
            s.stop - s.start
            for s in self.search_slices
            if isinstance(s, slice)
        )
        return tuple(self.offsets.shape[:-1]), search

    def origin(self, point: np.ndarray) -> np.ndarray:
        """Where the surface's first element puts the point in the target.

        The template is centred on `centre` (the point mapped into the
        target), whatever `point` itself is.
        """
        return self.search_start + (self.centre - self.template_start)

    def read(self) -> bool:
        """Read the region and resample the template; read the search
        window. False when either holds NaN or infinity."""
        region = np.asarray(self.source[self.template_slices], dtype=float)
        self.search = np.asarray(self.target[self.search_slices])
        self.search_sum = float(self.search.sum(dtype=np.float64))
        # One NaN would spread through the spline over the whole template.
        if not all_finite(region):
            self.template = region
            return False
        coords = apply_matrix(self.to_source, self.centre + self.offsets)
        coords -= self.region_start
        self.template = ndimage.map_coordinates(
            region, np.moveaxis(coords, -1, 0), order=3, mode="mirror"
        )
        if not all_finite(self.search, self.search_sum):
            return False
        self.rescale()
        return True


@dataclass(kw_only=True)
class GuidedMatcher(Matcher):
    """A Matcher whose templates are resampled through `matrix`.

    `matrix` maps template pixels to target pixels in the matched axes;
    the back-match of the consistency check goes through its inverse.
    """

    matrix: np.ndarray
    inverse: np.ndarray = field(init=False)
    offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        inverse = np.linalg.inv(self.matrix)
        self.inverse = inverse / inverse[-1, -1]
        axes = [np.arange(-r, r + 1.0) for r in self.template_radius]
        self.offsets = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def place_all(
        self,
        points: np.ndarray,
        guesses: np.ndarray,
        status: np.ndarray,
        forward: bool = True,
    ) -> list[list[Window]]:
        """As :meth:`Matcher.place_all`, placing one row at a time (each
        resampled template has its own source region)."""
        return self.place_each(points, guesses, status, forward)

    def place(
        self,
        row: int,
        point: np.ndarray,
        image_point: np.ndarray,
        forward: bool = True,
    ) -> Window | Status:
        """Windows of one point, before reading any pixel.

        As :meth:`Matcher.place`, but the template is resampled around the
        point mapped through the transform (backward: its inverse). Status
        ``template does not fit`` when the template needs pixels outside
        its image, or is larger than the clipped search window.
        """
        sides = self.sides(point, image_point, forward)
        if isinstance(sides, Status):
            return sides
        source, target, plane = sides
        to_target, to_source = self.matrix, self.inverse
        if not forward:
            to_target, to_source = to_source, to_target
        d = self.ndim
        centre = apply_matrix(to_target, point[-d:])
        region = _source_region(
            to_source, centre, self.template_radius, source.shape[-d:]
        )
        s_start, s_stop = window_bounds(
            image_point[-d:], self.search_radius, target.shape[-d:]
        )
        size = 2 * np.asarray(self.template_radius) + 1
        if region is None or np.any(size > s_stop - s_start):
            return Status.NO_FIT
        return GuidedWindow(
            row,
            plane,
            centre - np.asarray(self.template_radius),
            s_start,
            source,
            plane + as_slices(*region),
            target,
            plane + as_slices(s_start, s_stop),
            centre=centre,
            to_source=to_source,
            region_start=region[0],
            offsets=self.offsets,
        )


def _source_region(
    to_source: np.ndarray,
    centre: np.ndarray,
    radius: tuple[int, ...],
    shape: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and stop of the source pixels a resampled template needs.

    The samples ``to_source(centre + k)`` fill the image of the window's
    box, whose extremes are the images of its corners (for a projective
    map too, away from its horizon). None when any sample falls outside
    the source (or the box crosses the horizon).
    """
    r = np.asarray(radius, dtype=float)
    corners = centre + np.array(list(itertools.product(*zip(-r, r))))
    w = corners @ to_source[-1, :-1] + to_source[-1, -1]
    if np.any(w <= 0):
        return None
    reach = apply_matrix(to_source, corners)
    low, high = reach.min(axis=0), reach.max(axis=0)
    last = np.asarray(shape) - 1
    if np.any(low < -_EDGE_SLACK) or np.any(high > last + _EDGE_SLACK):
        return None
    start = np.maximum(np.floor(low).astype(int) - _SPLINE_MARGIN, 0)
    stop = np.minimum(
        np.ceil(high).astype(int) + 1 + _SPLINE_MARGIN, np.asarray(shape)
    )
    return start, stop
