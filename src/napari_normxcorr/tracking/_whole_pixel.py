"""The whole-pixel step of a frame along a track.

:class:`WholePixelStep` matches each point's template into its target
frame around the point's prediction, on whole pixels: points whose
windows lie inside their frames take the small-window search of
``_coarse``, the others one ``match_points`` call. Its
:meth:`~WholePixelStep.judged` calls a match ambiguous from the final
scores, after the sub-pixel refinement of ``_refinement`` where there is
one. What a step finds is a :class:`Found`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core._arrays import LazyArray
from ..core._masked import MIN_OVERLAP
from ..matching._match import match_points
from ..matching._result import Status
from ._coarse import Coarse, CoarseSearch
from ._track_inputs import Options, Planes

# Verdicts that mean nothing was found where the point should be.
NOT_FOUND = (
    Status.OUTSIDE_IMAGE,
    Status.NON_FINITE,
    Status.NO_FIT,
    Status.TOO_LITTLE_DATA,
)
# The verdicts of match_points a track keeps: where the windows could be
# read, and whether the peak is good and inside. The others judge a pair
# of images (neighbours, peak shape, back-match) on whole pixels; along a
# track, ambiguity is judged on the refined score (see judged).
_COARSE_VERDICTS = (
    *NOT_FOUND,
    Status.OK,
    Status.FLAT_TEMPLATE,
    Status.LOW_SCORE,
    Status.ON_BORDER,
)


class Found(NamedTuple):
    """What one step says about the points it matched."""

    position: np.ndarray  # (n, D) matched axes
    score: np.ndarray
    distinctiveness: np.ndarray
    status: np.ndarray
    warp: np.ndarray  # (n, D, S) the warp's rows (translation: position)
    second: np.ndarray  # best NCC peak away from the match
    fitted: np.ndarray  # (n,) bool: the warp's linear part was fitted


class WholePixelStep:
    """Whole-pixel NCC matches of tracked points, and their verdicts.

    Parameters
    ----------
    stack : LazyArray
        The (T, ..., rows, cols) stack the points are tracked through.
    plane : numpy.ndarray
        (N, L) integer coordinates of each point between time and the
        matched axes.
    options : Options
        The checked keywords of the track.
    search : CoarseSearch or None
        The small-window search of the points, or None to match every
        point with match_points.
    """

    def __init__(
        self,
        stack: LazyArray,
        plane: np.ndarray,
        options: Options,
        search: CoarseSearch | None,
    ):
        self.stack, self.plane, self.options = stack, plane, options
        self.search = search

    def match(
        self,
        rows: np.ndarray,
        source_frames: np.ndarray,
        centres: np.ndarray,
        guesses: np.ndarray,
        target_frames: np.ndarray,
    ) -> Found:
        """NCC match of the template of each of `rows` (from its frame in
        `source_frames`, around `centres`) into its target frame, around
        `guesses`: whole pixels. Points whose windows lie inside their
        frames take the small-window search, the others match_points."""
        n, d = len(rows), len(self.options.radius)
        warp = self.options.shape.identity(centres)
        found = Found(
            np.full((n, d), np.nan),
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.empty(n, dtype=object),
            warp,
            np.full(n, np.nan),
            np.zeros(n, dtype=bool),
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
        """As `match`, by one match_points call."""
        d = len(self.options.radius)
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
        position = matched.matched[:, -d:]
        if not o.subpixel:
            # Sub-pixel tracking refines every match, which fails on any
            # pixel without data nearby; whole pixels need this check.
            lacking = self._lacking_data(
                rows, source_frames, centres, target_frames, position
            )
            status[lacking & ~np.isin(status, NOT_FOUND)] = (
                Status.TOO_LITTLE_DATA
            )
        return Coarse(
            np.ones(len(rows), dtype=bool),
            position,
            matched.score,
            matched.second_score,
            status,
        )

    def _lacking_data(
        self,
        rows: np.ndarray,
        source_frames: np.ndarray,
        centres: np.ndarray,
        target_frames: np.ndarray,
        position: np.ndarray,
    ) -> np.ndarray:
        """Which matches keep too little data: less than MIN_OVERLAP of
        the template's pixels hold data in both the template and the
        window at the match, or one pixel further along any axis.

        The masked NCC scores only positions with that much data, so its
        peak always has it; but when the point's own window is mostly
        without data (under an occluder), the peak slides to the edge of
        the scored positions, a pixel or more off: a peak next to
        positions it could not score is no peak (as one on the search
        border is not), and the point has too little data there.
        """
        radius = np.asarray(self.options.radius)
        lacking = np.zeros(len(rows), dtype=bool)
        found = np.flatnonzero(np.isfinite(position).all(axis=1))
        for k in found:
            plane = tuple(self.plane[rows[k]])
            corner = np.rint(centres[k]).astype(np.int64) - radius
            template = _valid_box(
                self.stack, (source_frames[k], *plane), corner, 2 * radius + 1
            )
            # Whole pixels: the match is the template's place moved by an
            # integer shift (rint of the match could round a tie apart).
            shift = np.rint(position[k] - centres[k]).astype(np.int64)
            around = _valid_box(
                self.stack,
                (target_frames[k], *plane),
                corner + shift - 1,
                2 * radius + 3,
            )
            if template.all() and around.all():
                continue
            least = MIN_OVERLAP * template.size
            lacking[k] = any(
                np.count_nonzero(template & around[window]) < least
                for window in _nearby_windows(radius)
            )
        return lacking

    def judged(self, found: Found) -> Found:
        """Distinctiveness of the final scores over the second NCC peaks;
        ``ambiguous`` below `min_distinctiveness`."""
        distinct = found.score - found.second
        status = found.status.copy()
        low = distinct < self.options.min_distinctiveness
        status[low & (status == Status.OK)] = Status.AMBIGUOUS
        return found._replace(distinctiveness=distinct, status=status)


def _valid_box(
    stack: LazyArray,
    leading: tuple[int, ...],
    start: np.ndarray,
    shape: np.ndarray,
) -> np.ndarray:
    """Which pixels of the box of `shape` at `start` in the plane
    `leading` (frame, ...) hold finite values; True outside the frame
    (what lies there is the search border's business)."""
    frame_shape = np.asarray(stack.shape[-len(start) :])
    low = np.clip(start, 0, frame_shape)
    high = np.clip(start + shape, low, frame_shape)
    valid = np.ones(tuple(int(n) for n in shape), dtype=bool)
    read = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    inside = tuple(
        slice(int(a - s), int(b - s)) for a, b, s in zip(low, high, start)
    )
    index = tuple(int(v) for v in leading) + read
    valid[inside] = np.isfinite(np.asarray(stack[index]))
    return valid


def _nearby_windows(radius: np.ndarray) -> list[tuple[slice, ...]]:
    """Slices of a box one pixel wider than the window of `radius` on
    every side: the window at its centre, then one pixel further along
    each axis, both ways."""
    centre = [slice(1, 2 * int(r) + 2) for r in radius]
    windows = [tuple(centre)]
    for axis, r in enumerate(radius):
        for step in (0, 2):
            moved = list(centre)
            moved[axis] = slice(step, step + 2 * int(r) + 1)
            windows.append(tuple(moved))
    return windows


def _put(found: Found, where: np.ndarray, matched: Coarse) -> None:
    """Write the rows of `matched` that it matched into `found` at
    `where` (indices or a mask)."""
    done = matched.done
    found.position[where] = matched.position[done]
    found.score[where] = matched.score[done]
    found.second[where] = matched.second[done]
    found.status[where] = matched.status[done]
