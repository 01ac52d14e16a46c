"""The state of the widget's tracking, shared by the views that show it.

A tracking run's inputs are a frozen :class:`TrackRun`; the
:class:`TrackSession` holds the latest run, its :class:`TrackResult` and
the tracks as they were before each correction by hand (for undo) and
the point whose track the user looks at, and says when they change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psygnal import Signal

from ..tracking._tracks import TrackResult
from .session import RunInputs

# Corrections that can be undone.
_HISTORY = 100


@dataclass(frozen=True)
class TrackRun:
    """What one run tracks: the template stack and its points, the
    matching options, the frames and the reference rule.

    ``inputs`` has the template layer as both images: tracking follows
    the points through the template's own frames (its first axis).
    """

    inputs: RunInputs
    frames: tuple[int, int]
    reference: str

    def keywords(self) -> dict[str, Any]:
        """The run as keywords of `track_points` (and of `retrack`)."""
        options = self.inputs.options
        return {
            "template_radius": options.template_radius,
            "search_radius": options.search_radius,
            "subpixel": options.subpixel,
            "min_score": options.min_score,
            "reference": self.reference,
            "frames": self.frames,
        }


class TrackSession:
    """The latest tracking run, its result, and the corrections to undo.

    Signals
    -------
    changed : (points,)
        The result changed: the list of points (rows) tracked again, or
        None when the whole result was replaced by a run.
    selected : (point,)
        The user selected the track of `point` (a row of the points), or
        None: no track is selected.
    """

    changed = Signal(object)
    selected = Signal(object)

    def __init__(self) -> None:
        self.run: TrackRun | None = None
        self.result: TrackResult | None = None
        # (point, result before its correction), oldest first.
        self._history: list[tuple[int, TrackResult]] = []
        # The point whose track is selected (its vertices, its surface).
        self.point: int | None = None

    @property
    def can_undo(self) -> bool:
        """Whether there is a correction to undo."""
        return bool(self._history)

    def finish(self, run: TrackRun, result: TrackResult) -> None:
        """Take the result of a run (nothing to undo then)."""
        self.run, self.result = run, result
        self._history.clear()
        # The same row is the same point again, unless the run has fewer.
        if self.point is not None and self.point >= len(result):
            self.point = None
        self.changed.emit(None)

    def correct(self, point: int, result: TrackResult) -> None:
        """Point `point` was tracked again: `result` has its new track."""
        assert self.result is not None
        self._history = [*self._history[1 - _HISTORY :], (point, self.result)]
        self.result = result
        self.changed.emit([point])

    def undo(self) -> int | None:
        """Put back the tracks before the last correction; returns the
        point whose track came back, or None when there was none."""
        if not self._history:
            return None
        point, self.result = self._history.pop()
        self.changed.emit([point])
        return point

    def select(self, point: int | None) -> None:
        """Select the track of `point` (None: no track)."""
        if point is not None and (
            self.result is None or point >= len(self.result)
        ):
            point = None
        if point != self.point:
            self.point = point
            self.selected.emit(point)
