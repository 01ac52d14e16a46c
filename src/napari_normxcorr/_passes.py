"""The two passes of match_points: forward (each point's window, peak,
sub-pixel position and second peak) and back (the match of the match,
for the consistency check), batch by batch on all cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ._masked import unscored_at_floor
from ._matcher import Matcher
from ._parallel import Workspace, batches, in_threads
from ._peaks import (
    argmax_index,
    parabolic_shift,
    peak_covariance,
    second_peak,
)
from ._result import Status, Surface, statuses
from ._subpixel import refine_shift
from ._windows import Window

# What the worker threads make of one window and its surface.
Analyse = Callable[[Window, np.ndarray], object]


class Found(NamedTuple):
    """What the correlation says about one point."""

    corner: np.ndarray  # template corner in the search window, sub-pixel
    score: float
    refined: bool
    second: float
    on_border: bool
    covariance: np.ndarray  # (d, d) px², NaN when unbounded
    surface: np.ndarray | None


class ForwardPass:
    """The forward match of every point: positions, scores, flags."""

    def __init__(
        self,
        matcher: Matcher,
        points: np.ndarray,
        subpixel: bool,
        keep_surfaces: bool,
    ):
        n = len(points)
        self.matcher, self.points = matcher, points
        self.subpixel, self.keep_surfaces = subpixel, keep_surfaces
        self.matched = np.full(points.shape, np.nan)
        self.score = np.full(n, np.nan)
        self.second = np.full(n, np.nan)
        self.refined = np.zeros(n, dtype=bool)
        self.status = statuses(n)
        self.on_border = np.zeros(n, dtype=bool)
        d = matcher.ndim
        self.covariance = np.full((n, d, d), np.nan)
        self.uncertainty = np.full(n, np.nan)
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
        work = _worker(matcher, self.analyse)
        for batch, found in in_threads(work, batches(groups, batch_size)):
            for window, f in zip(batch, found):
                self.record(window, f)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        matcher.maps.clear()  # the result keeps the matcher, not the maps

    def analyse(self, window: Window, surface: np.ndarray) -> Found:
        """Peak, sub-pixel position and second peak of one surface.

        Runs in the worker threads: all per-point work uses every core.
        """
        kept = surface
        if window.masked:
            surface = unscored_at_floor(surface)
        peak = argmax_index(surface)
        corner, best, is_refined = _locate(
            window, surface, peak, self.subpixel
        )
        assert window.template is not None
        pixels = window.template.size
        if window.template_valid is not None:
            pixels = int(np.count_nonzero(window.template_valid))
        return Found(
            corner,
            best,
            is_refined,
            second_peak(surface)[1],
            on_border(peak, surface.shape),
            peak_covariance(surface, peak, best, pixels),
            kept.copy() if self.keep_surfaces else None,
        )

    def record(self, window: Window, found: Found | Status) -> None:
        """Keep what was found for the window's row."""
        row, d = window.row, self.matcher.ndim
        if isinstance(found, Status):
            self.status[row] = found
            return
        self.score[row], self.second[row] = found.score, found.second
        self.refined[row] = found.refined
        self.on_border[row] = found.on_border
        self.covariance[row] = found.covariance
        self.uncertainty[row] = largest_std(found.covariance)
        point = self.points[row]
        origin = window.origin(point[-d:])
        if found.surface is not None:
            self.surfaces[row] = Surface(found.surface, origin, window.plane)
        self.matched[row, :-d] = point[:-d]
        self.matched[row, -d:] = origin + found.corner


def largest_std(covariance: np.ndarray) -> float:
    """Square root of the largest eigenvalue; infinite when NaN."""
    if not np.isfinite(covariance).all():
        return np.inf
    return float(np.sqrt(max(np.linalg.eigvalsh(covariance).max(), 0.0)))


def on_border(peak: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether `peak` touches an edge of a surface of `shape`.

    An axis one position wide is all edge: the window could not move
    along it, so the match there is unknown, never confirmed.
    """
    return any(p == 0 or p == s - 1 for p, s in zip(peak, shape))


def _worker(
    matcher: Matcher, analyse: Analyse
) -> Callable[[Sequence[Window], int, Workspace], list]:
    """Worker body: read a batch, correlate it, analyse each window.

    Returns one entry per window: ``analyse(window, surface)``, or the
    Status of a window that cannot be matched (``non-finite data``,
    ``too little data``, ``flat template``: its NCC is 0 everywhere, with
    no position to find). Pixels are read here, so only the
    batches being worked on are in memory.
    """

    def run(
        batch: Sequence[Window], workers: int, workspace: Workspace
    ) -> list:
        found: dict[int, object] = {}
        for window in batch:
            found[window.row] = (
                matcher.data_status(window)
                if window.read()
                else Status.NON_FINITE
            )
        good = [w for w in batch if found[w.row] == Status.OK]
        if good:
            results = matcher.surfaces(good, workers, workspace)
            for window, surface, is_flat in zip(good, *results):
                # No position kept enough data in both windows.
                if window.masked and np.isnan(surface).all():
                    found[window.row] = Status.TOO_LITTLE_DATA
                elif is_flat:
                    found[window.row] = Status.FLAT_TEMPLATE
                else:
                    found[window.row] = analyse(window, surface)
        for window in batch:
            window.release()
        return [found[w.row] for w in batch]

    return run


def _locate(
    window: Window, surface: np.ndarray, peak: tuple[int, ...], subpixel: bool
) -> tuple[np.ndarray, float, bool]:
    """Corner of the template in the search window, its score, refined?"""
    integer = np.asarray(peak, dtype=np.float64)
    if not subpixel:
        return integer, float(surface[peak]), False
    # A surface one position wide has nothing to refine along that axis;
    # Gauss-Newton on the template patch would use the masked pixels.
    assert window.template is not None and window.search is not None
    # Gauss-Newton needs a template of at least 3 pixels along each axis
    # (its gradients skip the outermost ones).
    if (
        all(s > 1 for s in surface.shape)
        and min(window.template.shape) >= 3
        and not window.masked
    ):
        refinement = refine_shift(window.template, window.search, peak)
        if refinement.converged:
            return refinement.position, refinement.score, True
    return (
        integer + parabolic_shift(surface, peak),
        float(surface[peak]),
        False,
    )


def back_match_distances(
    matcher: Matcher,
    points: np.ndarray,
    matched: np.ndarray,
    todo: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Distance from each point to the back-match of its match.

    Only the rows in `todo` are checked (NaN elsewhere). The back-match
    searches as far as the forward match did: a better copy of the match's
    content anywhere in that window shows that the match is not mutual.
    """
    d = matcher.ndim
    distance = np.full(len(points), np.nan)
    todo = todo & np.isfinite(matched).all(axis=1)
    back_status = statuses(len(points), Status.OUTSIDE_IMAGE)
    back_status[todo] = Status.OK
    groups = matcher.place_all(matched, points, back_status, forward=False)
    matcher.prepare_maps(groups)

    def analyse(window: Window, surface: np.ndarray) -> np.ndarray:
        if window.masked:
            surface = unscored_at_floor(surface)
        peak = argmax_index(surface)
        return np.asarray(peak) + parabolic_shift(surface, peak)

    back_match = _worker(matcher, analyse)
    for batch, found in in_threads(back_match, batches(groups, batch_size)):
        for window, corner in zip(batch, found):
            row = window.row
            if isinstance(corner, Status):
                continue  # no data, or flat, around the match: no verdict
            back = window.origin(matched[row, -d:]) + corner
            distance[row] = float(np.linalg.norm(back - points[row, -d:]))
    matcher.maps.clear()
    return distance
