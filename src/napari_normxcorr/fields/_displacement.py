"""Dense displacement fields: the matches interpolated on the image grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ..matching._result import MatchResult, Status

METHODS = ("linear", "cubic", "nearest")


class Tracks(Protocol):
    """What a field per frame needs of a TrackResult (the wings do not
    import one another)."""

    points: np.ndarray
    position: np.ndarray
    status: np.ndarray

    @property
    def ok(self) -> np.ndarray: ...


def displacement_field(
    result: MatchResult | Tracks,
    shape: Sequence[int],
    *,
    method: str = "linear",
) -> np.ndarray:
    """The displacement of the ok matches interpolated on an image grid.

    Parameters
    ----------
    result : MatchResult or TrackResult
        Matches of points in the template image; only the rows whose
        status is ``ok`` (and whose offset is finite) are used. A
        TrackResult gives one field per frame: the displacement of each
        point from its own frame (where it was given) to that frame, at
        its position there, from the ok vertices of the frame.
    shape : sequence of int
        Shape of the template image along the matched axes, (rows, cols)
        or (z, rows, cols): the last ``len(shape)`` coordinates of the
        points and offsets; leading plane coordinates are ignored.
    method : {'linear', 'cubic', 'nearest'}, optional
        How the offsets are interpolated between the points:

        - ``'linear'``: barycentric on the Delaunay triangulation of the
          ok points (`scipy.interpolate.LinearNDInterpolator`); NaN
          outside their convex hull.
        - ``'cubic'``: 2-D only, a C1 piecewise cubic on the same
          triangulation (`scipy.interpolate.CloughTocher2DInterpolator`);
          NaN outside the hull.
        - ``'nearest'``: the offset of the nearest ok point
          (`scipy.interpolate.NearestNDInterpolator`), everywhere,
          outside the hull too.

    Returns
    -------
    (D, *shape) ndarray of float64
        One displacement component per matched axis, in pixels: element
        ``[k, p]`` is how far the content at template pixel ``p`` moved
        along axis ``k`` (``matched - points``, as ``result.offset``).
        (T, D, *shape) for a TrackResult, one field per frame (NaN where a
        frame has too few ok vertices).

    Raises
    ------
    ValueError
        When `method` is unknown, or when there are fewer than D + 1 ok
        matches, or they all lie on one line (plane): then they span no
        hull to interpolate in.

    Notes
    -----
    The interpolation is exact at the ok points and never smooths: a wrong
    match that is still ``ok`` shows as a bump. Points of other statuses
    (low score, ambiguous, transform outlier, ...) are left out, so holes
    in the matches become larger triangles, not wrong values.
    """
    shape = tuple(int(n) for n in shape)
    d = len(shape)
    if d == 0 or min(shape) < 1:
        raise ValueError(
            f"shape must be a non-empty image shape, got {shape}."
        )
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {', '.join(METHODS)}, got {method!r}."
        )
    if method == "cubic" and d != 2:
        raise ValueError("method 'cubic' works in 2-D only.")
    if not isinstance(result, MatchResult):
        return _per_frame(result, shape, method)
    points, offsets = _ok_matches(result, d)
    if len(points) < d + 1:
        raise ValueError(
            f"a {d}-D field needs at least {d + 1} ok matches, got "
            f"{len(points)}."
        )
    grid = np.indices(shape, dtype=float).reshape(d, -1).T
    values = _interpolator(points, offsets, method)(grid)
    return np.moveaxis(values, -1, 0).reshape((d, *shape))


def _per_frame(
    result: Tracks, shape: tuple[int, ...], method: str
) -> np.ndarray:
    """(T, D, *shape): the field of each frame of a track result."""
    d = len(shape)
    frames = result.status.shape[1]
    out = np.full((frames, d, *shape), np.nan)
    reference = np.asarray(result.points, dtype=float)[:, -d:]
    grid = np.indices(shape, dtype=float).reshape(d, -1).T
    for t in range(frames):
        moved = result.position[:, t, -d:] - reference
        usable = result.ok[:, t] & np.isfinite(moved).all(axis=1)
        if usable.sum() < d + 1:
            continue
        try:
            values = _interpolator(reference[usable], moved[usable], method)
        except ValueError:
            continue  # the frame's ok points lie on a line
        out[t] = np.moveaxis(values(grid), -1, 0).reshape((d, *shape))
    return out


def field_magnitude(field: np.ndarray) -> np.ndarray:
    """Length of the displacement at each pixel of a (D, ...) field, in
    pixels; NaN where the field is NaN."""
    field = np.asarray(field, dtype=float)
    return np.sqrt(np.sum(field**2, axis=0))


def _ok_matches(result: MatchResult, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and offsets (matched axes only) of the usable rows."""
    points = np.asarray(result.points, dtype=float)[:, -d:]
    offsets = np.asarray(result.offset, dtype=float)[:, -d:]
    usable = (
        (np.asarray(result.status) == Status.OK)
        & np.isfinite(points).all(axis=1)
        & np.isfinite(offsets).all(axis=1)
    )
    return points[usable], offsets[usable]


def _interpolator(
    points: np.ndarray, offsets: np.ndarray, method: str
) -> Callable[[np.ndarray], np.ndarray]:
    """A callable from (M, D) positions to (M, D) offsets."""
    from scipy.interpolate import (
        CloughTocher2DInterpolator,
        LinearNDInterpolator,
        NearestNDInterpolator,
    )
    from scipy.spatial import QhullError

    if method == "nearest":
        return NearestNDInterpolator(points, offsets)
    kind = (
        LinearNDInterpolator
        if method == "linear"
        else CloughTocher2DInterpolator
    )
    try:
        return kind(points, offsets, fill_value=np.nan)
    except QhullError as error:
        raise ValueError(
            "the ok matches lie on one line (or plane): they span no hull "
            "to interpolate in."
        ) from error
