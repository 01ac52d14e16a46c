"""The state of the widget's matching, shared by the views that show it.

A run's inputs are a frozen :class:`RunInputs`; the :class:`MatchSession`
holds the latest inputs, result and selection and says when they change
(psygnal signals), so that the output layers, the results table and live
mode observe one model instead of reaching into each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from ..core._arrays import LazyArray
from ..matching._result import MatchResult, Surface
from ..matching._verdicts import (
    MAX_CONSISTENCY_ERROR,
    MAX_MOTION_GAP,
    MAX_NEIGHBOUR_RESIDUAL,
    MAX_UNCERTAINTY,
    judge_neighbours,
)
from .layers import convert, world_to_data

if TYPE_CHECKING:
    import napari


@dataclass(frozen=True)
class MatchOptions:
    """The widget's matching settings, as `match_points` keywords."""

    template_radius: int | tuple[int, ...]
    search_radius: tuple[int, ...]
    subpixel: bool = True
    min_score: float = 0.5
    min_peak_ratio: float = 1.5
    max_motion_gap: float = MAX_MOTION_GAP
    max_uncertainty: float = MAX_UNCERTAINTY
    max_consistency_error: float = MAX_CONSISTENCY_ERROR
    max_neighbour_residual: float = MAX_NEIGHBOUR_RESIDUAL

    def as_keywords(self) -> dict[str, Any]:
        """The options as keyword arguments of `match_points`."""
        return asdict(self)

    def part_keywords(self) -> dict[str, Any]:
        """`as_keywords` for matching part of the points (a chunk, a live
        edit): without the neighbour test, which the session runs on the
        whole result."""
        return {**asdict(self), "max_neighbour_residual": np.inf}


@dataclass(frozen=True)
class RunInputs:
    """What one run matches: the three layers, their pixels, the options."""

    template_layer: napari.layers.Image
    image_layer: napari.layers.Image
    points_layer: napari.layers.Points
    template: LazyArray
    target: LazyArray
    options: MatchOptions
    # No-data masks (nonzero = ignore) of the template and of the target.
    template_mask: LazyArray | None = None
    image_mask: LazyArray | None = None

    def pixels(self, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points in template pixels, and as guesses in target pixels."""
        points = convert(world, world_to_data(self.template_layer))
        guesses = convert(world, world_to_data(self.image_layer))
        return points, guesses


class MatchSession:
    """The latest run: its inputs, result, and what the user looks at.

    Signals
    -------
    started : ()
        A full run started: results of earlier work are void.
    changed : (rows,)
        The result changed: the list of rows rewritten in place, or None
        when rows were added, removed or the whole result replaced.
    selected : (points,)
        The selected points (row indices) changed.
    shown : (point, surface)
        The surface of `point` is to be shown (`surface`, when already
        computed, else None).
    closed : ()
        The widget is gone (e.g. its viewer was closed): running work is
        to stop, and what it finds to be dropped.
    """

    started = Signal()
    changed = Signal(object)
    selected = Signal(list)
    shown = Signal(int, object)
    closed = Signal()

    def __init__(self) -> None:
        self.inputs: RunInputs | None = None
        self.result: MatchResult | None = None
        # World position of each row's point when it was matched.
        self.world = np.empty((0, 2))
        self.selection: list[int] = []
        self.generation = 0
        self.is_closed = False

    def close(self) -> None:
        """The widget is gone: nothing is to be shown any more."""
        if not self.is_closed:
            self.is_closed = True
            self.closed.emit()

    def start(self) -> int:
        """A full run starts; returns its generation number."""
        self.generation += 1
        self.started.emit()
        return self.generation

    def finish(
        self,
        inputs: RunInputs,
        world: np.ndarray,
        result: MatchResult,
        judged: bool = False,
    ) -> None:
        """Take the result of a full run (matched in parts: its
        neighbours are judged here, over all of it, unless `judged` says
        the worker did)."""
        self.inputs, self.world, self.result = inputs, world.copy(), result
        if not judged:
            self._judge_neighbours()
        self.selection = []
        self.changed.emit(None)

    def replace(self, result: MatchResult) -> None:
        """The same rows with new columns (e.g. flagged by a transform)."""
        if self.result is None or len(result) != len(self.result):
            raise ValueError("a replacement must keep every row")
        self.result = result
        self.changed.emit(None)

    def update(
        self, rows: np.ndarray, part: MatchResult, world: np.ndarray
    ) -> None:
        """Rows `rows` were matched again (their points now at `world`)."""
        assert self.result is not None
        before = self.result.status.copy()
        self.result.put(rows, part)
        self.world[rows] = world
        self._judge_neighbours()
        changed = set(np.flatnonzero(before != self.result.status))
        self.changed.emit(sorted({int(r) for r in rows} | changed))

    def remove(self, rows: Sequence[int]) -> None:
        """Rows `rows` are gone (their points were deleted)."""
        assert self.result is not None
        self.result = self.result.without(rows)
        self.world = np.delete(self.world, list(rows), axis=0)
        self._judge_neighbours()
        self.selection = []
        self.changed.emit(None)

    def _judge_neighbours(self) -> None:
        """Neighbours judge each other: an edit changes other verdicts."""
        assert self.result is not None
        if self.inputs is None:
            return
        options = self.inputs.options
        judge_neighbours(
            self.result,
            options.max_neighbour_residual,
            len(options.search_radius),
        )

    def resize(self, world: np.ndarray) -> None:
        """Rows for the points at `world` beyond the result's end (still
        to be matched), or the rows beyond ``len(world)`` dropped."""
        assert self.result is not None
        count = len(world) - len(self.result)
        if count > 0:
            self.result = self.result.extended(count)
            self.world = np.concatenate([self.world, world[-count:]])
        elif count < 0:
            self.result = self.result.take(slice(0, len(world)))
            self.world = self.world[: len(world)]

    def select(self, points: Sequence[int]) -> None:
        """The user selected `points` (rows), in any view."""
        points = sorted(int(p) for p in points)
        if points != self.selection:
            self.selection = points
            self.selected.emit(points)

    def show(self, point: int, surface: Surface | None = None) -> None:
        """Ask for the surface of `point` (computed already, or not)."""
        if self.result is not None:
            self.shown.emit(point, surface)
