"""Placing windows: where each point's template and search windows lie.

Placing reads no pixel: it decides which rows can be matched, where
their windows are cut, and in which order they are read (grouped by
shape, so that each group correlates in one stack).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from ..core._arrays import LazyArray
from ..core._windows import Window, as_slices, inside_all, window_bounds
from ._result import Status


class Sides(NamedTuple):
    """The images one direction of matching cuts its templates from
    (`source`) and searches (`target`), with their masks (True = no
    data) and the fill value without data."""

    source: LazyArray
    target: LazyArray
    source_mask: LazyArray | None = None
    target_mask: LazyArray | None = None
    nodata: float | None = None

    def reversed(self) -> Sides:
        """The other direction: the target's pixels are cut, the
        source's searched (the back-match of the consistency check)."""
        return Sides(
            self.target,
            self.source,
            self.target_mask,
            self.source_mask,
            self.nodata,
        )


class Radii(NamedTuple):
    """Window radii per matched axis, in pixels."""

    template: tuple[int, ...]
    search: tuple[int, ...]


def place_rows(
    points: np.ndarray,
    guesses: np.ndarray,
    status: np.ndarray,
    sides: Sides,
    radii: Radii,
) -> list[list[Window]]:
    """Windows of every row still ``ok`` in `status`, grouped by shape
    and in reading order; rows that cannot be placed get their status.

    Templates are cut around `points` in ``sides.source``, searches lie
    around `guesses` in ``sides.target``.
    """
    rows = np.flatnonzero(status == Status.OK)
    placed = Placement.of(rows, points, guesses, sides, radii)
    status[placed.outside] = Status.OUTSIDE_IMAGE
    status[placed.no_fit] = Status.NO_FIT
    return [list(placed.windows(group, sides)) for group in placed.groups()]


def grouped(windows: Iterable[Window]) -> list[list[Window]]:
    """`windows` grouped by shape (in order of first appearance), each
    group in reading order: as `place_rows` groups them."""
    groups = defaultdict(list)
    for window in windows:
        groups[window.shapes].append(window)
    for members in groups.values():
        members.sort(key=Window.reading_order)
    return list(groups.values())


def placeable(
    points: np.ndarray,
    guesses: np.ndarray,
    source: LazyArray,
    target: LazyArray,
    d: int,
) -> np.ndarray:
    """Which of (n, D) `points` (in `source`) and their `guesses` (in
    `target`) can be placed: both inside their images and in one plane
    (the leading D - d coordinates, rounded); the others are ``outside
    image``."""
    # Inside first: a NaN or infinite coordinate has no plane.
    placed = inside_all(points, source.shape) & inside_all(
        guesses, target.shape
    )
    planes = np.rint(points[placed, :-d])
    placed[placed] = np.all(planes == np.rint(guesses[placed, :-d]), axis=1)
    return placed


class Placement(NamedTuple):
    """Where the windows of many rows lie (see `place_rows`).

    `outside` and `no_fit` are the rows that cannot be placed; the
    others are `rows`, with their planes and window bounds.
    """

    outside: np.ndarray
    no_fit: np.ndarray
    rows: np.ndarray
    planes: np.ndarray
    template: tuple[np.ndarray, np.ndarray]
    search: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(
        cls,
        rows: np.ndarray,
        points: np.ndarray,
        guesses: np.ndarray,
        sides: Sides,
        radii: Radii,
    ) -> Placement:
        """The placement of `rows`: templates around `points` in the
        source, searches around `guesses` in the target."""
        source, target = sides.source, sides.target
        d = len(radii.template)
        point, guess = points[rows], guesses[rows]
        placed = placeable(point, guess, source, target, d)
        point, guess = point[placed], guess[placed]
        template = window_bounds(
            point[:, -d:], radii.template, source.shape[-d:]
        )
        search = window_bounds(guess[:, -d:], radii.search, target.shape[-d:])
        fits = np.all(
            template[1] - template[0] <= search[1] - search[0], axis=1
        )
        return cls(
            rows[~placed],
            rows[placed][~fits],
            rows[placed][fits],
            np.rint(point[fits, :-d]).astype(np.int64),
            (template[0][fits], template[1][fits]),
            (search[0][fits], search[1][fits]),
        )

    def groups(self) -> list[np.ndarray]:
        """Indices into `rows` per window shape (in order of first
        appearance), each in reading order (see `Window.reading_order`)."""
        if not len(self.rows):
            return []
        search = self.search[1] - self.search[0]
        shapes = np.concatenate(
            [self.template[1] - self.template[0], search], axis=1
        )
        _, first, inverse = np.unique(
            shapes, axis=0, return_index=True, return_inverse=True
        )
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first)] = np.arange(len(first))
        group = rank[inverse.ravel()]
        start = self.search[0]
        bands = start[:, :-1] // search[:, :-1]
        # lexsort sorts by its last key first; it is stable, as list.sort.
        keys = (start[:, -1], *bands.T[::-1], *self.planes.T[::-1], group)
        order = np.lexsort(keys)
        ends = np.flatnonzero(np.diff(group[order])) + 1
        return np.split(order, ends)

    def windows(self, members: np.ndarray, sides: Sides) -> Iterator[Window]:
        """The unread windows of the placed rows `members` (indices into
        `rows`), cut from and searched in `sides`."""
        (t_start, t_stop), (s_start, s_stop) = (
            (start[members], stop[members])
            for start, stop in (self.template, self.search)
        )
        # Python ints for the slices, in one conversion per array.
        listed = zip(
            self.rows[members].tolist(),
            self.planes[members].tolist(),
            t_start.tolist(),
            t_stop.tolist(),
            s_start.tolist(),
            s_stop.tolist(),
        )
        for k, (row, plane, t_low, t_high, s_low, s_high) in enumerate(listed):
            plane = tuple(plane)
            yield Window(
                row,
                plane,
                t_start[k],
                s_start[k],
                sides.source,
                plane + as_slices(t_low, t_high),
                sides.target,
                plane + as_slices(s_low, s_high),
                source_mask=sides.source_mask,
                target_mask=sides.target_mask,
                nodata=sides.nodata,
            )
