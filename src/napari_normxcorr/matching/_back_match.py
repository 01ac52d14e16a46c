"""The consistency check of match_points: where each match matches back.

The back-match cuts a template around the match in the target and
searches the template image around the point, as far as the forward
match searched. The distance from the point to its best position is the
row's ``consistency``: a better copy of the match's content anywhere in
that range shows that the match is not mutual.

Searched in full, that range costs as much as the forward pass. On
in-memory images without masks, a wide range is searched coarse to fine:

1. the whole range on both images reduced f times along each axis (a
   low-pass, then every other pixel, once or twice: f = 2, or 4 for large
   templates; radii divided by f). Each local maximum of that surface
   whose height comes within RIVAL_MARGIN of the highest is a place where
   the match's content may match as well: a rival;
2. at full resolution, a few px around the point (see `Reduction`): the
   back-peak there and its score;
3. at full resolution, a few px around each rival that step 2 did not
   cover: a rival scoring above that back-peak is the back-match.

A row whose windows are clipped at an edge of an image, or that any of
these steps cannot place or read, is searched in full.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ..core._parallel import in_threads, thread_workspace
from ..core._peaks import (
    argmax_indices,
    local_maxima,
    parabolic_heights,
    parabolic_shifts,
)
from ..core._windows import Window, inside_all
from ._matcher import Matcher
from ._passes import floored, work_units, worker
from ._result import Status, statuses

# A rival is a coarse local maximum whose height (NCC) comes this close
# to the highest.
RIVAL_MARGIN = 0.3
# The most rivals checked per row, the strongest first.
MAX_RIVALS = 8
# Coarse to fine only for templates this wide (radius, px), so that the
# reduced ones keep some texture; for ranges this wide (px, on some axis),
# which the fine steps do not cover; and for search windows of this many
# pixels: in smaller ones, the calls around three passes cost more than
# the transforms they save.
MIN_TEMPLATE_RADIUS = 4
MIN_RANGE = 16
MIN_SEARCH_PIXELS = 2**14
# Templates reduced 4 times keep at least this radius (px); smaller ones
# are reduced 2 times.
MIN_REDUCED_RADIUS = 8

# Positions (k, d) and scores (k,) a back surface offers, relative to it.
Peaks = tuple[np.ndarray, np.ndarray]


class Reduction(NamedTuple):
    """How coarse step 1 is, and how far around the point and the rivals
    steps 2 and 3 search (px)."""

    factor: int
    fine_reach: int
    check_reach: int

    @classmethod
    def of(cls, matcher: Matcher) -> Reduction:
        """Reduction by 4 where the templates stay large enough, else 2. A
        rival's coarse position is off by up to half a coarse pixel, and
        its coarse peak by about as much."""
        radius = min(matcher.template_radius)
        factor = 4 if radius >= 4 * MIN_REDUCED_RADIUS else 2
        check = factor + 1
        return cls(factor, check + factor // 2, check)

    def down(self, points: np.ndarray, d: int) -> np.ndarray:
        """`points` in the pixels of the reduced images, whose pixel k is
        centred on pixel fk (see `_halved`)."""
        scaled = points.copy()
        scaled[:, -d:] = points[:, -d:] / self.factor
        return scaled

    def up(self, positions: np.ndarray) -> np.ndarray:
        """Reduced `positions` in full-resolution pixels."""
        return self.factor * positions


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
    window = np.prod(2 * search + 1)
    # Reduction reads both images once: worth it when the searches would
    # read more.
    pixels = sum(int(np.prod(image.shape)) for image in images)
    return bool(
        template.min() >= MIN_TEMPLATE_RADIUS
        and (search - template).max() >= MIN_RANGE
        and window >= MIN_SEARCH_PIXELS
        and rows * window >= pixels
    )


def _unclipped(
    matcher: Matcher, points: np.ndarray, matched: np.ndarray
) -> np.ndarray:
    """Which rows' back windows lie inside their images: the template
    around the match in the target, the search around the point in the
    template image. The reduced windows of the others would not cover
    what theirs do."""
    d = matcher.ndim
    return inside_all(
        matched[:, -d:], matcher.image.shape[-d:], matcher.template_radius
    ) & inside_all(
        points[:, -d:],
        matcher.template_image.shape[-d:],
        matcher.search_radius,
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
    reduction = Reduction.of(matcher)
    rivals = _back_pass(
        _reduced(matcher, reduction.factor),
        reduction.down(matched, d),
        reduction.down(points, d),
        _rivals,
        batch_size,
    )
    near = _back_pass(
        _reaching(matcher, reduction.fine_reach),
        matched,
        points,
        _peaks,
        batch_size,
    )
    owners, places = _unchecked(rivals, points[:, -d:], reduction)
    guesses = points[owners].copy()
    guesses[:, -d:] = _within_range(
        matcher, places, points[owners, -d:], reduction.check_reach
    )
    checked = _back_pass(
        _reaching(matcher, reduction.check_reach),
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


def _reduced(matcher: Matcher, factor: int) -> Matcher:
    """`matcher` on its images reduced `factor` times along the matched
    axes (halved again and again, see `_halved`), its radii divided by
    `factor`."""
    d = matcher.ndim

    def reduced(image: np.ndarray) -> np.ndarray:
        dtype = np.float32 if image.dtype == np.float32 else np.float64
        for _ in range(factor.bit_length() - 1):
            for axis in range(image.ndim - d, image.ndim):
                image = _halved(image, axis, dtype)
        return image

    assert isinstance(matcher.template_image, np.ndarray)
    assert isinstance(matcher.image, np.ndarray)
    return replace(
        matcher,
        template_image=reduced(matcher.template_image),
        image=reduced(matcher.image),
        template_radius=tuple(r // factor for r in matcher.template_radius),
        search_radius=tuple(s // factor for s in matcher.search_radius),
        maps={},
    )


def _halved(image: np.ndarray, axis: int, dtype: type) -> np.ndarray:
    """Pixels 0, 2, 4, ... of `image` along `axis`, each summed with its
    two neighbours with weights 1, 2, 1 (at the ends the one neighbour
    counts twice); a new array of `dtype`. NCC does not see the scale.

    Without that low-pass, a feature's coarse NCC would depend on where it
    falls between the coarse pixels, and a rival half a coarse pixel off
    the grid would score far below its worth.
    """

    def every_other(start: int) -> np.ndarray:
        return image[(slice(None),) * axis + (slice(start, None, 2),)]

    def along(key: slice) -> tuple:
        return (slice(None),) * axis + (key,)

    centre, odd = every_other(0), every_other(1)
    out: np.ndarray = np.add(centre, centre, dtype=dtype)
    count = odd.shape[axis]
    out[along(slice(0, count))] += odd  # right neighbours
    out[along(slice(1, None))] += odd[along(slice(0, out.shape[axis] - 1))]
    # The first pixel has no left neighbour, the last one (of an odd
    # length) no right one: the other counts twice.
    out[along(slice(0, 1))] += odd[along(slice(0, 1))]
    if count < out.shape[axis]:
        out[along(slice(-1, None))] += odd[along(slice(-1, None))]
    return out


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
    matcher: Matcher, places: np.ndarray, points: np.ndarray, reach: int
) -> np.ndarray:
    """`places` moved just enough that a search of `reach` px around them
    stays within the range searched around their `points`."""
    template = np.asarray(matcher.template_radius)
    wide = np.asarray(matcher.search_radius) - template
    slack = wide - np.minimum(wide, reach)
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
    """Each surface's local maxima whose height (see `parabolic_heights`)
    comes within RIVAL_MARGIN of the highest, at most MAX_RIVALS, the
    highest first, at whole pixels.

    A coarse surface samples a peak up to half a coarse pixel from its
    top: compared by their heights, rivals on and off the coarse grid
    compare alike.
    """
    surfaces = floored(windows, surfaces)
    n, d = len(surfaces), surfaces.ndim - 1
    best = surfaces.reshape(n, -1).max(axis=1)
    # A height exceeds its sample by less than the margin.
    low = (best - 2 * RIVAL_MARGIN).reshape(-1, *[1] * d)
    close = np.argwhere(
        local_maxima(surfaces, thread_workspace()) & (surfaces >= low)
    )
    heights = parabolic_heights(surfaces, close[:, 0], close[:, 1:])
    top = np.full(n, -np.inf)
    np.maximum.at(top, close[:, 0], heights)
    keep = heights >= top[close[:, 0]] - RIVAL_MARGIN
    close, heights = close[keep], heights[keep]
    found = []
    for k in range(n):
        mine = close[:, 0] == k
        strongest = np.argsort(-heights[mine], kind="stable")[:MAX_RIVALS]
        where = close[mine][strongest, 1:].astype(np.float64)
        found.append((where, heights[mine][strongest]))
    return found


def _unchecked(
    rivals: list[Peaks | None], points: np.ndarray, reduction: Reduction
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and full-resolution places (n, d) of the rivals that the fine
    search around their point does not cover."""
    covered = reduction.fine_reach - reduction.check_reach
    owners, places = [], []
    for row, found in enumerate(rivals):
        if found is None:
            continue
        full = reduction.up(found[0])
        far = np.abs(full - points[row]).max(axis=1) > covered
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
