"""Peaks of correlation surfaces: where, how sure, and sub-pixel fits."""

from __future__ import annotations

import functools

import numpy as np

from ._parallel import Workspace, thread_workspace


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


def peak_half_widths(surface: np.ndarray, peak: tuple[int, ...]) -> list[int]:
    """How far the peak stays above half its height, along each axis.

    Half height is halfway between the peak and the surface's median, so a
    broad peak (smooth texture) gets a broad neighbourhood. The median of
    a few thousand evenly spread values serves, at a fraction of the cost.
    """
    values = surface.ravel()
    sample = values[:: max(1, values.size // 4096)].copy()
    middle = sample.size // 2
    sample.partition(middle)
    typical = sample[middle]
    level = 0.5 * (surface[peak] + typical)
    widths = []
    for axis, index in enumerate(peak):
        through: tuple[int | slice, ...] = (
            *peak[:axis],
            slice(None),
            *peak[axis + 1 :],
        )
        line = surface[through]
        below = np.flatnonzero(line <= level)
        before = below[below < index]
        after = below[below > index]
        left = index - before[-1] if before.size else index + 1
        right = after[0] - index if after.size else line.size - index
        widths.append(int(max(left, right)))
    return widths


def second_peak(
    surface: np.ndarray,
) -> tuple[tuple[int, ...] | None, float]:
    """Index and value of the best peak outside the main peak's neighbourhood.

    The neighbourhood reaches as far as the main peak stays above half its
    height, and at least 2 pixels. The best local maximum outside it wins;
    without one, the best value outside; without any, ``(None, nan)``.
    """
    peak = argmax_index(surface)
    reach = [max(w, 2) for w in peak_half_widths(surface, peak)]
    low = [max(p - r, 0) for p, r in zip(peak, reach)]
    high = [p + r + 1 for p, r in zip(peak, reach)]
    # One surface at a time, so that its scratch arrays stay in cache.
    maxima = local_maxima(surface[np.newaxis], thread_workspace())[0]
    # Local maxima are few on a correlation surface: look at them alone.
    candidates = np.flatnonzero(maxima)
    coords = np.unravel_index(candidates, surface.shape)
    outside = np.zeros(candidates.size, dtype=bool)
    for c, a, b in zip(coords, low, high):
        outside |= (c < a) | (c >= b)
    candidates = candidates[outside]
    if candidates.size:
        best = candidates[np.argmax(surface.ravel()[candidates])]
    else:
        masked = surface.astype(np.float64)
        masked[tuple(slice(a, b) for a, b in zip(low, high))] = -np.inf
        best = np.argmax(masked)
        if masked.ravel()[best] == -np.inf:
            return None, np.nan
    index = tuple(int(i) for i in np.unravel_index(best, surface.shape))
    return index, float(surface[index])


# The quadratic of `peak_covariance` is fitted over this reach (5 x 5).
_FIT_REACH = 2
# Curvatures below this share of the largest are a ridge's: floored there.
_MIN_CURVATURE = 1e-6
_SCORE_PRECISION = 1e-4


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
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    # A = -Hessian: A_ii = -2 c_ii for u_i², A_ij = -c_ij for u_i u_j.
    normal = np.empty((d, d))
    for (i, j), c in zip(pairs, quadratic):
        normal[i, j] = normal[j, i] = -2 * c if i == j else -c
    eigenvalues, vectors = np.linalg.eigh(normal)
    if not eigenvalues.max() > 0:
        return np.full((d, d), np.nan)
    # Along a ridge the curvature vanishes (or turns): floored, so that
    # the covariance stays finite and points along the edge.
    eigenvalues = np.maximum(eigenvalues, _MIN_CURVATURE * eigenvalues.max())
    # Scores are exact to about 1e-4 (single-precision transforms): a
    # perfect score still leaves that much noise.
    mismatch = max(1.0 - score, _SCORE_PRECISION)
    noise = 2 * mismatch / max(pixels - d, 1)
    return noise * (vectors / eigenvalues) @ vectors.T


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
