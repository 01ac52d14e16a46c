"""Live mode: re-match only the points the user adds, moves or deletes.

Edits arrive as ``Points.events.data`` with an action and the indices it
touched. Deletions are applied at once; added and moved points are matched
in a background worker. Edits that arrive while a worker runs are pooled
and matched next (a drag fires many events), and a result is applied only
to rows whose point has not moved again since the worker started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from ..matching._result import MatchResult, Surface
from . import jobs
from .layers import points_world
from .session import MatchSession

if TYPE_CHECKING:
    import napari

# Point edits that can be undone.
_HISTORY = 100
# Moves of the same points this close in time (s) are one drag.
_GESTURE_GAP = 0.5


class EditHistory:
    """The points layer's data before each edit, for undo.

    Moves of the same points less than _GESTURE_GAP apart are one gesture
    (a drag), undone in one step; the last _HISTORY edits are kept.
    """

    def __init__(self, data: np.ndarray):
        self._before: list[np.ndarray] = []
        self._last = np.array(data, copy=True)
        self._last_time = 0.0
        self._last_indices: set[int] = set()

    def __len__(self) -> int:
        return len(self._before)

    def record(
        self, action: str, indices: set[int], data: np.ndarray, undoing: bool
    ) -> None:
        """An edit made the layer's data `data`."""
        now = time.monotonic()
        gesture = (
            action == "changed"
            and indices == self._last_indices
            and now - self._last_time <= _GESTURE_GAP
        )
        if not undoing and not gesture:
            self._before = [*self._before[1 - _HISTORY :], self._last]
        self._last = np.array(data, copy=True)
        self._last_time = now
        self._last_indices = indices

    def pop(self) -> np.ndarray:
        """The data before the last edit (removed from the history)."""
        return self._before.pop()


class LiveMatching:
    """Keeps the session's result in step with the edits of its points.

    Parameters
    ----------
    session : MatchSession
        Holds the result that edits update.
    viewer : napari.Viewer
        A result for a points layer no longer in it is dropped.
    enabled : callable
        Whether live mode is on (deletions apply regardless).
    report_error : callable
        Called with the exception when a worker fails.

    Signals
    -------
    edited : ()
        The points were edited (or an edit undone): what Undo can do
        changed.
    """

    edited = Signal()

    def __init__(
        self,
        session: MatchSession,
        viewer: napari.Viewer,
        enabled: Callable[[], bool],
        report_error: Callable[[Exception], None],
    ):
        self._session = session
        self._viewer = viewer
        self._enabled = enabled
        self._report_error = report_error
        self._layer: napari.layers.Points | None = None
        self._history: EditHistory | None = None
        self._pending: set[int] = set()
        self._worker: Any = None
        self._undoing = False
        session.started.connect(self._on_run_started)

    @property
    def busy(self) -> bool:
        """Whether edits are being matched or wait to be."""
        return self._worker is not None or bool(self._pending)

    def _on_run_started(self) -> None:
        # A full run replaces every row: pending edits are part of it.
        self._pending.clear()

    def follow(self, points_layer: napari.layers.Points) -> None:
        """Watch the edits of `points_layer` (the session's points)."""
        if self._layer is not None:
            self._layer.events.data.disconnect(self._on_edit)
        self._layer = points_layer
        self._history = EditHistory(points_layer.data)
        points_layer.events.data.connect(self._on_edit)

    @property
    def can_undo(self) -> bool:
        """Whether there is an edit to undo."""
        return bool(self._history) and self._layer is not None

    def undo(self) -> bool:
        """Put the points back as they were before the last edit."""
        if not self._history or self._layer is None:
            return False
        self._undoing = True
        try:
            self._layer.data = self._history.pop()
        finally:
            self._undoing = False
        return True

    def _on_edit(self, event: Any) -> None:
        action = str(getattr(event, "action", ""))
        if action not in ("added", "changed", "removed"):
            return  # the "-ing" half of an edit: wait for its end
        assert self._layer is not None and self._history is not None
        indices = set(getattr(event, "data_indices", ()))
        self._history.record(action, indices, self._layer.data, self._undoing)
        self.edited.emit()
        session = self._session
        if session.result is None:
            return
        world = points_world(self._layer)
        # Deletions always apply (cheap, and keeps rows aligned with points).
        if action == "removed" and len(world) < len(session.result):
            self._remove(event.data_indices)
            return
        if not self._enabled():
            return
        count = len(session.result)
        session.resize(world)
        self._pending.update(range(count, len(world)))
        moved = np.flatnonzero(~np.all(world == session.world, axis=1))
        self._pending.update(int(i) for i in moved)
        self._start()

    def _remove(self, indices: Any) -> None:
        session = self._session
        assert session.result is not None
        rows = [i for i in indices if i < len(session.result)]
        self._pending = {
            i - sum(r < i for r in rows)
            for i in self._pending
            if i not in rows
        }
        session.remove(rows)

    def _start(self) -> None:
        """Match the pending rows, unless a worker is already at it."""
        inputs = self._session.inputs
        if self._worker is not None or not self._pending or inputs is None:
            return
        assert self._layer is not None
        rows = np.array(sorted(self._pending))
        self._pending.clear()
        world = points_world(self._layer)[rows]
        self._session.world[rows] = world
        points, guesses = inputs.pixels(world)
        generation = self._session.generation

        def apply(found: tuple[MatchResult, Surface | None]) -> None:
            self._apply(rows, world, *found, generation)

        self._worker = jobs.start(
            jobs.match_and_surface,
            inputs,
            points,
            guesses,
            session=self._session,
            on_result=apply,
            on_error=self._report_error,
            on_finished=self._on_finished,
        )

    def _apply(
        self,
        rows: np.ndarray,
        world: np.ndarray,
        part: MatchResult,
        surface: Surface | None,
        generation: int,
    ) -> None:
        """Show the rows whose point is still where it was matched."""
        session = self._session
        if (
            generation != session.generation
            or session.result is None
            or self._layer not in self._viewer.layers
        ):
            return
        assert self._layer is not None
        current = points_world(self._layer)
        fresh = [
            k
            for k, row in enumerate(rows)
            if row < len(current)
            and np.all(current[row] == world[k])
            and row < len(session.result)
        ]
        if not fresh:
            return
        keep = np.asarray(fresh)
        session.update(rows[keep], part.take(keep), world[keep])
        if fresh[-1] == len(rows) - 1 and surface is not None:
            session.show(int(rows[-1]), surface)
        else:
            session.show(int(rows[keep[-1]]))

    def _on_finished(self) -> None:
        self._worker = None
        self._start()
