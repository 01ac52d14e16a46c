"""track_points: points of interest followed through a time series."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from ._arrays import Image, LazyArray, as_image
from ._chunk_cache import cached
from ._distributed import track_on_cluster
from ._match import match_points, matched_axes
from ._result import Status
from ._shape import (
    FILTER_REACH,
    MAX_TRAVEL,
    Reference,
    Refined,
    Regions,
    reference_subsets,
    refine,
)
from ._shape_functions import ShapeFunction
from ._tracks import VERTEX_FIELDS, TrackResult
from ._validate import fft_dtype, per_axis, positive_int

REFERENCES = ("adaptive", "first", "previous")
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
# Cubic B-spline taps reach 2 pixels beyond a sample; rounding 0.5 more.
_TAPS = 2.5
# Sampled coordinates are rounded to this (pixels), far below the
# refinement's tolerance, so that they add exactly (see _SteadyRegions).
_COORDINATE_STEP = 2.0**-24


def track_points(
    stack: Image | Sequence[Image],
    points: npt.ArrayLike,
    *,
    template_radius: int | Sequence[int] = 15,
    search_radius: int | Sequence[int] = 30,
    reference: str = "adaptive",
    subpixel: bool = True,
    shape_order: int = 2,
    min_score: float = 0.5,
    min_distinctiveness: float = 0.05,
    refresh_score: float = 0.9,
    patience: int = 3,
    fft_precision: str = "single",
    batch_size: int = 8,
    frames: tuple[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
) -> TrackResult:
    """Follow points of interest through every frame of a time series.

    Each point is tracked forwards and backwards from the frame it is
    given in. At each step its template is correlated (NCC, as by
    :func:`match_points`, all points of a frame in one call) with a
    window of `search_radius` around the position predicted by constant
    velocity; the match is then refined to sub-pixel precision against
    the point's reference subset with an affine shape function (see
    Notes).

    Parameters
    ----------
    stack : (T, ..., M0, M1[, M2]) array_like, or a list of T frames
        Time first. numpy, dask and zarr arrays work; only windows around
        the points are read.
    points : (N, 1 + D) array_like
        Points of interest (t, ..., row, col) in pixels, one column per
        axis of `stack`: the frame first (rounded), then the position in
        that frame.
    template_radius, search_radius : int or sequence of int, optional
        Window radii in pixels, as for :func:`match_points` (one int
        tracks in the last two axes; three entries track in 3-D).
    reference : {'adaptive', 'first', 'previous'}, optional
        Which template each frame is matched against (see Notes).
    subpixel : bool, optional
        Refine positions below a pixel (IC-GN with a shape function);
        without it, positions move by whole pixels from the reference.
    shape_order : {2, 1}, optional
        Order of the shape function of the refinement: 2 (quadratic)
        follows smooth deformation that bends within a template, 1
        (affine) only rotation, scale and shear, with a little less
        noise.
    min_score : float, optional
        Below this NCC a vertex is flagged ``low score``.
    min_distinctiveness : float, optional
        Below this margin over the second-best NCC peak a vertex is
        flagged ``ambiguous``.
    refresh_score : float, optional
        With ``reference='adaptive'``, the reference is refreshed from the
        current frame when its score falls below this.
    patience : int, optional
        After this many doubtful vertices in a row (low score, ambiguous,
        peak on the search border) a point counts as lost.
    fft_precision : {'single', 'double'}, optional
        Transform precision of the correlations.
    batch_size : int, optional
        Points correlated together; bounds memory.
    frames : (first, last) tuple of int, optional
        Track through these frames only (inclusive; default: all). Every
        point must be given in one of them; vertices outside are
        ``lost``. The result still has one vertex per frame of `stack`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each frame (on a
        cluster: points done, as tasks finish).
    client : distributed.Client, optional
        Track on this dask.distributed cluster: the points are split into
        tasks of many points, grouped by position, each tracked through
        the whole series by a worker, which reads its own windows (zarr
        and dask stacks and numpy memmaps by reference to their storage;
        in-memory numpy stacks are sent to the workers once). The result
        is the local run's, point for point. Needs
        ``pip install napari-normxcorr[distributed]``.

    Returns
    -------
    TrackResult
        One vertex per point and frame: position, score, distinctiveness,
        status (``lost`` where the point left the image or was not found)
        and whether the reference was refreshed there.

    Notes
    -----
    Each point keeps a *reference subset*: ``2 * template_radius + 1``
    pixels sampled around it in the frame it was given in, and an affine
    warp ``x = c + A k`` that maps the subset's offsets k to the current
    frame. A step predicts ``c`` by constant velocity, finds the NCC peak
    of the template from the point's last good frame around it (a frame
    apart, so deformation does not blur the peak), and refines ``c`` and
    ``A`` by inverse compositional Gauss-Newton on the zero-mean
    normalised SSD against the reference subset (digital image
    correlation's first-order shape function), starting from the warp of
    the last frame. The vertex's score is the NCC of the reference subset
    and the warped target there.

    References: with ``'first'`` the reference subset never changes, so
    errors do not accumulate, but a change of appearance (not of shape)
    lowers the score until the point is lost. With ``'previous'`` it is
    resampled from every frame: it follows any change, and its errors add
    up as a random walk. ``'adaptive'`` keeps the reference while the
    vertex scores at least `refresh_score`, and resamples it from the
    current frame (at the matched position, through the current warp)
    when the score drops below; positions stay anchored to the original
    subset through the warp, so error grows with the number of refreshes,
    not of frames.

    Without `subpixel` the NCC template is the reference itself (a window
    of the reference frame around the rounded reference position), and
    the reference is refreshed by the same rules on the NCC score.

    A point closer than `template_radius` to the border of its own frame
    is not tracked (status ``template does not fit``). A vertex is
    ``lost`` when its subset would leave the frame or nothing
    could be matched (and after `patience` doubtful vertices in a row). A
    lost point is searched for in every later frame, around its last good
    position with its last good template; found again (status ``ok``), it
    continues as a new track segment, linked to the old one in
    :meth:`TrackResult.to_napari`'s graph.

    A point is tracked alone: its vertices do not depend on the other
    points tracked with it (which is what lets a cluster split them).
    """
    arguments = dict(locals())
    stack = checked_stack(stack)
    points = checked_points(points, stack)
    first, last = checked_frames(frames, stack, points)
    ndim = matched_axes(template_radius, search_radius, stack.ndim - 1)
    if reference not in REFERENCES:
        raise ValueError(
            f"reference must be one of {REFERENCES}, got {reference!r}."
        )
    if not -1 <= refresh_score <= 1:
        raise ValueError(
            f"refresh_score must lie in [-1, 1], got {refresh_score!r}."
        )
    if (
        isinstance(patience, bool)
        or not isinstance(patience, int | np.integer)
        or patience < 0
    ):
        raise ValueError(f"patience must be an int >= 0, got {patience!r}.")
    # Checked here, not at the first match: before any work (or task).
    fft_dtype(fft_precision)
    options = _Options(
        radius=per_axis("template_radius", template_radius, ndim),
        search=per_axis("search_radius", search_radius, ndim),
        reference=reference,
        subpixel=bool(subpixel),
        shape=ShapeFunction(ndim, shape_order),
        min_score=float(min_score),
        min_distinctiveness=float(min_distinctiveness),
        refresh_score=float(refresh_score),
        patience=int(patience),
        fft_precision=fft_precision,
        batch_size=positive_int("batch_size", batch_size),
    )
    if client is not None:
        # The tasks run this very function: it is handed over, so that
        # _distributed needs no import of this module.
        return track_on_cluster(track_points, arguments, stack, points)
    if (first, last) == (0, stack.shape[0] - 1):
        tracker = _Tracker(stack, points, options)
        tracker.run(progress)
        return tracker.result
    # The range as a stack of its own: its frame k is frame first + k.
    window = _Planes(stack, np.arange(first, last + 1))
    shifted = points.copy()
    shifted[:, 0] -= first
    tracker = _Tracker(window, shifted, options)
    tracker.run(progress)
    return _in_whole_stack(tracker.result, stack, points, first)


def retrack(
    result: TrackResult,
    stack: Image | Sequence[Image],
    point: int,
    t: int,
    position: npt.ArrayLike,
    *,
    frames: tuple[int, int] | None = None,
    **options: Any,
) -> TrackResult:
    """Track one point again from a vertex corrected by hand.

    The point is tracked afresh (as by :func:`track_points`) from
    `position` in frame `t` onwards; its vertices from `t` on are
    replaced, those before `t` kept. When it has no vertex before `t`
    (it was moved in or before its first frame) it is tracked backwards
    from there too, and its whole track replaced. Other points keep their
    vertices.

    Parameters
    ----------
    result : TrackResult
        Tracks of `stack` (not modified).
    stack : (T, ..., M0, M1[, M2]) array_like, or a list of T frames
        The stack `result` was tracked through.
    point : int
        Row of the point (as in ``result.points``) to track again.
    t : int
        Frame of the corrected vertex.
    position : (D,) array_like
        Its corrected position in frame `t`: every axis of a frame, in
        pixels (as in ``result.position``).
    frames : (first, last) tuple of int, optional
        The frame range `result` was tracked through.
    **options
        The other keywords of the :func:`track_points` call that made
        `result` (radii, reference, ...): the same options track the
        point again.

    Returns
    -------
    TrackResult
        A copy of `result` with the point's new vertices.

    Raises
    ------
    ValueError
        When `point`, `t` or `position` do not fit `result` and `stack`.
    """
    stack = checked_stack(stack)
    count, length = result.status.shape
    if length != stack.shape[0]:
        raise ValueError(
            f"result has {length} frames but stack has {stack.shape[0]}."
        )
    if not 0 <= point < count:
        raise ValueError(f"point must lie in 0 .. {count - 1}, got {point}.")
    given = np.array([[t, *np.ravel(position)]], dtype=np.float64)
    first, last = checked_frames(frames, stack, checked_points(given, stack))
    tracked = result.status[point] != Status.LOST
    backwards = not tracked[first:t].any()
    # A range needs two frames: from the last frame, one before it too.
    start = first if backwards else min(t, last - 1)
    again = track_points(stack, given, frames=(start, last), **options)
    replaced = slice(first if backwards else t, last + 1)
    return _with_vertices(result, point, replaced, again)


def checked_frames(
    frames: tuple[int, int] | None, stack: LazyArray, points: np.ndarray
) -> tuple[int, int]:
    """The (first, last) frames to track through, or raise."""
    count = stack.shape[0]
    if frames is None:
        return 0, count - 1
    first, last = (int(f) for f in frames)
    if (first, last) != tuple(frames) or not 0 <= first < last < count:
        raise ValueError(
            f"frames must be (first, last) with 0 <= first < last <= "
            f"{count - 1}, got {frames!r}."
        )
    times = np.rint(points[:, 0])
    outside = np.flatnonzero((times < first) | (times > last))
    if outside.size:
        raise ValueError(
            f"points {outside[:5].tolist()} have times "
            f"{points[outside[:5], 0].tolist()} outside the frames "
            f"{first} to {last} to track through."
        )
    return first, last


def _in_whole_stack(
    part: TrackResult, stack: LazyArray, points: np.ndarray, first: int
) -> TrackResult:
    """`part`, tracked through frames first.., with a vertex per frame of
    `stack`: those outside its frames are lost."""
    n, frames = len(points), stack.shape[0]
    whole = TrackResult(
        points=points,
        position=np.full((n, frames, stack.ndim - 1), np.nan),
        score=np.full((n, frames), np.nan),
        distinctiveness=np.full((n, frames), np.nan),
        status=np.full((n, frames), Status.LOST, dtype=object),
        refreshed=np.zeros((n, frames), dtype=bool),
        stack=stack,
    )
    inside = slice(first, first + part.status.shape[1])
    for name in VERTEX_FIELDS:
        getattr(whole, name)[:, inside] = getattr(part, name)
    return whole


def _with_vertices(
    result: TrackResult, point: int, frames: slice, source: TrackResult
) -> TrackResult:
    """A copy of `result` whose point `point` has the vertices of the one
    point of `source` in `frames`."""
    arrays = {name: getattr(result, name).copy() for name in VERTEX_FIELDS}
    for name, values in arrays.items():
        values[point, frames] = getattr(source, name)[0, frames]
    return replace(result, points=result.points.copy(), **arrays)


def checked_stack(stack: Image | Sequence[Image]) -> LazyArray:
    """`stack` as a lazy (T, ...) array of at least two frames, or raise."""
    if isinstance(stack, list | tuple):
        stack = as_image("stack", _FrameList(stack))
    else:
        stack = as_image("stack", cast(Image, stack))
    if stack.ndim < 3:
        raise ValueError(
            f"stack has shape {tuple(stack.shape)}; give time first and "
            "frames of 2 or 3 axes, (T, rows, cols) or (T, z, rows, cols)."
        )
    if stack.shape[0] < 2:
        raise ValueError(
            f"stack has {stack.shape[0]} frame (shape "
            f"{tuple(stack.shape)}); tracking needs at least two."
        )
    return stack


def checked_points(points: npt.ArrayLike, stack: LazyArray) -> np.ndarray:
    """(N, stack.ndim) float64 copy of `points` with valid times, or raise."""
    values = np.array(points, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != stack.ndim:
        columns = stack.ndim
        hint = (
            " (no time column?)"
            if values.ndim == 2 and values.shape[1] == columns - 1
            else ""
        )
        raise ValueError(
            f"points has shape {values.shape}{hint}; for a stack of shape "
            f"{tuple(stack.shape)} give an (N, {columns}) array of "
            "(t, ..., row, col), the frame first."
        )
    if not np.isfinite(values).all():
        raise ValueError("points holds NaN or infinity.")
    times = np.rint(values[:, 0])
    outside = np.flatnonzero((times < 0) | (times >= stack.shape[0]))
    if outside.size:
        raise ValueError(
            f"points {outside[:5].tolist()} have times "
            f"{values[outside[:5], 0].tolist()} outside the stack's "
            f"{stack.shape[0]} frames (0 to {stack.shape[0] - 1})."
        )
    return values


class _FrameList:
    """A list of frames of one shape, read as a lazy (T, ...) array."""

    def __init__(self, frames: Sequence[Image]):
        self.frames = [
            as_image(f"stack[{k}]", f) for k, f in enumerate(frames)
        ]
        if not self.frames:
            raise ValueError("stack is an empty list; give at least two.")
        shapes = [tuple(f.shape) for f in self.frames]
        if len(set(shapes)) > 1:
            odd = next(k for k, s in enumerate(shapes) if s != shapes[0])
            raise ValueError(
                f"the frames of stack have different shapes: frame 0 is "
                f"{shapes[0]} and frame {odd} is {shapes[odd]}."
            )
        self.shape = (len(shapes), *shapes[0])
        self.ndim = len(self.shape)
        self.dtype = np.result_type(*[f.dtype for f in self.frames])

    def __getitem__(self, index: Any) -> np.ndarray:
        frame, *rest = index if isinstance(index, tuple) else (index,)
        if isinstance(frame, int | np.integer):
            return np.asarray(self.frames[frame][tuple(rest)])
        # A slice or an array of frames (dask reads blocks so): stacked.
        chosen = np.arange(len(self.frames))[frame]
        return np.stack(
            [np.asarray(self.frames[k][tuple(rest)]) for k in chosen]
        )


class _Planes:
    """A (K, ...) view of a stack whose plane k is frame ``frames[k]``.

    Lets one match_points call take each point's template from its own
    frame: its leading coordinate picks the plane.
    """

    def __init__(self, stack: LazyArray, frames: np.ndarray):
        self.stack, self.frames = stack, frames
        self.shape = (len(frames), *stack.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = stack.dtype

    def __getitem__(self, index: Any) -> npt.ArrayLike:
        plane, *rest = index if isinstance(index, tuple) else (index,)
        return self.stack[(int(self.frames[plane]), *rest)]


@dataclass(frozen=True)
class _Options:
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


class _SteadyRegions(Regions):
    """Regions whose samples at a point do not depend on the points read
    with it.

    Regions offsets each coordinate by its box's place in the stack of
    boxes, which rounds a coordinate's low bits differently at each
    place; on a multiple of _COORDINATE_STEP the sum is exact (up to
    2**29 pixels of stacked boxes), so a point's samples are those it
    gets alone, and a task of a cluster gets the local run's numbers.
    """

    def sample(self, rows: np.ndarray, coords: np.ndarray) -> np.ndarray:
        # Scaling by a power of two and rounding are exact.
        steady = np.round(coords / _COORDINATE_STEP) * _COORDINATE_STEP
        return super().sample(rows, steady)


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


class _Tracker:
    """The sweeps of track_points and the vertices they find."""

    def __init__(
        self, stack: LazyArray, points: np.ndarray, options: _Options
    ):
        # Reads go through a cache of decoded chunks; the result keeps
        # the stack as given.
        self.stack, self.options = cached(stack), options
        d = len(options.radius)
        self.ndim = d
        self.frame_shape = np.asarray(stack.shape[-d:])
        self.start = np.rint(points[:, 0]).astype(np.int64)
        self.plane = np.rint(points[:, 1:-d]).astype(np.int64)
        self.given = points[:, -d:]
        n, frames = len(points), stack.shape[0]
        self.result = TrackResult(
            points=points,
            position=np.full((n, frames, stack.ndim - 1), np.nan),
            score=np.full((n, frames), np.nan),
            distinctiveness=np.full((n, frames), np.nan),
            status=np.full((n, frames), Status.LOST, dtype=object),
            refreshed=np.zeros((n, frames), dtype=bool),
            stack=stack,
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
        `guesses`: whole pixels, one match_points call."""
        n, d = len(rows), self.ndim
        warp = self.options.shape.identity(centres)
        if n == 0:
            empty, status = np.empty(0), np.empty(0, dtype=object)
            return _Found(np.empty((0, d)), empty, empty, status, warp, empty)
        # One plane per pair of frames: (template frame, target frame).
        frames, index = np.unique(
            np.stack([source_frames, target_frames]),
            axis=1,
            return_inverse=True,
        )
        template = _Planes(self.stack, frames[0])
        image = _Planes(self.stack, frames[1])
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
        return _Found(
            matched.matched[:, -d:],
            matched.score,
            matched.distinctiveness,
            status,
            warp,
            matched.second_score,
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
            regions = _SteadyRegions(
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


def _warps(centres: np.ndarray, warps: np.ndarray) -> np.ndarray:
    """Copies of the rows of `warps` translated to `centres`."""
    moved = warps.copy()
    moved[:, :, 0] = centres
    return moved
