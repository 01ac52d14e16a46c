"""The tracker of track_points: the sweeps through a stack, frame by frame.

:class:`Tracker` follows every point forwards and backwards from the frame
it is given in. A step predicts each point by constant velocity, finds the
NCC peak of its template around the prediction (one ``match_points`` call
for all points of the frame), refines it against the point's reference
subset with a shape function (``matching._shape``), judges the vertex, and renews
the reference where the rule of :class:`Options` asks for it. The public
functions and the checks of their arguments live in ``_track`` and
``_track_inputs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..core._arrays import LazyArray
from ..core._validate import fft_dtype
from ..io._chunk_cache import cached
from ..matching._match import match_points
from ..matching._result import Status
from ..matching._shape import (
    FILTER_REACH,
    MAX_TRAVEL,
    Reference,
    Refined,
    Regions,
    reference_subsets,
    refine,
)
from ..matching._shape_functions import ShapeFunction
from ._coarse import Coarse, CoarseSearch
from ._track_inputs import Planes
from ._tracks import TrackResult

# Verdicts that mean nothing was found where the point should be.
_NOT_FOUND = (
    Status.OUTSIDE_IMAGE,
    Status.NON_FINITE,
    Status.NO_FIT,
    Status.TOO_LITTLE_DATA,
)
# The verdicts of match_points a track keeps: where the windows could be
# read, and whether the peak is good and inside. The others judge a pair
# of images (neighbours, peak shape, back-match) on whole pixels; along a
# track, ambiguity is judged on the refined score (see _judged).
_COARSE_VERDICTS = (
    *_NOT_FOUND,
    Status.OK,
    Status.FLAT_TEMPLATE,
    Status.LOW_SCORE,
    Status.ON_BORDER,
)
# Farther than this apart (pixels), the constant-velocity prediction and
# the NCC peak disagree, and the refinement starts from the peak.
_PREDICTION_TRUST = 1.0
# The most memory the kept template spectra of the small-window search
# may take (about 15 000 points at radii 15/30); more points take
# match_points, which holds only a batch.
BANK_BYTES = 2**28
# Cubic B-spline taps reach 2 pixels beyond a sample; rounding 0.5 more.
_TAPS = 2.5


@dataclass(frozen=True)
class Options:
    """The keywords of track_points, checked: radii per axis, the shape
    function built from `shape_order`."""

    radius: tuple[int, ...]
    search: tuple[int, ...]
    reference: str
    subpixel: bool
    shape: ShapeFunction
    min_score: float
    min_distinctiveness: float
    refresh_score: float
    patience: int
    fft_precision: str
    batch_size: int


class _Sampled(NamedTuple):
    """Regions of one box size read around the points `rows` (indices
    into a step's points, sorted) of a frame; region k is of rows[k]."""

    regions: Regions
    rows: np.ndarray


class _Found(NamedTuple):
    """What one step says about the points it matched."""

    position: np.ndarray  # (n, D) matched axes
    score: np.ndarray
    distinctiveness: np.ndarray
    status: np.ndarray
    warp: np.ndarray  # (n, D, S) the warp's rows (translation: position)
    second: np.ndarray  # best NCC peak away from the match


@dataclass
class _State:
    """Where each point stands in one sweep (forwards or backwards)."""

    position: np.ndarray  # (N, D) last good position
    warp: np.ndarray  # (N, D, S) warp of the reference subset there
    velocity: np.ndarray  # (N, D) pixels per frame
    last: np.ndarray  # frame of the last good vertex
    misses: np.ndarray  # doubtful vertices since
    searching: np.ndarray  # lost: searched for, not followed
    alive: np.ndarray  # has a reference at all
    reference: Reference
    reference_frame: np.ndarray
    reference_position: np.ndarray


class Tracker:
    """The sweeps of track_points and the vertices they find."""

    def __init__(self, stack: LazyArray, points: np.ndarray, options: Options):
        # Reads go through a cache of decoded chunks; the result keeps
        # the stack as given.
        self.stack, self.options = cached(stack), options
        d = len(options.radius)
        self.ndim = d
        self.frame_shape = np.asarray(stack.shape[-d:])
        self.start = np.rint(points[:, 0]).astype(np.int64)
        self.plane = np.rint(points[:, 1:-d]).astype(np.int64)
        self.given = points[:, -d:]
        self.result = TrackResult.lost(points, stack)
        self.search = self._small_window_search(len(points))

    def _small_window_search(self, count: int) -> CoarseSearch | None:
        """The small-window search of `count` points, or None where it
        does not apply (search radius below the template radius) or its
        kept spectra would take more than BANK_BYTES."""
        o = self.options
        dtype = fft_dtype(o.fft_precision)
        if any(s < r for s, r in zip(o.search, o.radius)) or (
            CoarseSearch.bank_bytes(count, o.search, dtype) > BANK_BYTES
        ):
            return None
        return CoarseSearch(
            self.stack, count, o.radius, o.search, dtype, o.min_score
        )

    def run(self, progress: Callable[[int, int], None] | None) -> None:
        """Both sweeps from every point's own frame."""
        origin, reference = self._first_vertices()
        count = self.stack.shape[0]
        steps = [
            (1, range(int(self.start.min(initial=count)) + 1, count)),
            (-1, range(int(self.start.max(initial=-1)) - 1, -1, -1)),
        ]
        total, done = sum(len(frames) for _, frames in steps), 0
        for step, frames in steps:
            state = self._initial_state(origin, reference)
            for t in frames:
                self._advance(state, t, step)
                done += 1
                if progress is not None:
                    progress(done, total)

    def _first_vertices(self) -> tuple[np.ndarray, Reference]:
        """The vertex of each point in its own frame, and its reference.

        Its distinctiveness comes from matching the template into its own
        frame. Returns which points can be tracked.
        """
        n = len(self.given)
        identity = self.options.shape.identity(self.given)
        fits = self._fits(self.given, identity)
        rows = np.flatnonzero(fits)
        found = self._judged(
            self._coarse(
                rows,
                self.start[rows],
                self.given[rows],
                self.given[rows],
                self.start[rows],
            )
        )
        status = np.full(n, Status.NO_FIT, dtype=object)
        inside = np.all(
            (np.rint(self.given) >= 0)
            & (np.rint(self.given) < self.frame_shape),
            axis=1,
        )
        status[~inside] = Status.OUTSIDE_IMAGE
        status[fits] = found.status
        distinct = np.full(n, np.nan)
        distinct[fits] = found.distinctiveness
        reference = self._references(np.arange(n), self.start, identity, fits)
        flat = fits & ~reference.usable & self.options.subpixel
        status[flat] = Status.FLAT_TEMPLATE
        # The point itself: where it was given, matching itself.
        score = np.where(fits, 1.0, np.nan)
        self._record_vertices(
            np.arange(n), self.start, self.given, score, distinct, status
        )
        # Doubtful first vertices (ambiguous...) are tracked, and flagged.
        dead = (*_NOT_FOUND, Status.FLAT_TEMPLATE)
        return fits & ~np.isin(status, dead), reference

    def _initial_state(
        self, alive: np.ndarray, reference: Reference
    ) -> _State:
        n, d = len(self.given), self.ndim
        return _State(
            position=self.given.copy(),
            warp=self.options.shape.identity(self.given),
            velocity=np.zeros((n, d)),
            last=self.start.copy(),
            misses=np.zeros(n, dtype=np.int64),
            searching=np.zeros(n, dtype=bool),
            alive=alive.copy(),
            reference=reference.copy(),
            reference_frame=self.start.copy(),
            reference_position=self.given.copy(),
        )

    def _advance(self, state: _State, t: int, step: int) -> None:
        """Match every started point into frame `t`, one step on."""
        todo = np.flatnonzero((step * (t - self.start) > 0) & state.alive)
        if todo.size == 0:
            return
        gap = np.abs(t - state.last[todo])[:, None]
        guess = state.position[todo] + state.velocity[todo] * gap
        fits = self._fits(guess, state.warp[todo])
        self._lose(state, todo[~fits], t)
        todo, guess = todo[fits], guess[fits]
        if todo.size == 0:
            return
        subpixel = self.options.subpixel
        found = self._coarse(
            todo,
            state.last[todo] if subpixel else state.reference_frame[todo],
            state.position[todo]
            if subpixel
            else state.reference_position[todo],
            guess,
            np.full(len(todo), t),
        )
        regions = None
        if subpixel:
            found, regions = self._refine(state, todo, guess, found, t)
        self._update(state, todo, self._judged(found), t, regions)

    def _judged(self, found: _Found) -> _Found:
        """Distinctiveness of the final scores over the second NCC peaks;
        ``ambiguous`` below `min_distinctiveness`."""
        distinct = found.score - found.second
        status = found.status.copy()
        low = distinct < self.options.min_distinctiveness
        status[low & (status == Status.OK)] = Status.AMBIGUOUS
        return found._replace(distinctiveness=distinct, status=status)

    def _coarse(
        self,
        rows: np.ndarray,
        source_frames: np.ndarray,
        centres: np.ndarray,
        guesses: np.ndarray,
        target_frames: np.ndarray,
    ) -> _Found:
        """NCC match of the template of each of `rows` (from its frame in
        `source_frames`, around `centres`) into its target frame, around
        `guesses`: whole pixels. Points whose windows lie inside their
        frames take the small-window search, the others match_points."""
        n, d = len(rows), self.ndim
        warp = self.options.shape.identity(centres)
        found = _Found(
            np.full((n, d), np.nan),
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.empty(n, dtype=object),
            warp,
            np.full(n, np.nan),
        )
        rest = np.arange(n)
        if self.search is not None and n:
            small = self.search.match(
                rows,
                self.plane[rows],
                source_frames,
                centres,
                guesses,
                target_frames,
            )
            _put(found, small.done, small)
            rest = np.flatnonzero(~small.done)
        if rest.size:
            _put(
                found,
                rest,
                self._matched(
                    rows[rest],
                    source_frames[rest],
                    centres[rest],
                    guesses[rest],
                    target_frames[rest],
                ),
            )
        return found

    def _matched(
        self,
        rows: np.ndarray,
        source_frames: np.ndarray,
        centres: np.ndarray,
        guesses: np.ndarray,
        target_frames: np.ndarray,
    ) -> Coarse:
        """As `_coarse`, by one match_points call."""
        d = self.ndim
        # One plane per pair of frames: (template frame, target frame).
        frames, index = np.unique(
            np.stack([source_frames, target_frames]),
            axis=1,
            return_inverse=True,
        )
        template = Planes(self.stack, frames[0])
        image = Planes(self.stack, frames[1])
        leading = np.column_stack([np.ravel(index), self.plane[rows]])
        o = self.options
        matched = match_points(
            template,
            image,
            np.column_stack([leading, centres]),
            image_points=np.column_stack([leading, guesses]),
            template_radius=o.radius,
            search_radius=o.search,
            subpixel=False,
            min_score=o.min_score,
            min_distinctiveness=o.min_distinctiveness,
            # Judges a point by the others; a track is judged alone.
            max_neighbour_residual=np.inf,
            # A track is one motion; its vertices are judged by score.
            max_motion_gap=np.inf,
            check_consistency=False,
            fft_precision=o.fft_precision,
            batch_size=o.batch_size,
        )
        status = matched.status.copy()
        status[~np.isin(status, _COARSE_VERDICTS)] = Status.OK
        return Coarse(
            np.ones(len(rows), dtype=bool),
            matched.matched[:, -d:],
            matched.score,
            matched.second_score,
            status,
        )

    def _refine(
        self,
        state: _State,
        todo: np.ndarray,
        guess: np.ndarray,
        found: _Found,
        t: int,
    ) -> tuple[_Found, list[_Sampled]]:
        """IC-GN from the coarse matches that are ok; the regions
        read for them serve new references."""
        close = np.abs(guess - found.position).max(axis=1) < _PREDICTION_TRUST
        start = np.where(close[:, None], guess, found.position)
        warp = _warps(start, state.warp[todo])
        ok = np.flatnonzero(found.status == Status.OK)
        sampled = [
            part._replace(rows=ok[part.rows])
            for part in self._regions(todo[ok], np.full(ok.size, t), warp[ok])
        ]
        refined = self._refined(state, todo, warp, ok, sampled)
        position, score = found.position.copy(), found.score.copy()
        status = found.status.copy()
        position[ok] = refined.warps[:, :, 0]
        warp[ok] = refined.warps
        score[ok] = refined.score
        # Not converged: back to the coarse match, its position and score
        # together (the refinement's are those of its starting warp).
        failed = ok[~refined.converged]
        status[failed] = Status.LOW_SCORE
        position[failed] = found.position[failed]
        score[failed] = found.score[failed]
        warp[failed, :, 0] = found.position[failed]
        status[ok[~(score[ok] >= self.options.min_score)]] = Status.LOW_SCORE
        left = ok[~self._fits(position[ok], warp[ok])]
        status[left] = Status.OUTSIDE_IMAGE
        found = _Found(position, score, score, status, warp, found.second)
        return found, sampled

    def _refined(
        self,
        state: _State,
        todo: np.ndarray,
        warp: np.ndarray,
        ok: np.ndarray,
        sampled: list[_Sampled],
    ) -> Refined:
        """IC-GN of the step's points `ok` from `warp`, one call per box
        size of their regions; entries in the order of `ok`."""
        o = self.options
        refined = Refined(
            warp[ok].copy(), np.empty(ok.size), np.empty(ok.size, bool)
        )
        for part in sampled:
            where = np.searchsorted(ok, part.rows)
            found = refine(
                state.reference,
                todo[part.rows],
                part.regions,
                warp[part.rows],
                o.shape,
                o.radius,
            )
            refined.warps[where] = found.warps
            refined.score[where] = found.score
            refined.converged[where] = found.converged
        return refined

    def _update(
        self,
        state: _State,
        todo: np.ndarray,
        found: _Found,
        t: int,
        regions: list[_Sampled] | None,
    ) -> None:
        """Record the vertices of frame `t` and move the points on."""
        ok = found.status == Status.OK
        lost = np.isin(found.status, _NOT_FOUND) | (
            state.searching[todo] & ~ok
        )
        kept = ~lost
        frames = np.full(len(todo), t)
        self._record_vertices(
            todo[kept],
            frames[kept],
            found.position[kept],
            found.score[kept],
            found.distinctiveness[kept],
            found.status[kept],
        )
        self._lose(state, todo[lost], t)
        doubtful = todo[kept & ~ok]
        state.misses[doubtful] += 1
        # Too many doubtful vertices in a row: the point is lost.
        given_up = doubtful[state.misses[doubtful] > self.options.patience]
        state.searching[given_up] = True
        state.velocity[given_up] = 0.0
        rows = todo[ok]
        gap = np.abs(t - state.last[rows])[:, None]
        moved = (found.position[ok] - state.position[rows]) / gap
        state.velocity[rows] = np.where(
            state.searching[rows, None], 0.0, moved
        )
        state.position[rows] = found.position[ok]
        state.warp[rows] = found.warp[ok]
        state.last[rows] = t
        state.misses[rows] = 0
        state.searching[rows] = False
        self._refresh(state, todo, ok, found, t, regions)

    def _refresh(
        self,
        state: _State,
        todo: np.ndarray,
        ok: np.ndarray,
        found: _Found,
        t: int,
        regions: list[_Sampled] | None,
    ) -> None:
        """New references for the ok points whose rule asks for one."""
        reference = self.options.reference
        if reference == "first":
            return
        renew = ok.copy()
        if reference == "adaptive":
            renew &= found.score < self.options.refresh_score
        rows = todo[renew]
        if rows.size == 0:
            return
        state.reference_frame[rows] = t
        state.reference_position[rows] = found.position[renew]
        self.result.refreshed[rows, t] = True
        for sampled in regions or ():
            self._resample(state, todo, renew, found, sampled)

    def _resample(
        self,
        state: _State,
        todo: np.ndarray,
        renew: np.ndarray,
        found: _Found,
        sampled: _Sampled,
    ) -> None:
        """New reference subsets of the points `renew` of a step that
        `sampled` has regions of."""
        picked = sampled.rows[renew[sampled.rows]]
        if picked.size == 0:
            return
        # Resampled through the current warp: the subset's offsets keep
        # meaning the pixels of the original subset.
        warps = _warps(found.position[picked], found.warp[picked])
        part = reference_subsets(
            sampled.regions,
            np.searchsorted(sampled.rows, picked),
            warps,
            self.options.shape,
            self.options.radius,
        )
        state.reference.put(todo[picked], part)
        state.alive[todo[picked][~part.usable]] = False

    def _lose(self, state: _State, rows: np.ndarray, t: int) -> None:
        """Points `rows` were not found in frame `t`: search from now on."""
        self.result.status[rows, t] = Status.LOST
        state.searching[rows] = True
        state.velocity[rows] = 0.0

    def _references(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        warps: np.ndarray,
        usable: np.ndarray,
    ) -> Reference:
        """Reference subsets of `rows` in `frames` through `warps` (where
        `usable`)."""
        o, n = self.options, len(rows)
        size = int(np.prod([2 * r + 1 for r in o.radius]))
        reference = Reference.empty(n, size, o.shape)
        keep = np.flatnonzero(usable)
        if not o.subpixel or keep.size == 0:
            reference.usable[keep] = True
            return reference
        for part in self._regions(rows[keep], frames[keep], warps[keep]):
            chosen = keep[part.rows]
            subsets = reference_subsets(
                part.regions,
                np.arange(chosen.size),
                warps[chosen],
                o.shape,
                o.radius,
            )
            reference.put(chosen, subsets)
        return reference

    def _regions(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        warps: np.ndarray,
    ) -> list[_Sampled]:
        """Regions of points `rows` in `frames` around their `warps`, wide
        enough for refinement and for a new reference subset (with its
        gradient margin), one Regions per box size; their `rows` index
        the arguments.

        Each point's box fits its own warp, not the widest of the call:
        the spline coefficients depend (slightly) on the box, and a
        point's numbers must not depend on the other points.
        """
        wide = tuple(r + 2 for r in self.options.radius)
        extent = self.options.shape.extent(warps, wide)
        half = np.ceil(extent + MAX_TRAVEL + _TAPS).astype(np.int64)
        sizes, group = np.unique(half, axis=0, return_inverse=True)
        parts = []
        for k, size in enumerate(sizes):
            members = np.flatnonzero(group.ravel() == k)
            regions = Regions(
                self.stack,
                frames[members],
                self.plane[rows[members]],
                warps[members, :, 0],
                size + FILTER_REACH,
            )
            parts.append(_Sampled(regions, members))
        return parts

    def _fits(self, centres: np.ndarray, warps: np.ndarray) -> np.ndarray:
        """Which subsets, warped by `warps` around `centres`, lie inside
        the frame."""
        extent = self.options.shape.extent(warps, self.options.radius)
        low = centres - extent
        high = centres + extent
        return np.all((low >= 0) & (high <= self.frame_shape - 1), axis=1)

    def _record_vertices(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        position: np.ndarray,
        score: np.ndarray,
        distinctiveness: np.ndarray,
        status: np.ndarray,
    ) -> None:
        result = self.result
        result.position[rows, frames, : -self.ndim] = self.plane[rows]
        result.position[rows, frames, -self.ndim :] = position
        result.score[rows, frames] = score
        result.distinctiveness[rows, frames] = distinctiveness
        result.status[rows, frames] = status


def _put(found: _Found, where: np.ndarray, matched: Coarse) -> None:
    """Write the rows of `matched` that it matched into `found` at
    `where` (indices or a mask)."""
    done = matched.done
    found.position[where] = matched.position[done]
    found.score[where] = matched.score[done]
    found.second[where] = matched.second[done]
    found.status[where] = matched.status[done]


def _warps(centres: np.ndarray, warps: np.ndarray) -> np.ndarray:
    """Copies of the rows of `warps` translated to `centres`."""
    moved = warps.copy()
    moved[:, :, 0] = centres
    return moved
