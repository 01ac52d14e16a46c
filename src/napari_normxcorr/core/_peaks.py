"""Peaks of correlation surfaces: where, how sure, and sub-pixel fits."""

from __future__ import annotations

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
