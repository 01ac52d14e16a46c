"""The consistency check of match_points: where each match matches back.

The back-match cuts a template around the match in the target and
searches the template image around the point, as far as the forward
match searched. The distance from the point to its best position is the
row's ``consistency``: a better copy of the match's content anywhere in
that range shows that the match is not mutual.

Searched in full, that range costs as much as the forward pass. On
in-memory images without masks, a wide range is searched coarse to fine:

1. the whole range on both images binned 2 x 2 (a quarter of the pixels,
   half the radii). Each local maximum of that surface within
   RIVAL_MARGIN of its best is a place where the match's content may
   match as well: a rival;
2. at full resolution, within FINE_REACH px of the point: the back-peak
   there and its score;
3. at full resolution, within CHECK_REACH px of each rival that step 2
   did not cover: a rival scoring above that back-peak is the back-match.

A row whose windows are clipped at an edge of an image, or that any of
these steps cannot place or read, is searched in full.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ._arrays import LazyArray
from ._matcher import Matcher
from ._parallel import in_threads
from ._passes import floored, work_units, worker
from ._peaks import argmax_indices, parabolic_shifts
from ._result import Status, statuses
from ._windows import Window

# A rival is a coarse local maximum this close to the coarse best (NCC).
RIVAL_MARGIN = 0.2
# The most rivals checked per row, the strongest first.
MAX_RIVALS = 8
# px around the point searched at full resolution in step 2, and around
# each rival in step 3: the rival's coarse position is off by up to
# 1.5 px (half a binned pixel, and its coarse peak's own error).
FINE_REACH = 4
CHECK_REACH = 3
# Coarse to fine only for templates this wide (radius, px), so that the
# binned ones keep some texture, and ranges this wide (px, on some axis),
# where the full range costs several times the fine steps.
MIN_TEMPLATE_RADIUS = 4
MIN_RANGE = 16

# Positions (k, d) and scores (k,) a back surface offers, relative to it.
Peaks = tuple[np.ndarray, np.ndarray]


def back_match_distances(
    matcher: Matcher,
    points: np.ndarray,
    matched: np.ndarray,
    todo: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Distance from each point to the back-match of its match.

    Only the rows in `todo` with a finite match are checked (NaN
    elsewhere, and where the windows hold no usable data).
    """
    d = matcher.ndim
    back = np.full((len(points), d), np.nan)
    rows = np.flatnonzero(todo & np.isfinite(matched).all(axis=1))
    if _coarse_to_fine_pays(matcher, len(rows)):
        inner = rows[_unclipped(matcher, points[rows], matched[rows])]
        back[inner] = _coarse_to_fine(
            matcher, points[inner], matched[inner], batch_size
        )
        rows = rows[np.isnan(back[rows]).any(axis=1)]
    full = _back_pass(matcher, matched[rows], points[rows], _peaks, batch_size)
    back[rows] = _best(full, d)
    return np.linalg.norm(back - points[:, -d:], axis=1)


def _coarse_to_fine_pays(matcher: Matcher, rows: int) -> bool:
    """Whether the coarse-to-fine search applies and saves time."""
    images = matcher.template_image, matcher.image
    if (
        type(matcher) is not Matcher
        or not all(isinstance(image, np.ndarray) for image in images)
        or matcher.template_mask is not None
        or matcher.image_mask is not None
        or matcher.nodata is not None
    ):
        return False
    template = np.asarray(matcher.template_radius)
    search = np.asarray(matcher.search_radius)
    searched = rows * np.prod(2 * search + 1)
    # Binning reads both images once: worth it when the searches would
    # read more.
    pixels = sum(int(np.prod(image.shape)) for image in images)
    return bool(
        template.min() >= MIN_TEMPLATE_RADIUS
        and (search - template).max() >= MIN_RANGE
        and searched >= pixels
    )


def _unclipped(
    matcher: Matcher, points: np.ndarray, matched: np.ndarray
) -> np.ndarray:
    """Which rows' back windows lie inside their images: the template
    around the match in the target, the search around the point in the
    template image. The binned windows of the others would not cover
    what theirs do."""
    d = matcher.ndim

    def inside(
        centres: np.ndarray, radius: tuple, image: LazyArray
    ) -> np.ndarray:
        at = np.rint(centres[:, -d:])
        high = np.asarray(image.shape[-d:])
        return np.all((at - radius >= 0) & (at + radius < high), axis=1)

    return inside(matched, matcher.template_radius, matcher.image) & inside(
        points, matcher.search_radius, matcher.template_image
    )


def _coarse_to_fine(
    matcher: Matcher,
    points: np.ndarray,
    matched: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Back-match positions (n, d) of each row (see the module's steps),
    NaN for the rows a step could not place or read."""
    d = matcher.ndim
    coarse = _binned(matcher)
    rivals = _back_pass(
        coarse, _halved(matched, d), _halved(points, d), _rivals, batch_size
    )
    near = _back_pass(
        _reaching(matcher, FINE_REACH), matched, points, _peaks, batch_size
    )
    owners, places = _unchecked(rivals, points[:, -d:])
    guesses = points[owners].copy()
    guesses[:, -d:] = _within_range(matcher, places, points[owners, -d:])
    checked = _back_pass(
        _reaching(matcher, CHECK_REACH),
        matched[owners],
        guesses,
        _peaks,
        batch_size,
    )
    found: list[Peaks | None] = list(near)
    for row, check in zip(owners.tolist(), checked):
        found[row] = _joined(found[row], check)
    back = _best(found, d)
    back[[k for k, r in enumerate(rivals) if r is None]] = np.nan
    return back


def _binned(matcher: Matcher) -> Matcher:
    """`matcher` on its images binned 2 x 2 along the matched axes (the
    mean of each block; a last odd row or column is left out), at half
    its radii."""
    d = matcher.ndim

    def binned(image: np.ndarray) -> np.ndarray:
        dtype = np.float32 if image.dtype == np.float32 else np.float64
        for axis in range(image.ndim - d, image.ndim):
            pairs = image.shape[axis] // 2
            first, second = (
                image[(slice(None),) * axis + (slice(start, 2 * pairs, 2),)]
                for start in (0, 1)
            )
            image = np.add(first, second, dtype=dtype)
        return image * dtype(0.5**d)

    assert isinstance(matcher.template_image, np.ndarray)
    assert isinstance(matcher.image, np.ndarray)
    return replace(
        matcher,
        template_image=binned(matcher.template_image),
        image=binned(matcher.image),
        template_radius=tuple(r // 2 for r in matcher.template_radius),
        search_radius=tuple(s // 2 for s in matcher.search_radius),
        maps={},
    )


def _halved(points: np.ndarray, d: int) -> np.ndarray:
    """`points` in the pixels of the binned images: binned pixel k holds
    pixels 2k and 2k + 1, so its centre is at 2k + 0.5."""
    halved = points.copy()
    halved[:, -d:] = (points[:, -d:] - 0.5) / 2
    return halved


def _reaching(matcher: Matcher, reach: int) -> Matcher:
    """`matcher` searching `reach` px around the guess on each axis (or its
    own range, when narrower)."""
    return replace(
        matcher,
        search_radius=tuple(
            min(s, t + reach)
            for t, s in zip(matcher.template_radius, matcher.search_radius)
        ),
        maps={},
    )


def _within_range(
    matcher: Matcher, places: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """`places` moved just enough that a search of CHECK_REACH px around
    them stays within the range searched around their `points`."""
    template = np.asarray(matcher.template_radius)
    wide = np.asarray(matcher.search_radius) - template
    slack = wide - np.minimum(wide, CHECK_REACH)
    centre = np.rint(points)
    return np.clip(np.rint(places), centre - slack, centre + slack)


def _back_pass(
    matcher: Matcher,
    sources: np.ndarray,
    guesses: np.ndarray,
    analyse: Callable[[list[Window], np.ndarray], list[Peaks]],
    batch_size: int,
) -> list[Peaks | None]:
    """`analyse`'s peaks of each row's back surface, in the template
    image's pixels.

    The template is cut around ``sources[k]`` in the target; the template
    image is searched around ``guesses[k]``. None for rows whose windows
    cannot be placed, read or correlated.
    """
    d = matcher.ndim
    found: list[Peaks | None] = [None] * len(sources)
    status = statuses(len(sources))
    groups = matcher.place_all(sources, guesses, status, forward=False)
    matcher.prepare_maps(groups)
    work = worker(matcher, analyse, batch_size)
    try:
        for batch, results in in_threads(work, work_units(groups, batch_size)):
            for window, result in zip(batch, results):
                if isinstance(result, Status):
                    continue  # no data, or flat, around the match
                positions, scores = result
                origin = window.origin(sources[window.row, -d:])
                found[window.row] = (origin + positions, scores)
    finally:
        matcher.maps.clear()
    return found


def _peaks(windows: list[Window], surfaces: np.ndarray) -> list[Peaks]:
    """Each surface's highest peak, placed by a parabola fit."""
    surfaces = floored(windows, surfaces)
    peaks = argmax_indices(surfaces)
    corners = peaks + parabolic_shifts(surfaces, peaks)
    scores = surfaces[(np.arange(len(peaks)), *peaks.T)].astype(np.float64)
    return [(corners[k : k + 1], scores[k : k + 1]) for k in range(len(peaks))]


def _rivals(windows: list[Window], surfaces: np.ndarray) -> list[Peaks]:
    """Each surface's local maxima within RIVAL_MARGIN of its best, at
    most MAX_RIVALS, the strongest first, at whole pixels."""
    surfaces = floored(windows, surfaces)
    n, d = len(surfaces), surfaces.ndim - 1
    best = surfaces.reshape(n, -1).max(axis=1)
    # Few positions come close to the best: only those are compared with
    # their neighbours (clipped at the edges, where a position is its own
    # neighbour).
    close = np.argwhere(
        surfaces >= (best - RIVAL_MARGIN).reshape(-1, *[1] * d)
    )
    scores = surfaces[tuple(close.T)]
    local = np.ones(len(close), dtype=bool)
    last = np.array(surfaces.shape) - 1
    for step in itertools.product((-1, 0, 1), repeat=d):
        if any(step):
            around = np.clip(close + (0, *step), 0, last)
            local &= scores >= surfaces[tuple(around.T)]
    close, scores = close[local], scores[local].astype(np.float64)
    found = []
    for k in range(n):
        mine = close[:, 0] == k
        strongest = np.argsort(-scores[mine], kind="stable")[:MAX_RIVALS]
        found.append(
            (
                close[mine][strongest, 1:].astype(np.float64),
                scores[mine][strongest],
            )
        )
    return found


def _unchecked(
    rivals: list[Peaks | None], points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and full-resolution places (n, d) of the rivals that the fine
    search around their point does not cover."""
    owners, places = [], []
    for row, found in enumerate(rivals):
        if found is None:
            continue
        full = 2 * found[0] + 0.5
        far = np.abs(full - points[row]).max(axis=1) > FINE_REACH - CHECK_REACH
        owners += [row] * int(far.sum())
        places.append(full[far])
    d = points.shape[1]
    return (
        np.asarray(owners, dtype=np.int64),
        np.concatenate(places) if places else np.empty((0, d)),
    )


def _joined(found: Peaks | None, check: Peaks | None) -> Peaks | None:
    """The peaks of a row and of one of its checks together; None when
    either is missing (the row is then searched in full)."""
    if found is None or check is None:
        return None
    return (
        np.concatenate([found[0], check[0]]),
        np.concatenate([found[1], check[1]]),
    )


def _best(found: list[Peaks | None], d: int) -> np.ndarray:
    """Position (n, d) of each row's highest peak; NaN for None rows."""
    best = np.full((len(found), d), np.nan)
    for row, peaks in enumerate(found):
        if peaks is not None:
            best[row] = peaks[0][np.argmax(peaks[1])]
    return best
