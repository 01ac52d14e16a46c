"""Points on a regular grid, for dense displacement fields (PIV, DIC)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..core._masked import check_mask

# More points than this would take gigabytes before any matching starts:
# a spacing that small is a slip (0.001 for 10), not a field.
MAX_POINTS = 10_000_000


def grid_points(
    shape: Sequence[int],
    spacing: float | Sequence[float],
    *,
    mask: npt.ArrayLike | None = None,
    margin: float | Sequence[float] | None = None,
) -> np.ndarray:
    """Points on a regular grid over an image, skipping masked places.

    Parameters
    ----------
    shape : sequence of int
        Shape of the image (the matched axes: (rows, cols) or 3-D).
    spacing : float or sequence of float
        Distance between neighbouring points in pixels, one for all axes or
        one per axis.
    mask : array_like of bool, optional
        `shape`-sized; True marks pixels to leave out (no data, outside the
        sample), as in `match_points`. A point is left out when the pixel
        nearest to it is masked.
    margin : float or sequence of float, optional
        Least distance in pixels from each point to the image border, one
        for all axes or one per axis; give the template radius so that no
        template window is clipped. Default: half a spacing.

    Returns
    -------
    (N, D) ndarray of float64
        The points, (row, col[, ...]) in pixels, in C order. Along each
        axis the grid starts and ends on whole pixels, centred between the
        margins (to a pixel).

    Examples
    --------
    >>> grid_points((100, 200), 50).tolist()
    [[49.0, 49.0], [49.0, 99.0], [49.0, 149.0]]
    """
    shape = _shape(shape)
    d = len(shape)
    step = _per_axis("spacing", spacing, d)
    if not np.all((step > 0) & np.isfinite(step)):
        raise ValueError(f"spacing must be finite and > 0, got {spacing!r}.")
    keep = step / 2 if margin is None else _per_axis("margin", margin, d)
    if not np.all((keep >= 0) & np.isfinite(keep)):
        raise ValueError(f"margin must be finite and >= 0, got {margin!r}.")
    counts = [_count(n, s, m) for n, s, m in zip(shape, step, keep)]
    if math.prod(counts) > MAX_POINTS:
        raise ValueError(
            f"spacing {spacing!r} puts {math.prod(counts):,} points on shape "
            f"{shape}, more than {MAX_POINTS:,}; give a larger spacing."
        )
    axes = [_axis(n, s, m) for n, s, m in zip(shape, step, keep)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    points = points.reshape(-1, d)
    if mask is not None:
        points = points[~_masked(mask, shape, points)]
    return points


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    """`shape` as a tuple of ints >= 1, or raise naming it."""
    values = np.asarray(shape)
    if values.ndim > 1:
        raise ValueError(
            f"shape must be a sequence of ints, got an array of shape "
            f"{values.shape}; pass image.shape, not the image."
        )
    values = np.atleast_1d(values)
    whole = values.dtype.kind in "iu" or (
        values.dtype.kind == "f"
        and np.all(np.isfinite(values))
        and np.all(values == np.round(values))
    )
    if values.size == 0 or not whole or np.any(values < 1):
        raise ValueError(
            "shape must be a non-empty image shape (ints >= 1), got "
            f"{shape!r}."
        )
    return tuple(int(n) for n in values)


def _per_axis(name: str, value: float | Sequence[float], d: int) -> np.ndarray:
    try:
        values = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number or one per axis, got {value!r}."
        ) from None
    if values.ndim != 1 or values.size not in (1, d):
        raise ValueError(
            f"{name} has {values.size} entries for {d} axes: give one "
            "number, or one per axis."
        )
    return np.broadcast_to(values, (d,)).copy()


def _count(n: int, step: float, margin: float) -> int:
    """How many positions `_axis` gives (without making them)."""
    # Whole pixels at the ends, so that integer spacings give pixel centres.
    first, last = np.ceil(margin), np.floor(n - 1 - margin)
    if last < first:
        return 0
    return int(np.floor((last - first) / step)) + 1


def _axis(n: int, step: float, margin: float) -> np.ndarray:
    """Positions along one axis of `n` pixels, centred between margins."""
    count = _count(n, step, margin)
    if count == 0:
        return np.empty(0)
    first, last = np.ceil(margin), np.floor(n - 1 - margin)
    # The room the steps leave is shared between both ends.
    start = first + np.floor((last - first - (count - 1) * step) / 2)
    return start + step * np.arange(count)


def _masked(
    mask: npt.ArrayLike, shape: tuple[int, ...], points: np.ndarray
) -> np.ndarray:
    """Which points fall on a masked pixel."""
    mask = np.asarray(mask)
    check_mask("mask", mask, shape)
    index = np.clip(np.rint(points).astype(int), 0, np.asarray(shape) - 1)
    return mask.astype(bool)[tuple(index.T)]
