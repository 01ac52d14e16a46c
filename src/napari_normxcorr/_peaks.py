"""Peaks of correlation surfaces: where, how sure, and sub-pixel fits."""

from __future__ import annotations

import numpy as np


def argmax_index(surface: np.ndarray) -> tuple[int, ...]:
    """Index of the largest value (the first one in C order on ties)."""
    return tuple(
        int(i) for i in np.unravel_index(np.argmax(surface), surface.shape)
    )


def parabolic_shift(surface: np.ndarray, peak) -> np.ndarray:
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
