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
from ..core._peak_covariance import peak_covariances
from ..core._peaks import (
    argmax_indices,
    parabolic_heights,
    parabolic_shifts,
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
    banks: dict | None = None,
    full: bool = True,
) -> PassMatches:
    """Match the windows of `radius` around whole-pixel `points` (n, D) of
    `template_image` within `reach` pixels of ``points + shift`` in
    `target` (`shift` whole pixels too), as far as `target` reaches.

    A search window with pixels missing is tried again with half the
    reach, down to one pixel: the field of a pass leaves the target
    without data in a band along the edges where content entered, and
    a window that only grazes the band is searched short of it. Windows
    that still miss pixels are not `clean` (left to match_points).
    `banks` keeps the templates' spectra for the next pass over the same
    grid (the windows of the passes after the first do not change).
    Without `full`, the matches are not checked for ambiguity and
    precision (a pass whose vectors only guide the next).
    """
    n, d = points.shape
    centres = points + shift
    low, high = search_reach(centres, radius, reach, target.shape)
    templates = cut_windows(template_image, points - radius, 2 * radius + 1)
    clean = np.isfinite(templates).all(axis=tuple(range(1, d + 1)))
    searchable = np.all(low + high >= 0, axis=1)
    search = _Search(
        templates, target, centres, radius, reach, fft_dtype, banks
    )
    todo = np.flatnonzero(clean & searchable)
    limit = int(reach.max())
    while todo.size:
        low[todo] = np.minimum(low[todo], limit)
        high[todo] = np.minimum(high[todo], limit)
        todo = search.run(todo, low[todo], high[todo])
        if limit <= 1:
            break
        limit //= 2
    clean[todo] = False
    status = statuses(n, Status.TOO_LITTLE_DATA)
    status[~searchable] = Status.OUTSIDE_IMAGE
    return _judged(
        search.surfaces,
        shift,
        reach,
        (low, high),
        search.flat,
        clean & searchable,
        status,
        limits,
        int(np.prod(2 * radius + 1)),
        full,
    )


class _Search:
    """The surfaces of one pass, filled group by group of one shape."""

    def __init__(
        self,
        templates: np.ndarray,
        target: np.ndarray,
        centres: np.ndarray,
        radius: np.ndarray,
        reach: np.ndarray,
        fft_dtype: type[np.floating],
        banks: dict | None,
    ):
        n = len(templates)
        self.banks = {} if banks is None else banks
        self.templates, self.target = templates, target
        self.centres, self.radius, self.reach = centres, radius, reach
        self.fft_dtype = fft_dtype
        self.surfaces = np.full((n, *(2 * reach + 1)), np.nan)
        self.flat = np.zeros(n, dtype=bool)
        # Most targets have every pixel: no window then needs checking.
        self.whole = bool(np.isfinite(target).all())

    def run(
        self, rows: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> np.ndarray:
        """Search `rows` from `low` below to `high` above their centres;
        return the rows whose windows miss pixels."""
        d = low.shape[1]
        axes = tuple(range(1, d + 1))
        extents = np.concatenate([low, high], axis=1)
        missing = []
        # Windows clipped alike (by the image's edges) share one shape.
        for extent in np.unique(extents, axis=0):
            group = rows[np.all(extents == extent, axis=1)]
            below, above = extent[:d], extent[d:]
            windows = cut_windows(
                self.target,
                self.centres[group] - self.radius - below,
                2 * self.radius + 1 + below + above,
            )
            finite = (
                np.ones(len(group), dtype=bool)
                if self.whole
                else np.isfinite(windows).all(axis=axes)
            )
            missing.append(group[~finite])
            group, windows = group[finite], windows[finite]
            key = (
                windows.shape[1:],
                self.templates.shape[1:],
                group.tobytes(),
            )
            kept = self.banks.setdefault(key, {})
            values, flats = _correlated(
                self.templates[group], windows, self.fft_dtype, kept
            )
            place = tuple(
                slice(r - b, r + a + 1)
                for r, b, a in zip(self.reach, below, above)
            )
            self.surfaces[(group, *place)] = values
            self.flat[group] = flats
        return np.concatenate(missing) if missing else rows[:0]


def _correlated(
    templates: np.ndarray,
    windows: np.ndarray,
    fft_dtype: type[np.floating],
    banks: dict[int, TemplateBank],
) -> tuple[np.ndarray, np.ndarray]:
    """'valid' NCC surfaces of each template over its window, a batch of
    BATCH at a time on every core; NaN where a window could not be
    scored; and which templates are flat. The batches' templates are
    prepared once into `banks` (by first row), and kept there."""
    rows = np.arange(len(templates))

    def correlate(batch: np.ndarray, workers: int, workspace: object) -> tuple:
        every = np.arange(len(batch))
        bank = banks.get(int(batch[0]))
        if bank is None:
            bank = TemplateBank(
                len(batch),
                templates.shape[1:],
                windows.shape[1:],
                fft_dtype,
                1,
            )
            bank.put(every, batch[:, None], templates[batch])
            banks[int(batch[0])] = bank
        values, scored = small_ncc(bank, every, windows[batch])
        values[~scored] = np.nan
        return values, bank.flat.copy()

    shape = np.subtract(windows.shape, templates.shape)[1:] + 1
    surfaces = np.empty((len(rows), *shape))
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
    full: bool,
) -> PassMatches:
    """Peaks, sub-pixel positions, scores and verdicts of the surfaces;
    `status` holds the verdicts of the rows not scored. Only a `full`
    judgement looks for second peaks and the peaks' covariances (and
    flags ``ambiguous`` and ``uncertain``)."""
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
    if full:
        _, second = second_peaks(part, peaks)
        ratio[rows] = peak_ratio(score[rows], second)
        pixels = np.full(len(rows), templates_size)
        covariance[rows] = peak_covariances(part, peaks, score[rows], pixels)
    status[rows] = Status.OK
    on_edge = np.zeros(n, dtype=bool)
    on_edge[rows] = border
    tests = [
        (flat, Status.FLAT_TEMPLATE),
        (~(score >= limits.min_score), Status.LOW_SCORE),
        (on_edge, Status.ON_BORDER),
    ]
    if full:
        tests += [
            (~(ratio >= limits.min_peak_ratio), Status.AMBIGUOUS),
            (
                _largest_deviation(covariance) > limits.max_uncertainty,
                Status.UNCERTAIN,
            ),
        ]
    out = status.copy()
    # The first failed test names the row: the most serious.
    for failed, verdict in reversed(tests):
        out[(status == Status.OK) & failed] = verdict
    return PassMatches(offset, score, ratio, covariance, out, clean)


def _largest_deviation(covariance: np.ndarray) -> np.ndarray:
    """Square root of the largest eigenvalue of each (D, D) covariance;
    infinite where it has a NaN."""
    finite = np.isfinite(covariance).all(axis=(1, 2))
    out = np.full(len(covariance), np.inf)
    if finite.any():
        top = np.linalg.eigvalsh(covariance[finite])[:, -1]
        out[finite] = np.sqrt(np.maximum(top, 0.0))
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
