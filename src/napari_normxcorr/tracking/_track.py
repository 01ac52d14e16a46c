"""track_points and retrack: points of interest followed through a series.

The public functions of tracking: their arguments are checked here (with
``_track_inputs``) and turned into :class:`Options`; a frame range is
tracked as a stack of its own and put back in the whole stack; a cluster
gets the call as it is (``_cluster``). The tracking itself is
``_tracker``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core._arrays import Image, LazyArray
from ..core._validate import fft_dtype, number, per_axis, positive_int
from ..matching._match import matched_axes
from ..matching._result import Status
from ..matching._shape_functions import ShapeFunction
from ._cluster import track_on_cluster
from ._track_inputs import (
    Options,
    Planes,
    checked_frames,
    checked_patience,
    checked_points,
    checked_position,
    checked_refresh_score,
    checked_stack,
    checked_vertex,
)
from ._tracker import Tracker
from ._tracks import VERTEX_FIELDS, TrackResult

REFERENCES = ("adaptive", "first", "previous")


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
        peak on the search border) a point counts as lost: its next
        vertex is ``lost`` unless ``ok`` (with 0, a doubtful vertex is
        itself ``lost``).
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
        status (``lost`` where the point left the image or was not found,
        ``uncertain`` where the sub-pixel refinement did not converge,
        ``non-finite data`` for a reference subset with NaN or inf),
        whether the reference was refreshed there, and the displacement
        gradient from the point's own frame (the shape function's linear
        part minus the identity; NaN without sub-pixel refinement).

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
    the reference is refreshed by the same rules on the NCC score. The
    checks the refinement makes are kept where a whole-pixel match can be
    wrong: a relock (the first match after a lost or doubtful vertex)
    must be confirmed by IC-GN (affine) both ways, from the reference
    onto the frame and back; a match scoring below `refresh_score`, or
    one the reference is renewed at, one way; unconfirmed, it is
    ``uncertain``. A renewed reference is centred where the refinement put the
    point, not at the rounded match, so that rounding does not add up.
    A match whose window, or the window a pixel from it, keeps less than
    half its pixels with data is ``too little data`` (a lost vertex).

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
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be callable, got {progress!r}.")
    # Checked here, not at the first match: before any work (or task).
    fft_dtype(fft_precision)
    options = Options(
        radius=per_axis("template_radius", template_radius, ndim),
        search=per_axis("search_radius", search_radius, ndim),
        reference=reference,
        subpixel=bool(subpixel),
        shape=ShapeFunction(ndim, shape_order),
        min_score=number("min_score", min_score),
        min_distinctiveness=number("min_distinctiveness", min_distinctiveness),
        refresh_score=checked_refresh_score(refresh_score),
        patience=checked_patience(patience),
        fft_precision=fft_precision,
        batch_size=positive_int("batch_size", batch_size),
    )
    if client is not None:
        # The tasks run this very function: it is handed over, so that
        # _cluster, which this module imports, needs no import of it.
        return track_on_cluster(track_points, arguments, stack, points)
    if (first, last) == (0, stack.shape[0] - 1):
        tracker = Tracker(stack, points, options)
        tracker.run(progress)
        return tracker.result
    # The range as a stack of its own: its frame k is frame first + k.
    window = Planes(stack, np.arange(first, last + 1))
    shifted = points.copy()
    shifted[:, 0] -= first
    tracker = Tracker(window, shifted, options)
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
    point, t = checked_vertex(result, stack, point, t)
    given = np.array([[t, *checked_position(position, stack)]])
    first, last = checked_frames(frames, stack, checked_points(given, stack))
    tracked = result.status[point] != Status.LOST
    backwards = not tracked[first:t].any()
    # A range needs two frames: from the last frame, one before it too.
    start = first if backwards else min(t, last - 1)
    again = track_points(stack, given, frames=(start, last), **options)
    replaced = slice(first if backwards else t, last + 1)
    return _with_vertices(result, point, replaced, again)


def _in_whole_stack(
    part: TrackResult, stack: LazyArray, points: np.ndarray, first: int
) -> TrackResult:
    """`part`, tracked through frames first.., with a vertex per frame of
    `stack`: those outside its frames are lost."""
    whole = TrackResult.lost(points, stack, part.gradient.shape[-1])
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
