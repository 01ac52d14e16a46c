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
class Refinement:
    """Outcome of :func:`refine_shift`."""

    position: np.ndarray  # top-left corner of the template in the window
    score: float  # NCC of the template and the resampled target there
    converged: bool


def _bspline_weights(fraction: float) -> np.ndarray:
    """Cubic B-spline weights of the 4 taps at -1, 0, 1, 2 for t in [0, 1)."""
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
    """Target patch of `shape` whose first pixel sits at float `corner`.

    `coefficients` are the B-spline coefficients of the window; `corner`
    is relative to its first pixel and must keep the 4 taps inside.
    """
    out = coefficients
    for axis, (c, n) in enumerate(zip(corner, shape)):
        base = int(np.floor(c))
        weights = _bspline_weights(c - base)
        taps = []
        for j, w in zip(range(-1, 3), weights):
            index = [slice(None)] * out.ndim
            index[axis] = slice(base + j, base + j + n)
            taps.append(w * out[tuple(index)])
        out = np.sum(taps, axis=0)
    return out


def _normalised(patch: np.ndarray) -> np.ndarray:
    centred = patch - patch.mean()
    energy = np.sqrt(np.sum(centred**2))
    return centred / energy if energy > 0 else centred


def refine_shift(
    template: np.ndarray, window: np.ndarray, peak: Sequence[int]
) -> Refinement:
    """Refine the integer NCC `peak` of `template` in `window`.

    Parameters
    ----------
    template : (m0, m1[, ...]) ndarray
        The template patch.
    window : (M0, M1[, ...]) ndarray
        The search window; `peak` indexes its 'valid' NCC surface, i.e. the
        template's top-left corner in the window.
    peak : sequence of int
        Integer position of the NCC maximum.

    Returns
    -------
    Refinement
        The refined corner (float), the NCC of the template against the
        resampled target there, and whether Gauss-Newton converged within
        :data:`MAX_TRAVEL` of the peak. When it did not, `position` is the
        integer peak.
    """
    template = np.asarray(template, dtype=np.float64)
    # Only the neighbourhood of the peak is ever resampled.
    reach = int(np.ceil(MAX_TRAVEL)) + 1 + _FILTER_REACH
    low = np.maximum(np.asarray(peak) - reach, 0)
    high = [
        min(p + m + reach, n)
        for p, m, n in zip(peak, template.shape, window.shape)
    ]
    window = window[tuple(slice(a, b) for a, b in zip(low, high))]
    refinement = _refine(template, window, np.asarray(peak) - low)
    refinement.position += low
    return refinement


def _refine(
    template: np.ndarray, window: np.ndarray, peak: np.ndarray
) -> Refinement:
    """refine_shift on a window cropped around the peak."""
    ndim = template.ndim
    padded = np.pad(
        np.asarray(window, dtype=np.float64), MARGIN, mode="reflect"
    )
    coefficients = ndimage.spline_filter(padded, order=3, mode="mirror")
    # Gradients are unreliable on the template's outermost pixels.
    inner = tuple(slice(1, n - 1) for n in template.shape)
    # The reference is normalised over the same pixels as the resampled
    # target, and its gradients scaled alike.
    centred = template[inner] - template[inner].mean()
    energy = np.sqrt(np.sum(centred**2))
    if energy == 0:
        return Refinement(np.asarray(peak, dtype=np.float64), np.nan, False)
    reference = centred / energy
    # np.gradient gives one array, not a list of one, in 1-D.
    slopes = np.gradient(template)
    slopes = [slopes] if ndim == 1 else slopes
    gradients = [g[inner] / energy for g in slopes]
    hessian = np.array([[np.sum(a * b) for b in gradients] for a in gradients])
    start = np.asarray(peak, dtype=np.float64)
    if np.linalg.cond(hessian) > 1e12:
        return Refinement(start, np.nan, False)
    inverse = np.linalg.inv(hessian)
    inner_shape = tuple(n - 2 for n in template.shape)
    position = start.copy()
    for _ in range(_MAX_ITERATIONS):
        # +1 for the skipped border row, + MARGIN for the padding.
        corner = position + 1 + MARGIN
        patch = _normalised(_resample(coefficients, corner, inner_shape))
        residual = patch - reference
        step = inverse @ np.array([np.sum(g * residual) for g in gradients])
        # Inverse compositional update for a translation.
        position = position - step
        if (
            not np.all(np.isfinite(position))
            or np.max(np.abs(position - start)) > MAX_TRAVEL
        ):
            return Refinement(start, np.nan, False)
        if np.max(np.abs(step)) < _TOLERANCE:
            break
    else:
        return Refinement(start, np.nan, False)
    full = _resample(coefficients, position + MARGIN, template.shape)
    score = float(np.sum(_normalised(full) * _normalised(template)))
    return Refinement(position, float(np.clip(score, -1, 1)), ndim > 0)
