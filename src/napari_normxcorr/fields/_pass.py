"""One pass over a grid: NCC of every window with its search window, batched.

Every window of a pass has one shape, so the windows go through the
small-window NCC of the tracker (``core._small_ncc``) a batch at a time:
one transform per window and per template, no Python per point. Windows
with pixels missing (NaN, masks) are left to match_points, whose masked
NCC scores them (see ``_match_field``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core._parallel import in_threads
from ..core._peaks import (
    argmax_indices,
    parabolic_heights,
    parabolic_shifts,
    peak_covariances,
    second_peaks,
)
from ..core._small_ncc import TemplateBank, small_ncc
from ..matching._result import Status, statuses
from ..matching._verdicts import peak_ratio
from ._windows import cut_windows, search_reach

# Windows per batch: their spectra and sums stay in cache-sized arrays.
BATCH = 256


class Limits(NamedTuple):
    """The per-vector thresholds of a pass (as match_points')."""

    min_score: float
    min_peak_ratio: float
    max_uncertainty: float


class PassMatches(NamedTuple):
    """Matches of one pass, one row per grid point."""

    offset: np.ndarray  # (n, D) from the template point; NaN if none
    score: np.ndarray
    peak_ratio: np.ndarray
    covariance: np.ndarray  # (n, D, D) px²
    status: np.ndarray  # Status; TOO_LITTLE_DATA where pixels are missing
    clean: np.ndarray  # (n,) bool: every pixel of both windows present


def match_windows(
    template_image: np.ndarray,
    target: np.ndarray,
    points: np.ndarray,
    shift: np.ndarray,
    radius: np.ndarray,
    reach: np.ndarray,
    limits: Limits,
    fft_dtype: type[np.floating],
) -> PassMatches:
    """Match the windows of `radius` around whole-pixel `points` (n, D) of
    `template_image` within `reach` pixels of ``points + shift`` in
    `target` (`shift` whole pixels too), as far as `target` reaches."""
    n, d = points.shape
    centres = points + shift
    low, high = search_reach(centres, radius, reach, target.shape)
    templates = cut_windows(template_image, points - radius, 2 * radius + 1)
    axes = tuple(range(1, d + 1))
    clean = np.isfinite(templates).all(axis=axes)
    searchable = np.all(low + high >= 0, axis=1)
    surfaces = np.full((n, *(2 * reach + 1)), np.nan)
    flat = np.zeros(n, dtype=bool)
    extents = np.concatenate([low, high], axis=1)
    # Windows clipped alike by the image's edges share one shape.
    for extent in np.unique(extents[clean & searchable], axis=0):
        rows = np.flatnonzero(
            clean & searchable & np.all(extents == extent, axis=1)
        )
        below, above = extent[:d], extent[d:]
        windows = cut_windows(
            target,
            centres[rows] - radius - below,
            2 * radius + 1 + below + above,
        )
        finite = np.isfinite(windows).all(axis=axes)
        clean[rows[~finite]] = False
        rows, windows = rows[finite], windows[finite]
        values, flats = _correlated(templates[rows], windows, fft_dtype)
        place = tuple(
            slice(r - b, r + a + 1) for r, b, a in zip(reach, below, above)
        )
        surfaces[(rows, *place)] = values
        flat[rows] = flats
    status = statuses(n, Status.TOO_LITTLE_DATA)
    status[~searchable] = Status.OUTSIDE_IMAGE
    return _judged(
        surfaces,
        shift,
        reach,
        (low, high),
        flat,
        clean & searchable,
        status,
        limits,
        int(np.prod(2 * radius + 1)),
    )


def _correlated(
    templates: np.ndarray, windows: np.ndarray, fft_dtype: type[np.floating]
) -> tuple[np.ndarray, np.ndarray]:
    """'valid' NCC surfaces of each template over its window, a batch of
    BATCH at a time on every core; NaN where a window could not be
    scored; and which templates are flat."""
    rows = np.arange(len(templates))

    def correlate(batch: np.ndarray, workers: int, workspace: object) -> tuple:
        bank = TemplateBank(
            len(batch), templates.shape[1:], windows.shape[1:], fft_dtype, 1
        )
        every = np.arange(len(batch))
        bank.put(every, batch[:, None], templates[batch])
        values, scored = small_ncc(bank, every, windows[batch])
        values[~scored] = np.nan
        return values, bank.flat.copy()

    surfaces = np.empty(
        (len(rows), *(np.subtract(windows.shape, templates.shape)[1:] + 1))
    )
    flat = np.zeros(len(rows), dtype=bool)
    chunks = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
    for batch, (values, flats) in in_threads(correlate, chunks):
        surfaces[batch], flat[batch] = values, flats
    return surfaces, flat


def _judged(
    surfaces: np.ndarray,
    shift: np.ndarray,
    reach: np.ndarray,
    extents: tuple[np.ndarray, np.ndarray],
    flat: np.ndarray,
    clean: np.ndarray,
    status: np.ndarray,
    limits: Limits,
    templates_size: int,
) -> PassMatches:
    """Peaks, sub-pixel positions, scores and verdicts of the surfaces;
    `status` holds the verdicts of the rows not scored."""
    n, d = shift.shape
    offset = np.full((n, d), np.nan)
    score = np.full(n, np.nan)
    ratio = np.full(n, np.nan)
    covariance = np.full((n, d, d), np.nan)
    scored = clean & np.isfinite(surfaces).any(axis=tuple(range(1, d + 1)))
    rows = np.flatnonzero(scored)
    if rows.size == 0:
        return PassMatches(offset, score, ratio, covariance, status, clean)
    # Positions beyond the image score as the worst match there is.
    part = np.nan_to_num(surfaces[rows], nan=-1.0)
    peaks = argmax_indices(part)
    moved = peaks - reach
    low, high = extents[0][rows], extents[1][rows]
    border = np.any((moved <= -low) | (moved >= high), axis=1)
    offset[rows] = shift[rows] + moved + _gaussian_shifts(part, peaks)
    heights = parabolic_heights(part, np.arange(len(rows)), peaks)
    score[rows] = np.clip(heights, -1.0, 1.0)
    _, second = second_peaks(part, peaks)
    ratio[rows] = peak_ratio(score[rows], second)
    pixels = np.full(len(rows), templates_size)
    covariance[rows] = peak_covariances(part, peaks, score[rows], pixels)
    status[rows] = Status.OK
    on_edge = np.zeros(n, dtype=bool)
    on_edge[rows] = border
    status = _verdicts(status, score, ratio, covariance, on_edge, flat, limits)
    return PassMatches(offset, score, ratio, covariance, status, clean)


def _verdicts(
    status: np.ndarray,
    score: np.ndarray,
    ratio: np.ndarray,
    covariance: np.ndarray,
    border: np.ndarray,
    flat: np.ndarray,
    limits: Limits,
) -> np.ndarray:
    """Statuses of the scored rows, the most serious failed test first."""
    with np.errstate(invalid="ignore"):
        largest = np.sqrt(np.linalg.eigvalsh(np.nan_to_num(covariance))[:, -1])
    largest[~np.isfinite(covariance).all(axis=(1, 2))] = np.inf
    tests = [
        (flat, Status.FLAT_TEMPLATE),
        (~(score >= limits.min_score), Status.LOW_SCORE),
        (border, Status.ON_BORDER),
        (~(ratio >= limits.min_peak_ratio), Status.AMBIGUOUS),
        (largest > limits.max_uncertainty, Status.UNCERTAIN),
    ]
    out = status.copy()
    for failed, verdict in reversed(tests):
        out[(status == Status.OK) & failed] = verdict
    return out


def _gaussian_shifts(surfaces: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-pixel peak positions by the three-point Gaussian fit along each
    axis, the PIV standard for particle images, whose correlation peaks
    are Gaussian (less bias towards whole pixels than a parabola); the
    parabola where a value of the three is not positive."""
    n, d = peaks.shape
    shift = parabolic_shifts(surfaces, peaks)
    stack = np.arange(n)
    for axis in range(d):
        size = surfaces.shape[1 + axis]
        inner = (peaks[:, axis] > 0) & (peaks[:, axis] < size - 1)
        around = []
        for step in (-1, 0, 1):
            at = peaks.copy()
            at[:, axis] = np.clip(at[:, axis] + step, 0, size - 1)
            around.append(surfaces[(stack, *at.T)])
        low, mid, high = around
        positive = inner & (low > 0) & (mid > 0) & (high > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll, lm, lh = np.log(low), np.log(mid), np.log(high)
            vertex = 0.5 * (ll - lh) / (ll - 2 * lm + lh)
        fit = positive & np.isfinite(vertex)
        shift[fit, axis] = np.clip(vertex[fit], -0.5, 0.5)
    return shift
