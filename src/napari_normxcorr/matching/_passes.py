"""The forward pass of match_points (each point's window, peak, sub-pixel
position and second peak), batch by batch on all cores, and the workers
that the back pass (`_back_match`) shares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from ..core._masked import unscored_at_floor
from ..core._parallel import Workspace, batches, in_threads
from ..core._peak_covariance import axis_variances, peak_covariances
from ..core._peaks import (
    argmax_indices,
    on_borders,
    parabolic_shifts,
    second_peaks,
)
from ..core._windows import Window
from ._correlation import map_key
from ._matcher import Matcher
from ._motions import motion_gaps
from ._result import Status, Surface, statuses
from ._shape_functions import ShapeFunction
from ._subpixel import refine_shifts
from ._warp_fit import MIN_SIDE, fit_warps

# Units of work hold about this many search pixels: enough windows that
# the calls around their arithmetic are paid once for many.
UNIT_PIXELS = 2**18
# An unscored position this close to the peak (pixels, the reach of the
# peak's fit) may hide the true peak.
HOLE_REACH = 2
# What the worker threads make of windows and their stacked surfaces:
# one entry per window.
Analyse = Callable[[list[Window], np.ndarray], list]


class Found(NamedTuple):
    """What the correlation says about one point."""

    corner: np.ndarray  # template corner in the search window, sub-pixel
    score: float
    refined: bool
    second: float
    on_border: bool
    covariance: np.ndarray  # (d, d) px², NaN when unbounded
    uncertainty: float  # px, the largest standard deviation
    motion_gap: float  # NaN when not judged (masked, small)
    surface: np.ndarray | None
    gradient: np.ndarray  # (d, d) d u_i / d x_j, NaN when not fitted


class Located(NamedTuple):
    """Where the templates of a stack of surfaces lie, and how sure.

    `covariance` (n, d, d) is a warp fit's (at its start where it did not
    converge), NaN without one; `gradient` (n, d, d) a converged warp's.
    """

    corners: np.ndarray  # (n, d) template corners in the search windows
    scores: np.ndarray
    refined: np.ndarray  # Gauss-Newton (with or without a warp) converged
    covariance: np.ndarray
    gradient: np.ndarray


class ForwardPass:
    """The forward match of every point: positions, scores, flags."""

    def __init__(
        self,
        matcher: Matcher,
        points: np.ndarray,
        subpixel: bool,
        keep_surfaces: bool,
        motions: bool = True,
        shape_order: int = 1,
    ):
        n = len(points)
        self.matcher, self.points = matcher, points
        self.subpixel, self.keep_surfaces = subpixel, keep_surfaces
        d = matcher.ndim
        # Order 0: a translation (Gauss-Newton on the shift alone).
        self.shape = ShapeFunction(d, shape_order) if shape_order else None
        # The motion gap costs as much as the rest of the analysis: only
        # when it is judged.
        self.motions = motions
        self.matched = np.full(points.shape, np.nan)
        self.score = np.full(n, np.nan)
        self.second = np.full(n, np.nan)
        self.refined = np.zeros(n, dtype=bool)
        self.status = statuses(n)
        self.on_border = np.zeros(n, dtype=bool)
        self.covariance = np.full((n, d, d), np.nan)
        self.gradient = np.full((n, d, d), np.nan)
        self.uncertainty = np.full(n, np.nan)
        self.motion_gap = np.full(n, np.nan)
        self.surfaces: dict[int, Surface] = {}

    def run(
        self,
        guesses: np.ndarray,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """Match every point whose windows can be placed."""
        matcher = self.matcher
        groups = matcher.place_all(self.points, guesses, self.status)
        matcher.prepare_maps(groups)
        total, done = sum(len(g) for g in groups), 0
        work = worker(matcher, self.analyse, batch_size)
        try:
            units = work_units(groups, batch_size)
            for batch, found in in_threads(work, units):
                self.record(batch, found)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        finally:
            matcher.maps.clear()  # the result keeps the matcher, not maps

    def analyse(
        self, windows: list[Window], surfaces: np.ndarray
    ) -> list[Found | Status]:
        """Peaks, sub-pixel positions and second peaks of stacked surfaces.

        Runs in the worker threads: all per-point work uses every core,
        and the steps that need no window's pixels run on the whole stack.
        A masked window whose surface has a hole (an unscored position)
        next to its peak, or no scored position for a second peak, is
        ``too little data``: its peak may stand beside the true one.
        """
        kept = surfaces
        surfaces = floored(windows, surfaces)
        peaks = argmax_indices(surfaces)
        shifts = parabolic_shifts(surfaces, peaks)
        second_at, second = second_peaks(surfaces, peaks)
        holed = _holed(windows, kept, peaks, second_at)
        d = self.matcher.ndim
        # Where each point lies in its template (a guided window's
        # template is resampled around the point's image in the target).
        pivots = np.array(
            [
                w.origin(self.points[w.row, -d:]) - w.search_start
                for w in windows
            ]
        )
        located = _locate(windows, surfaces, peaks, shifts, self.subpixel)
        # A surface one position wide has nothing to refine along that
        # axis.
        if self.subpixel and min(surfaces.shape[1:]) >= 2:
            if self.shape is not None:
                _fit_warps(windows, pivots, self.shape, located)
            _refine_shifts(windows, peaks, located)
        pixels = np.array([w.overlap(p) for w, p in zip(windows, peaks)])
        covariance = peak_covariances(surfaces, peaks, located.scores, pixels)
        # The fit says how precisely its pixels place the template, the
        # surface how far the peak stands out around it (along an edge,
        # hardly): the larger of the two bounds the position.
        fitted = np.isfinite(located.covariance).all(axis=(1, 2))
        bounded = fitted & np.isfinite(covariance).all(axis=(1, 2))
        warp = located.covariance[bounded]
        peak = covariance[bounded]
        larger = axis_variances(warp)[:, -1] > axis_variances(peak)[:, -1]
        covariance[bounded] = np.where(larger[:, None, None], warp, peak)
        covariance[fitted & ~bounded] = np.nan
        uncertainty = np.sqrt(axis_variances(covariance)[:, -1])
        border = on_borders(peaks, surfaces.shape[1:])
        motion = np.full(len(windows), np.nan)
        if self.motions:
            motion = _motion_gaps(windows, peaks, located.corners - peaks)
        return [
            Status.TOO_LITTLE_DATA
            if holed[k]
            else Found(
                located.corners[k],
                float(located.scores[k]),
                bool(located.refined[k]),
                float(second[k]),
                bool(border[k]),
                covariance[k],
                float(uncertainty[k]),
                float(motion[k]),
                kept[k].copy() if self.keep_surfaces else None,
                located.gradient[k],
            )
            for k in range(len(windows))
        ]

    def record(self, windows: Sequence[Window], found: list) -> None:
        """Keep what was found (a Found or a Status) for each window's
        row."""
        d = self.matcher.ndim
        matched = []
        for window, f in zip(windows, found):
            if isinstance(f, Status):
                self.status[window.row] = f
            else:
                matched.append((window, f))
        if not matched:
            return
        rows = np.array([w.row for w, _ in matched])
        columns = [f for _, f in matched]
        self.score[rows] = [f.score for f in columns]
        self.second[rows] = [f.second for f in columns]
        self.refined[rows] = [f.refined for f in columns]
        self.on_border[rows] = [f.on_border for f in columns]
        self.covariance[rows] = [f.covariance for f in columns]
        self.uncertainty[rows] = [f.uncertainty for f in columns]
        self.motion_gap[rows] = [f.motion_gap for f in columns]
        self.gradient[rows] = [f.gradient for f in columns]
        points = self.points[rows]
        origins = np.array(
            [w.origin(p) for (w, _), p in zip(matched, points[:, -d:])]
        )
        for (w, f), origin in zip(matched, origins):
            if f.surface is not None:
                self.surfaces[w.row] = Surface(f.surface, origin, w.plane)
        self.matched[rows, :-d] = points[:, :-d]
        self.matched[rows, -d:] = origins + [f.corner for f in columns]


def floored(windows: list[Window], surfaces: np.ndarray) -> np.ndarray:
    """`surfaces` with the unscored positions of masked windows at the
    floor (see `unscored_at_floor`), a copy when there are any."""
    masked = [k for k, w in enumerate(windows) if w.masked]
    if not masked:
        return surfaces
    surfaces = surfaces.copy()
    surfaces[masked] = unscored_at_floor(surfaces[masked])
    return surfaces


def _holed(
    windows: list[Window],
    surfaces: np.ndarray,
    peaks: np.ndarray,
    second_at: np.ndarray,
) -> np.ndarray:
    """Which masked windows' surfaces (NaN where unscored) have a hole
    within HOLE_REACH of their peak, or no scored second peak."""
    holed = np.zeros(len(windows), dtype=bool)
    for k, window in enumerate(windows):
        if not window.masked:
            continue
        surface = surfaces[k]
        box = tuple(
            slice(max(p - HOLE_REACH, 0), p + HOLE_REACH + 1) for p in peaks[k]
        )
        second = tuple(second_at[k])
        holed[k] = (
            bool(np.isnan(surface[box]).any())
            or min(second) < 0
            or bool(np.isnan(surface[second]))
        )
    return holed


def _motion_gaps(
    windows: list[Window], peaks: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """`motion_gaps` of the windows at their whole-pixel `peaks`, the
    matches `shifts` from them; NaN for masked windows (their pixels
    without data would enter the sums)."""
    gaps = np.full(len(windows), np.nan)
    rows = [k for k, w in enumerate(windows) if not w.masked]
    if rows:
        gaps[rows] = motion_gaps(
            np.stack([_template(windows[k]) for k in rows]),
            [_search(windows[k]) for k in rows],
            peaks[rows],
            shifts[rows],
        )
    return gaps


def work_units(
    groups: list[list[Window]], batch_size: int
) -> Iterator[Sequence[Window]]:
    """Runs of whole batches of `batch_size` windows of each group, as
    many batches as hold about UNIT_PIXELS search pixels (at least one).

    Small windows cost mostly the calls around their arithmetic: worked
    on together, they pay them once per unit, not once per batch.
    """
    for windows in groups:
        pixels = int(np.prod(windows[0].shapes[1])) * batch_size
        count = max(1, UNIT_PIXELS // max(pixels, 1))
        yield from batches([windows], count * batch_size)


def worker(
    matcher: Matcher, analyse: Analyse, batch_size: int
) -> Callable[[Sequence[Window], int, Workspace], list]:
    """Worker body: read a unit of batches, correlate it, analyse it.

    Returns one entry per window: its entry of ``analyse(windows,
    surfaces)``, or the Status of a window that cannot be matched
    (``non-finite data``, ``too little data``, ``flat template``: its NCC
    is 0 everywhere, with no position to find). Pixels are read here,
    so only the units being worked on are in memory. Each batch of
    `batch_size` windows takes its path (variance maps or not) alone.
    """

    def run(
        unit: Sequence[Window], workers: int, workspace: Workspace
    ) -> list:
        try:
            return _analysed(unit, workers, workspace)
        finally:
            for window in unit:
                window.release()  # pixels of failed units are freed too

    def _analysed(
        unit: Sequence[Window], workers: int, workspace: Workspace
    ) -> list:
        found: dict[int, object] = {}
        for window in unit:
            # A mapped plane was found in range as a whole.
            window.plane_in_range = map_key(window) in matcher.maps
            found[window.row] = (
                matcher.data_status(window)
                if window.read()
                else Status.NON_FINITE
            )
        good = [w for w in unit if found[w.row] == Status.OK]
        if good:
            position = {w.row: k for k, w in enumerate(unit)}
            runs = [position[w.row] // batch_size for w in good]
            surfaces, flat = matcher.surfaces(good, workers, workspace, runs)
            usable = []
            for k, window in enumerate(good):
                # No position kept enough data in both windows.
                if window.masked and np.isnan(surfaces[k]).all():
                    found[window.row] = Status.TOO_LITTLE_DATA
                elif flat[k]:
                    found[window.row] = Status.FLAT_TEMPLATE
                else:
                    usable.append(k)
            if usable:
                windows = [good[k] for k in usable]
                results = analyse(windows, surfaces[usable])
                for window, result in zip(windows, results):
                    found[window.row] = result
        return [found[w.row] for w in unit]

    return run


def _locate(
    windows: list[Window],
    surfaces: np.ndarray,
    peaks: np.ndarray,
    shifts: np.ndarray,
    subpixel: bool,
) -> Located:
    """Where each template lies in its search window by its whole-pixel
    peak (and the parabola fits' `shifts` at `peaks` when `subpixel`),
    and its score: the start of the refinements, and their fallback."""
    n, d = peaks.shape
    corners = peaks.astype(np.float64)
    if subpixel:
        corners += shifts
    return Located(
        corners,
        surfaces[(np.arange(n), *peaks.T)].astype(np.float64),
        np.zeros(n, dtype=bool),
        np.full((n, d, d), np.nan),
        np.full((n, d, d), np.nan),
    )


def _fit_warps(
    windows: list[Window],
    pivots: np.ndarray,
    shape: ShapeFunction,
    located: Located,
) -> None:
    """Refine `located` in place by a warp of each template about its
    point (`pivots`, in template pixels); masked windows on their pixels
    with data. Templates under MIN_SIDE pixels wide are left alone."""
    if not windows or min(_template(windows[0]).shape) < MIN_SIDE:
        return
    fits = fit_warps(
        np.stack([_template(w) for w in windows]),
        [w.template_valid for w in windows],
        [_search(w) for w in windows],
        [w.search_valid for w in windows],
        located.corners,
        pivots,
        shape,
    )
    won = np.flatnonzero(fits.converged)
    located.corners[won] = fits.corner[won]
    located.scores[won] = fits.score[won]
    located.refined[won] = True
    located.gradient[won] = fits.gradient[won]
    # Fits that did not converge give the covariance at their start
    # (misfit included) to whatever position replaces theirs.
    located.covariance[:] = fits.covariance


def _refine_shifts(
    windows: list[Window], peaks: np.ndarray, located: Located
) -> None:
    """Refine the shift of the templates not refined yet in place
    (Gauss-Newton on a translation, from the whole-pixel `peaks`)."""
    # Gauss-Newton needs a template of at least 3 pixels along each axis
    # (its gradients skip the outermost ones) and would use masked ones.
    if not windows or min(_template(windows[0]).shape) < 3:
        return
    rows = [
        k
        for k in np.flatnonzero(~located.refined).tolist()
        if not windows[k].masked
    ]
    if not rows:
        return
    refinement = refine_shifts(
        np.stack([_template(windows[k]) for k in rows]),
        [_search(windows[k]) for k in rows],
        peaks[rows],
    )
    won = np.asarray(rows)[refinement.converged]
    located.corners[won] = refinement.position[refinement.converged]
    located.scores[won] = refinement.score[refinement.converged]
    located.refined[won] = True


def _template(window: Window) -> np.ndarray:
    assert window.template is not None
    return window.template


def _search(window: Window) -> np.ndarray:
    assert window.search is not None
    return window.search
