"""How precisely a correlation peak places its match: the covariance of
the position from the peak's shape (see ``_peaks`` for the peaks)."""

from __future__ import annotations

import functools

import numpy as np

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
