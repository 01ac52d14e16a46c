"""Sub-pixel refinement of a match: Gauss-Newton on the template patch.

Fits on the NCC surface alone (three-point parabolas) are biased toward whole
pixels. Here the shift is refined by minimising the difference between the
template and the target resampled at the shifted position (Lucas-Kanade in
its inverse compositional form [1]_), with both patches normalised to zero
mean and unit energy so that gain and offset changes do not bias the shift.
The target is resampled with cubic B-splines.

.. [1] S. Baker and I. Matthews, "Lucas-Kanade 20 Years On: A Unifying
   Framework", IJCV 56(3), 2004.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Resampling needs this many extra pixels around the patch on each side.
MARGIN = 3
# Beyond this distance from the NCC peak the refinement has lost its way.
MAX_TRAVEL = 1.5
_MAX_ITERATIONS = 20
# The B-spline prefilter's reach fades by 0.27 per pixel: 12 pixels beyond
# what is resampled, a cropped window gives the same coefficients to 1e-7.
_FILTER_REACH = 12
_TOLERANCE = 1e-4


@dataclass
class Refinements:
    """Outcome of :func:`refine_shifts`, one entry per window."""

    position: np.ndarray  # (n, d) top-left corner of the template
    score: np.ndarray  # NCC of the template and the resampled target there
    converged: np.ndarray


def _bspline_weights(fraction: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights (4, ...) of the taps at -1, 0, 1, 2 for
    each fraction t in [0, 1) of an array."""
    t = fraction
    return (
        np.array(
            [
                (1 - t) ** 3,
                3 * t**3 - 6 * t**2 + 4,
                -3 * t**3 + 3 * t**2 + 3 * t + 1,
                t**3,
            ]
        )
        / 6.0
    )


def _resample(
    coefficients: np.ndarray, corner: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Target patches (n, *shape) whose first pixel sits at float `corner`.

    `coefficients` (n, ...) are the B-spline coefficients of the windows;
    `corner` (n, d) is relative to their first pixels and must keep the 4
    taps inside. Window by window: the taps are then slices (views), 5
    times faster on large windows than gathering them for all at once.
    """
    out = np.empty((len(coefficients), *shape))
    weights = _bspline_weights(corner - np.floor(corner))  # (4, n, d)
    base = np.floor(corner).astype(np.intp)
    for k, values in enumerate(coefficients):
        for axis, size in enumerate(shape):
            index: list[slice] = [slice(None)] * values.ndim
            total = None
            for j, w in zip(range(-1, 3), weights[:, k, axis]):
                index[axis] = slice(
                    base[k, axis] + j, base[k, axis] + j + size
                )
                term = w * values[tuple(index)]
                total = term if total is None else total + term
            assert total is not None
            values = total
        out[k] = values
    return out


def _normalised(patches: np.ndarray) -> np.ndarray:
    """Each patch (of a stack) minus its mean, over its energy if any."""
    axes = tuple(range(1, patches.ndim))
    centred = patches - patches.mean(axis=axes, keepdims=True)
    energy = np.sqrt(np.sum(centred**2, axis=axes, keepdims=True))
    return np.divide(centred, energy, out=centred.copy(), where=energy > 0)


def refine_shifts(
    templates: np.ndarray,
    windows: np.ndarray | Sequence[np.ndarray],
    peaks: np.ndarray,
) -> Refinements:
    """Refine the integer NCC `peaks` of `templates` in `windows`.

    Parameters
    ----------
    templates : (n, m0, m1[, ...]) ndarray
        Template patches of one shape.
    windows : (n, M0, M1[, ...]) ndarray, or n such arrays
        Search windows of one shape (only the part around each peak is
        read, so a list saves stacking them); ``peaks[k]`` indexes the
        'valid' NCC surface of window k, i.e. the template's top-left
        corner in it.
    peaks : (n, d) ndarray of int
        Integer positions of the NCC maxima.

    Returns
    -------
    Refinements
        The refined corners (float), the NCC of each template against the
        resampled target there, and whether Gauss-Newton converged within
        :data:`MAX_TRAVEL` of the peak. Where it did not, `position` is
        the integer peak and `score` NaN.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    n = len(peaks)
    out = Refinements(
        peaks.astype(np.float64), np.full(n, np.nan), np.zeros(n, bool)
    )
    # Only the neighbourhood of the peak is ever resampled: windows are
    # cropped around it, and crops of one shape are refined together.
    reach = int(np.ceil(MAX_TRAVEL)) + 1 + _FILTER_REACH
    low = np.maximum(peaks - reach, 0)
    high = np.minimum(
        peaks + np.asarray(templates.shape[1:]) + reach,
        np.asarray(np.shape(windows[0]) if n else templates.shape[1:]),
    )
    sizes, which = np.unique(high - low, axis=0, return_inverse=True)
    for key, size in enumerate(sizes):
        rows = np.flatnonzero(np.ravel(which) == key)
        crops = np.stack(
            [
                windows[k][
                    tuple(slice(a, a + s) for a, s in zip(low[k], size))
                ]
                for k in rows.tolist()
            ]
        )
        part = _refine(
            np.asarray(templates[rows], dtype=np.float64),
            crops.astype(np.float64, copy=False),
            peaks[rows] - low[rows],
        )
        out.position[rows] = part.position + low[rows]
        out.score[rows] = part.score
        out.converged[rows] = part.converged
    return out


def _refine(
    template: np.ndarray, window: np.ndarray, peak: np.ndarray
) -> Refinements:
    """refine_shifts on windows cropped alike around their peaks."""
    n, d = peak.shape
    axes = tuple(range(1, d + 1))
    padded = np.pad(window, [(0, 0)] + [(MARGIN, MARGIN)] * d, mode="reflect")
    for axis in axes:
        ndimage.spline_filter1d(
            padded, order=3, axis=axis, mode="mirror", output=padded
        )
    coefficients = padded
    # Gradients are unreliable on the template's outermost pixels.
    inner = (slice(None),) + tuple(slice(1, m - 1) for m in template.shape[1:])
    # The reference is normalised over the same pixels as the resampled
    # target, and its gradients scaled alike.
    centred = template[inner] - template[inner].mean(axis=axes, keepdims=True)
    energy = np.sqrt(np.sum(centred**2, axis=axes))
    start = peak.astype(np.float64)
    out = Refinements(start.copy(), np.full(n, np.nan), np.zeros(n, bool))
    usable = energy > 0
    scale = np.where(usable, energy, 1.0).reshape(-1, *[1] * d)
    reference = centred / scale
    # np.gradient gives one array, not a list of one, along one axis.
    slopes = np.gradient(template, axis=axes)
    slopes = [slopes] if d == 1 else slopes
    gradients = np.stack([g[inner] / scale for g in slopes], axis=1)
    # The residual is between normalised patches: a shift moves it only
    # along the gradients' part orthogonal to the mean and to the
    # reference. Without that projection the steps fall short (by 4x on
    # a smooth line of 13 pixels) and converge slowly.
    flat = gradients.reshape(n, d, -1)
    flat = flat - flat.mean(axis=2, keepdims=True)
    along = reference.reshape(n, 1, -1)
    flat -= np.sum(flat * along, axis=2, keepdims=True) * along
    hessian = flat @ flat.transpose(0, 2, 1)
    usable[usable] = np.linalg.cond(hessian[usable]) <= 1e12
    inverse = np.zeros_like(hessian)
    inverse[usable] = np.linalg.inv(hessian[usable])
    inner_shape = tuple(m - 2 for m in template.shape[1:])
    position = start.copy()
    todo = np.flatnonzero(usable)
    for _ in range(_MAX_ITERATIONS):
        if todo.size == 0:
            break
        # +1 for the skipped border row, + MARGIN for the padding.
        corner = position[todo] + 1 + MARGIN
        patch = _normalised(_resample(coefficients[todo], corner, inner_shape))
        residual = (patch - reference[todo]).reshape(len(todo), -1, 1)
        step = (inverse[todo] @ (flat[todo] @ residual))[..., 0]
        # Inverse compositional update for a translation.
        position[todo] -= step
        moved = position[todo]
        lost = ~np.isfinite(moved).all(axis=1) | (
            np.abs(moved - start[todo]).max(axis=1) > MAX_TRAVEL
        )
        done = ~lost & (np.abs(step).max(axis=1) < _TOLERANCE)
        out.converged[todo[done]] = True
        todo = todo[~(lost | done)]
    won = np.flatnonzero(out.converged)
    if won.size:
        full = _resample(
            coefficients[won], position[won] + MARGIN, template.shape[1:]
        )
        score = np.sum(
            _normalised(full) * _normalised(template[won]), axis=axes
        )
        out.position[won] = position[won]
        out.score[won] = np.clip(score, -1, 1)
    return out
