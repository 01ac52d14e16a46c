"""Peaks of correlation surfaces: where, how sure, and sub-pixel fits."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from ._compiled import compiled
from ._parallel import Workspace, thread_workspace

# Surfaces the compiled second peaks take (2-D, of these types).
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def argmax_index(surface: np.ndarray) -> tuple[int, ...]:
    """Index of the largest value (the first one in C order on ties)."""
    return tuple(
        int(i) for i in np.unravel_index(np.argmax(surface), surface.shape)
    )


def parabolic_shift(surface: np.ndarray, peak: tuple[int, ...]) -> np.ndarray:
    """Sub-pixel shift of `peak`, per axis, from a three-point parabola.

    Each axis is fitted through the peak and its two neighbours; an axis
    where the peak touches the border, or whose curvature is not negative,
    gets shift 0. Shifts lie in [-0.5, 0.5].
    """
    shift = np.zeros(surface.ndim)
    centre = surface[peak]
    for axis, index in enumerate(peak):
        if not 0 < index < surface.shape[axis] - 1:
            continue
        before = list(peak)
        after = list(peak)
        before[axis] -= 1
        after[axis] += 1
        low, high = surface[tuple(before)], surface[tuple(after)]
        curvature = low - 2 * centre + high
        if curvature < 0:
            shift[axis] = np.clip(0.5 * (low - high) / curvature, -0.5, 0.5)
    return shift


def local_maxima(
    surfaces: np.ndarray, workspace: Workspace | None = None
) -> np.ndarray:
    """Mask of values that no neighbour exceeds (3-wide, in all but axis 0).

    A 3-wide running maximum along each axis in turn, compared in float32
    (half the memory traffic; ties from the rounding only add candidates,
    never remove the best one), in scratch arrays of `workspace`.
    """
    workspace = workspace or Workspace()
    shape = surfaces.shape
    values = surfaces
    if surfaces.dtype != np.float32:
        values = workspace.get("maxima values", shape, np.float32)
        np.copyto(values, surfaces, casting="same_kind")
    buffers = [workspace.get(f"maxima {k}", shape, np.float32) for k in "ab"]
    source = values
    for axis in range(1, values.ndim):
        target = buffers[axis % 2]
        _running_maximum(source, target, axis)
        source = target
    return values == source


def _running_maximum(
    source: np.ndarray, target: np.ndarray, axis: int
) -> None:
    """3-wide maximum of contiguous `source` along `axis`, into `target`.

    Neighbours along `axis` lie a fixed step apart in memory: two passes
    over the flat arrays (several times faster than strided views) do the
    inside, and the two end slabs, which the flat shifts mixed with their
    neighbours across the axis' ends, are redone alone.
    """
    n = source.shape[axis]
    if n == 1:
        np.copyto(target, source)
        return
    step = int(np.prod(source.shape[axis + 1 :]))
    flat, out = source.reshape(-1), target.reshape(-1)
    inside = slice(step, flat.size - step)
    np.maximum(flat[: -2 * step], flat[2 * step :], out=out[inside])
    np.maximum(out[inside], flat[inside], out=out[inside])
    index = (slice(None),) * axis
    for end, neighbour in ((0, 1), (n - 1, n - 2)):
        np.maximum(
            source[index + (end,)],
            source[index + (neighbour,)],
            out=target[index + (end,)],
        )


def argmax_indices(surfaces: np.ndarray) -> np.ndarray:
    """(n, d) indices of the largest value of each of n stacked surfaces
    (the first one in C order on ties), as `argmax_index` of each."""
    flat = np.argmax(surfaces.reshape(len(surfaces), -1), axis=1)
    return np.stack(np.unravel_index(flat, surfaces.shape[1:]), axis=-1)


def parabolic_shifts(surfaces: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """`parabolic_shift` of each of n stacked surfaces at its (n, d)
    `peaks`, in the same arithmetic (the surfaces' precision)."""
    n, d = peaks.shape
    shift = np.zeros((n, d))
    for axis, low, high, curvature, fit in _parabolas(
        surfaces, np.arange(n), peaks
    ):
        vertex = 0.5 * (low[fit] - high[fit]) / curvature[fit]
        shift[fit, axis] = np.clip(vertex, -0.5, 0.5)
    return shift


def parabolic_heights(
    surfaces: np.ndarray, stack: np.ndarray, peaks: np.ndarray
) -> np.ndarray:
    """Heights of the three-point parabolas at (k, d) `peaks` of the
    surfaces `stack` (k,), several to a surface if need be: each peak's
    value raised, along each axis that `parabolic_shift` would fit, to
    its parabola's vertex.

    A peak sampled off its top (a coarse surface, say) gets back much of
    the height it lost.
    """
    height = surfaces[(stack, *peaks.T)].astype(np.float64)
    for _, low, high, curvature, fit in _parabolas(surfaces, stack, peaks):
        height[fit] -= (low - high)[fit] ** 2 / (8.0 * curvature[fit])
    return height


def _parabolas(
    surfaces: np.ndarray, stack: np.ndarray, peaks: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per axis, the three-point parabola through each of the (k, d)
    `peaks` of the surfaces `stack` (k,): the axis, the values before and
    after the peak, the curvature (in the surfaces' precision) and where
    a parabola fits (not at the border, curvature negative: no division
    by zero)."""
    centre = surfaces[(stack, *peaks.T)]
    for axis in range(peaks.shape[1]):
        last = surfaces.shape[axis + 1] - 1
        index = peaks[:, axis]
        low, high = (
            surfaces[(stack, *_moved(peaks, axis, step, last).T)]
            for step in (-1, 1)
        )
        curvature = low - 2 * centre + high
        fit = (index > 0) & (index < last) & (curvature < 0)
        yield axis, low, high, curvature, fit


def _moved(peaks: np.ndarray, axis: int, step: int, last: int) -> np.ndarray:
    """`peaks` moved by `step` along `axis`, kept within 0..`last`."""
    moved = peaks.copy()
    moved[:, axis] = np.clip(peaks[:, axis] + step, 0, last)
    return moved


def peak_half_widths(surface: np.ndarray, peak: tuple[int, ...]) -> list[int]:
    """How far the peak stays above half its height, along each axis.

    Half height is halfway between the peak and the surface's median, so a
    broad peak (smooth texture) gets a broad neighbourhood. The median of
    a few thousand evenly spread values serves, at a fraction of the cost.
    """
    widths = half_widths(surface[np.newaxis], np.asarray([peak]))
    return [int(w) for w in widths[0]]


def half_widths(surfaces: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """`peak_half_widths` of each of n stacked surfaces at its (n, d)
    `peaks`: an (n, d) array of int."""
    n, d = peaks.shape
    values = surfaces.reshape(n, -1)
    sample = values[:, :: max(1, values.shape[1] // 4096)].copy()
    middle = sample.shape[1] // 2
    sample.partition(middle, axis=1)
    typical = sample[:, middle]
    stack = np.arange(n)
    level = 0.5 * (surfaces[(stack, *peaks.T)] + typical)
    widths = np.empty((n, d), dtype=np.int64)
    for axis in range(d):
        size = surfaces.shape[axis + 1]
        along = np.arange(size)
        # The line through each peak along `axis`: (n, size).
        index = [stack[:, np.newaxis]] + [
            along if a == axis else peaks[:, a, np.newaxis] for a in range(d)
        ]
        below = surfaces[tuple(index)] <= level[:, np.newaxis]
        at = peaks[:, axis, np.newaxis]
        # The nearest positions below the level on either side; without
        # one, the line's ends one step beyond it.
        before = np.where(below & (along < at), along, -1).max(axis=1)
        after = np.where(below & (along > at), along, size).min(axis=1)
        widths[:, axis] = np.maximum(at[:, 0] - before, after - at[:, 0])
    return widths


def second_peak(
    surface: np.ndarray,
) -> tuple[tuple[int, ...] | None, float]:
    """Index and value of the best peak outside the main peak's neighbourhood.

    The neighbourhood reaches as far as the main peak stays above half its
    height, and at least 2 pixels. The best local maximum outside it wins;
    without one, the best value outside; without any, ``(None, nan)``.
    """
    peaks = argmax_indices(surface[np.newaxis])
    index, value = second_peaks(surface[np.newaxis], peaks)
    if index[0, 0] < 0:
        return None, np.nan
    return tuple(int(i) for i in index[0]), float(value[0])


def second_peaks(
    surfaces: np.ndarray,
    peaks: np.ndarray,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`second_peak` of each of n stacked surfaces whose main peaks are
    the (n, d) `peaks`: (n, d) indices (-1 where there is none) and their
    values (NaN where there is none)."""
    n = len(peaks)
    shape = surfaces.shape[1:]
    reach = np.maximum(half_widths(surfaces, peaks), 2)
    low = np.maximum(peaks - reach, 0).astype(np.int64)
    high = (peaks + reach + 1).astype(np.int64)
    # Outside the main peak's box: along any axis beyond its reach.
    boxes = [
        (k, *(slice(a, b) for a, b in zip(low[k], high[k]))) for k in range(n)
    ]
    kernels = compiled(f"{__package__}._peak_kernels")
    if (
        kernels is not None
        and surfaces.ndim == 3
        and surfaces.dtype in _FLOATS
    ):
        best = np.empty(n, dtype=np.int64)
        kernels.best_maxima_outside(
            np.ascontiguousarray(surfaces), low, high, best
        )
    else:
        maxima = local_maxima(surfaces, workspace or thread_workspace())
        # argmax takes the first in C order on ties, as the scalar version.
        best = _best_outside(np.where(maxima, surfaces, -np.inf), boxes)
    for k in np.flatnonzero(best < 0):
        box = (0, *boxes[k][1:])
        best[k] = _best_outside(surfaces[k : k + 1].copy(), [box])[0]
    missing = best < 0
    index = np.stack(np.unravel_index(np.maximum(best, 0), shape), axis=-1)
    index[missing] = -1
    flat = surfaces.reshape(n, -1)
    values = flat[np.arange(n), np.maximum(best, 0)].astype(np.float64)
    values[missing] = np.nan
    return index, values


def _best_outside(candidates: np.ndarray, boxes: list[tuple]) -> np.ndarray:
    """Flat index of the best value of each of the stacked `candidates`
    (-inf: not one) outside its box (overwritten), -1 where none is."""
    n = len(candidates)
    for box in boxes:
        candidates[box] = -np.inf
    flat = candidates.reshape(n, -1)
    best = np.argmax(flat, axis=1)
    best[flat[np.arange(n), best] == -np.inf] = -1
    return best


def on_borders(peaks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Whether each of (n, d) `peaks` touches an edge of a surface of
    `shape`.

    An axis one position wide is all edge: the window could not move
    along it, so the match there is unknown, never confirmed.
    """
    last = np.asarray(shape) - 1
    return np.any((peaks == 0) | (peaks == last), axis=1)


# The quadratic of `peak_covariance` is fitted over this reach (5 x 5).
_FIT_REACH = 2
# Curvatures below this share of the largest are a ridge's: floored there.
_MIN_CURVATURE = 1e-6
# Scores are exact to about this (single-precision transforms).
SCORE_PRECISION = 1e-4


def peak_covariance(
    surface: np.ndarray, peak: tuple[int, ...], score: float, pixels: int
) -> np.ndarray:
    """Covariance (px²) of the match position, from the peak's shape.

    Least-squares matching precision (Förstner): with unit-energy
    patches the mismatch is ``2 (1 - ncc)``, which around the peak grows
    as ``du' A du`` with A minus the Hessian of the surface (A plays the
    part of J'J, the gradients' normal matrix). A quadratic fitted to the
    surface around `peak` gives A; the residual noise per pixel is
    ``2 (1 - score) / (pixels - d)``, so the covariance is that times
    the inverse of A. A ridge (the template holds only a straight edge)
    leaves A singular along the edge: its curvature there is floored at
    a millionth of the largest, so the covariance is huge along the edge
    but keeps its direction. NaN where no quadratic fits (the surface is
    less than 3 positions wide along an axis around the peak).
    """
    d = surface.ndim
    low = [max(p - _FIT_REACH, 0) for p in peak]
    high = [min(p + _FIT_REACH + 1, s) for p, s in zip(peak, surface.shape)]
    if any(b - a < 3 for a, b in zip(low, high)):
        return np.full((d, d), np.nan)  # no curvature along some axis
    region = surface[tuple(slice(a, b) for a, b in zip(low, high))]
    offsets = tuple(
        (a - p, b - p) for a, b, p in zip(low, high, peak, strict=True)
    )
    design, solver = _quadratic_design(offsets)
    values = region.ravel().astype(np.float64)
    finite = np.isfinite(values)
    if finite.all():
        quadratic = (solver @ values)[1 + d :]
    elif finite.sum() >= design.shape[1]:
        fitted = np.linalg.lstsq(design[finite], values[finite], rcond=None)
        quadratic = fitted[0][1 + d :]
    else:
        return np.full((d, d), np.nan)
    return _covariances(
        quadratic[np.newaxis], np.array([score]), np.array([pixels]), d
    )[0]


def peak_covariances(
    surfaces: np.ndarray,
    peaks: np.ndarray,
    scores: np.ndarray,
    pixels: np.ndarray,
) -> np.ndarray:
    """`peak_covariance` of each of n stacked surfaces at its (n, d)
    `peaks`, with its `scores` and template `pixels`: (n, d, d) px².

    Peaks whose whole fit box lies on the surface and holds finite values
    share one solver and are fitted together; the others (boxes clipped
    at the border, unscored positions) one at a time.
    """
    n, d = peaks.shape
    out = np.full((n, d, d), np.nan)
    inside = np.all(
        (peaks >= _FIT_REACH)
        & (peaks < np.asarray(surfaces.shape[1:]) - _FIT_REACH),
        axis=1,
    )
    rows = np.flatnonzero(inside)
    values = _fit_patches(surfaces, rows, peaks[rows])
    finite = np.isfinite(values).all(axis=1)
    together = np.zeros(n, dtype=bool)
    together[rows[finite]] = True
    for k in np.flatnonzero(~together):
        peak = tuple(int(p) for p in peaks[k])
        out[k] = peak_covariance(surfaces[k], peak, scores[k], pixels[k])
    if together.any():
        out[together] = _fitted_covariances(
            values[finite], scores[together], pixels[together], d
        )
    return out


def _fit_patches(
    surfaces: np.ndarray, rows: np.ndarray, peaks: np.ndarray
) -> np.ndarray:
    """The fit boxes around `peaks` of surfaces `rows`, flattened in C
    order, in float64: (len(rows), 5**d)."""
    d = peaks.shape[1]
    steps = np.arange(-_FIT_REACH, _FIT_REACH + 1)
    index = [rows.reshape((-1,) + (1,) * d)]
    for axis in range(d):
        shape = [1] * (d + 1)
        shape[axis + 1] = len(steps)
        index.append(
            peaks[:, axis].reshape((-1,) + (1,) * d) + steps.reshape(shape)
        )
    patches = surfaces[tuple(index)].reshape(len(rows), len(steps) ** d)
    return patches.astype(np.float64)


def _fitted_covariances(
    values: np.ndarray, scores: np.ndarray, pixels: np.ndarray, d: int
) -> np.ndarray:
    """Covariances from whole, finite fit boxes of `d` axes, flattened
    (see `peak_covariance`)."""
    offsets = ((-_FIT_REACH, _FIT_REACH + 1),) * d
    _, solver = _quadratic_design(offsets)
    # One product per box, as `peak_covariance` does (the same rounding).
    quadratic = np.matmul(solver, values[..., np.newaxis])[:, 1 + d :, 0]
    return _covariances(quadratic, scores, pixels, d)


def _covariances(
    quadratic: np.ndarray, scores: np.ndarray, pixels: np.ndarray, d: int
) -> np.ndarray:
    """Covariances from the quadratic coefficients (n, P) of fitted peaks
    (see `peak_covariance`); NaN where no curvature is positive."""
    n = len(quadratic)
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    # A = -Hessian: A_ii = -2 c_ii for u_i², A_ij = -c_ij for u_i u_j.
    normal = np.empty((n, d, d))
    for (i, j), c in zip(pairs, quadratic.T):
        normal[:, i, j] = normal[:, j, i] = -2 * c if i == j else -c
    eigenvalues, vectors = np.linalg.eigh(normal)
    largest = eigenvalues.max(axis=1)
    bounded = largest > 0
    # Along a ridge the curvature vanishes (or turns): floored, so that
    # the covariance stays finite and points along the edge.
    eigenvalues = np.maximum(
        eigenvalues, _MIN_CURVATURE * largest[:, np.newaxis]
    )
    # A perfect score still leaves the scores' own imprecision as noise.
    mismatch = np.maximum(1.0 - scores, SCORE_PRECISION)
    noise = 2 * mismatch / np.maximum(pixels - d, 1)
    covariance = np.full((n, d, d), np.nan)
    # Unbounded peaks (no positive curvature) have no covariance.
    scaled = noise[bounded, np.newaxis, np.newaxis] * (
        vectors[bounded] / eigenvalues[bounded, np.newaxis, :]
    )
    covariance[bounded] = scaled @ np.swapaxes(vectors[bounded], 1, 2)
    return covariance


def axis_variances(covariances: np.ndarray) -> np.ndarray:
    """Variances (px²) along the axes of (n, d, d) `covariances`, smallest
    first, none below 0; infinite in every row that holds NaN (an
    unbounded peak)."""
    out = np.full(covariances.shape[:2], np.inf)
    finite = np.isfinite(covariances).all(axis=(1, 2))
    if finite.any():
        values = np.linalg.eigvalsh(covariances[finite])
        out[finite] = np.maximum(values, 0.0)
    return out


@functools.lru_cache(maxsize=64)
def _quadratic_design(
    offsets: tuple[tuple[int, int], ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix of a full quadratic over the offsets' box, and its
    pseudo-inverse (the least-squares solver), cached: most peaks share
    the whole 5 x 5 box."""
    grid = np.meshgrid(*[np.arange(a, b) for a, b in offsets], indexing="ij")
    u = [g.ravel().astype(np.float64) for g in grid]
    d = len(u)
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    design = np.stack(
        [np.ones_like(u[0]), *u, *[u[i] * u[j] for i, j in pairs]], axis=1
    )
    return design, np.linalg.pinv(design)
