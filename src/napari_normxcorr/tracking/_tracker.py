"""The tracker of track_points: the sweeps through a stack, frame by frame.

:class:`Tracker` follows every point forwards and backwards from the frame
it is given in. A step predicts each point by constant velocity, finds the
NCC peak of its template around the prediction (``_whole_pixel``, one
``match_points`` call for the points the small-window search of
``_coarse`` leaves), refines it against the point's reference subset
with a shape function (``_refinement``, IC-GN of ``matching._shape``) or,
tracking whole pixels, confirms it where it may be wrong
(``_confirmation``), judges the vertex, and renews the reference where
the rule of :class:`Options` asks for it. The public functions and the
checks of their arguments live in ``_track`` and ``_track_inputs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core._arrays import LazyArray
from ..core._validate import fft_dtype
from ..io._chunk_cache import cached
from ..matching._result import Status
from ..matching._shape import Reference
from ._coarse import CoarseSearch
from ._confirmation import Confirmation
from ._refinement import Refinement, Sampled
from ._track_inputs import Options
from ._tracks import TrackResult
from ._whole_pixel import NOT_FOUND, Found, WholePixelStep

# The most memory the kept template spectra of the small-window search
# may take (about 15 000 points at radii 15/30); more points take
# match_points, which holds only a batch.
BANK_BYTES = 2**28


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
    """The sweeps of track_points and the vertices they find.

    The whole-pixel step of a frame is its `whole_pixels`, the sub-pixel
    refinement and the reference subsets its `refinement`, the checks of
    whole-pixel matches its `confirmation`; the tracker keeps where each
    point stands and records the vertices.
    """

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
        self.result = TrackResult.lost(points, stack, d)
        self.whole_pixels = WholePixelStep(
            self.stack,
            self.plane,
            options,
            self._small_window_search(len(points)),
        )
        self.refinement = Refinement(self.stack, self.plane, options)
        self.confirmation = Confirmation(self.refinement)

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
        fits = self.refinement.fits(self.given, identity)
        rows = np.flatnonzero(fits)
        found = self.whole_pixels.judged(
            self.whole_pixels.match(
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
        reference = self.refinement.references(
            np.arange(n), self.start, identity, fits
        )
        flat = fits & ~reference.usable & self.options.subpixel
        status[flat] = Status.FLAT_TEMPLATE
        # A subset with pixels without data is unusable, not flat.
        holes = ~np.isfinite(reference.centred).all(axis=1)
        status[flat & holes] = Status.NON_FINITE
        # Doubtful first vertices (ambiguous...) are tracked, and flagged.
        dead = (*NOT_FOUND, Status.FLAT_TEMPLATE)
        alive = fits & ~np.isin(status, dead)
        # The point itself: where it was given, matching itself; its
        # shape function is the identity (none without one: whole pixels).
        # A point that cannot be tracked has no score, even there.
        score = np.where(alive, 1.0, np.nan)
        gradient = np.full((n, self.ndim, self.ndim), np.nan)
        gradient[alive & self.options.subpixel] = 0.0
        self._record_vertices(
            np.arange(n),
            self.start,
            self.given,
            score,
            distinct,
            status,
            gradient,
        )
        return alive, reference

    def _initial_state(
        self, alive: np.ndarray, reference: Reference
    ) -> _State:
        """Every point at rest where it was given, with `reference`;
        those not `alive` are not followed."""
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
        fits = self.refinement.fits(guess, state.warp[todo])
        self._lose(state, todo[~fits], t)
        todo, guess = todo[fits], guess[fits]
        if todo.size == 0:
            return
        subpixel = self.options.subpixel
        found = self.whole_pixels.match(
            todo,
            state.last[todo] if subpixel else state.reference_frame[todo],
            state.position[todo]
            if subpixel
            else state.reference_position[todo],
            guess,
            np.full(len(todo), t),
        )
        regions, anchors = None, None
        if subpixel:
            found, regions = self.refinement.refine(
                state.reference, todo, guess, state.warp[todo], found, t
            )
        else:
            found, anchors = self.confirmation.confirm(
                todo,
                state.reference_frame[todo],
                state.reference_position[todo],
                found,
                state.searching[todo] | (state.misses[todo] > 0),
                t,
            )
        self._update(
            state, todo, self.whole_pixels.judged(found), t, regions, anchors
        )

    def _update(
        self,
        state: _State,
        todo: np.ndarray,
        found: Found,
        t: int,
        regions: list[Sampled] | None,
        anchors: np.ndarray | None = None,
    ) -> None:
        """Record the vertices of frame `t` and move the points on (whole
        pixels: `anchors`, where the references' positions went)."""
        ok = found.status == Status.OK
        lost = np.isin(found.status, NOT_FOUND) | (state.searching[todo] & ~ok)
        if self.options.patience == 0:
            lost |= ~ok  # no patience: not even one doubtful vertex
        kept = ~lost
        frames = np.full(len(todo), t)
        self._record_vertices(
            todo[kept],
            frames[kept],
            found.position[kept],
            found.score[kept],
            found.distinctiveness[kept],
            found.status[kept],
            self._gradients(found)[kept],
        )
        self._lose(state, todo[lost], t)
        doubtful = todo[kept & ~ok]
        state.misses[doubtful] += 1
        # `patience` doubtful vertices in a row: the point is lost.
        given_up = doubtful[state.misses[doubtful] >= self.options.patience]
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
        self._refresh(state, todo, ok, found, t, regions, anchors)

    def _refresh(
        self,
        state: _State,
        todo: np.ndarray,
        ok: np.ndarray,
        found: Found,
        t: int,
        regions: list[Sampled] | None,
        anchors: np.ndarray | None = None,
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
        if anchors is not None:
            # Whole pixels: centred where the reference position went, not
            # at the rounded match (see Confirmation).
            state.reference_position[rows] = anchors[renew]
        else:
            state.reference_position[rows] = found.position[renew]
        self.result.refreshed[rows, t] = True
        for sampled in regions or ():
            flat = self.refinement.renew(
                state.reference, todo, renew, found, sampled
            )
            state.alive[flat] = False

    def _lose(self, state: _State, rows: np.ndarray, t: int) -> None:
        """Points `rows` were not found in frame `t`: search from now on."""
        self.result.status[rows, t] = Status.LOST
        state.searching[rows] = True
        state.velocity[rows] = 0.0

    def _record_vertices(
        self,
        rows: np.ndarray,
        frames: np.ndarray,
        position: np.ndarray,
        score: np.ndarray,
        distinctiveness: np.ndarray,
        status: np.ndarray,
        gradient: np.ndarray,
    ) -> None:
        """Write the vertices of points `rows` in `frames` to the result."""
        result = self.result
        result.position[rows, frames, : -self.ndim] = self.plane[rows]
        result.position[rows, frames, -self.ndim :] = position
        result.score[rows, frames] = score
        result.distinctiveness[rows, frames] = distinctiveness
        result.status[rows, frames] = status
        result.gradient[rows, frames] = gradient

    def _gradients(self, found: Found) -> np.ndarray:
        """(n, D, D) displacement gradients of `found` from the point's own
        frame: the linear parts of the warps minus the identity, NaN where
        none was fitted.

        A warp maps the offsets of the point's original subset (its own
        frame) to the frame matched, also after its reference was
        renewed: a renewed reference is resampled through the warp of its
        frame, so that its offsets keep meaning the original subset's
        pixels (see Refinement.renew); nothing is left to compose. The
        quadratic terms have no slope at the point itself.
        """
        linear = self.options.shape.linear(found.warp)
        gradient = linear - np.eye(self.ndim)
        gradient[~found.fitted] = np.nan
        return gradient
