"""Live mode: re-match only the points the user adds, moves or deletes.

Edits arrive as ``Points.events.data`` with an action and the indices it
touched. Deletions are applied at once; added and moved points are matched
in a background worker. Edits that arrive while a worker runs are pooled
and matched next (a drag fires many events), and a result is applied only
to rows whose point has not moved again since the worker started.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from . import _layers
from ._match import ROW_FIELDS, MatchResult, Status, match_points

if TYPE_CHECKING:
    from ._widget import MatchWidget

# Point edits that can be undone.
_HISTORY = 100


def set_rows(result: MatchResult, rows, part: MatchResult) -> None:
    """Copy the rows of `part` into `result` at `rows`."""
    for name in ROW_FIELDS:
        getattr(result, name)[rows] = getattr(part, name)


def delete_rows(result: MatchResult, rows) -> MatchResult:
    keep = np.ones(len(result), dtype=bool)
    keep[rows] = False
    return result.take(keep)


def append_rows(result: MatchResult, count: int) -> MatchResult:
    """`result` with `count` unmatched rows at the end (to be matched)."""
    columns = {}
    for name in ROW_FIELDS:
        values = getattr(result, name)
        extra = np.empty((count, *values.shape[1:]), dtype=values.dtype)
        if values.dtype == object:
            extra[...] = Status.OUTSIDE_IMAGE
        elif values.dtype == bool:
            extra[...] = False
        else:
            extra[...] = np.nan
        columns[name] = np.concatenate([values, extra])
    return MatchResult(**columns, _context=result._context)


class LiveMatching:
    """Keeps a MatchWidget's last result in step with its points layer."""

    def __init__(self, widget: MatchWidget):
        self.widget = widget
        self.layer = None
        self.pending: set[int] = set()
        self.worker = None
        self.updates = 0  # applied updates, for tests and benchmarks
        self.generation = 0  # bumped by a full run: older work is void
        self.history: list[np.ndarray] = []  # points data before each edit
        self._last = None
        self._last_edit = 0.0
        self._last_indices: set[int] = set()
        self._undoing = False

    def reset(self) -> None:
        """Forget pending edits and in-flight results (a full run starts)."""
        self.pending.clear()
        self.generation += 1

    def follow(self, points_layer) -> None:
        if self.layer is not None:
            self.layer.events.data.disconnect(self.on_edit)
        self.layer = points_layer
        self._last = np.array(points_layer.data, copy=True)
        points_layer.events.data.connect(self.on_edit)

    def undo(self) -> bool:
        """Put the points back as they were before the last edit."""
        if not self.history or self.layer is None:
            return False
        self._undoing = True
        try:
            self.layer.data = self.history.pop()
        finally:
            self._undoing = False
        return True

    def _remember(self, action: str, indices) -> None:
        """Keep the points as they were before this edit (for undo).

        Moves of the same points less than half a second apart are one
        gesture (a drag), undone in one step. The last _HISTORY edits are
        kept.
        """
        now = time.monotonic()
        gesture = (
            action == "changed"
            and indices == self._last_indices
            and now - self._last_edit <= 0.5
        )
        if not self._undoing and not gesture:
            self.history = [*self.history[1 - _HISTORY :], self._last]
        self._last = np.array(self.layer.data, copy=True)
        self._last_edit = now
        self._last_indices = indices

    def on_edit(self, event) -> None:
        widget = self.widget
        action = str(getattr(event, "action", ""))
        if action not in ("added", "changed", "removed"):
            return  # the "-ing" half of an edit: wait for its end
        self._remember(action, set(getattr(event, "data_indices", ())))
        if widget.result is None:
            return
        world = self.current_world()
        result = widget.result
        # Deletions always apply (cheap, and keeps rows aligned with points).
        if action == "removed" and len(world) < len(result):
            rows = [i for i in event.data_indices if i < len(result)]
            widget.result = delete_rows(result, rows)
            widget._world = np.delete(widget._world, rows, axis=0)
            self.pending = {
                i - sum(r < i for r in rows)
                for i in self.pending
                if i not in rows
            }
            widget.refresh_outputs()
            self.updates += 1
            return
        if not widget.live.value:
            return
        if len(world) > len(result):
            count = len(world) - len(result)
            widget.result = append_rows(result, count)
            widget._world = np.concatenate([widget._world, world[-count:]])
            self.pending.update(range(len(result), len(world)))
        elif len(world) < len(result):
            # Rows vanished without a removal event (data was replaced).
            widget.result = delete_rows(
                result, list(range(len(world), len(result)))
            )
            widget._world = widget._world[: len(world)]
        moved = np.flatnonzero(~np.all(world == widget._world, axis=1))
        self.pending.update(int(i) for i in moved)
        self.start()

    def current_world(self) -> np.ndarray:
        data = np.asarray(self.layer.data, dtype=float)
        return _layers.convert(data, _layers.data_to_world(self.layer))

    def start(self) -> None:
        """Match the pending rows, unless a worker is already at it."""
        if self.worker is not None or not self.pending:
            return
        from napari.qt.threading import create_worker

        rows = np.array(sorted(self.pending))
        self.pending.clear()
        world = self.current_world()[rows]
        self.widget._world[rows] = world
        job = self.widget._job
        template_layer, image_layer, _ = job["layers"]
        points = _layers.convert(world, _layers.world_to_data(template_layer))
        guesses = _layers.convert(world, _layers.world_to_data(image_layer))
        self.worker = create_worker(
            _match_and_surface,
            job,
            points,
            guesses,
            _connect={"errored": self.widget._report_error},
            _start_thread=False,
        )
        generation = self.generation
        self.worker.returned.connect(
            lambda found: self.apply(rows, world, *found, generation)
        )
        self.worker.finished.connect(self.finished)
        self.worker.start()

    def apply(self, rows, world, part, surface, generation) -> None:
        """Show the rows whose point is still where it was matched."""
        widget = self.widget
        if (
            generation != self.generation
            or widget.result is None
            or not widget.still_shown(self.layer)
        ):
            return
        current = self.current_world()
        fresh = [
            k
            for k, row in enumerate(rows)
            if row < len(current)
            and np.all(current[row] == world[k])
            and row < len(widget.result)
        ]
        if fresh:
            keep = np.asarray(fresh)
            set_rows(widget.result, rows[keep], part.take(keep))
            widget.refresh_outputs(points=[int(r) for r in rows[keep]])
            if fresh[-1] == len(rows) - 1 and surface is not None:
                widget.show_surface(int(rows[-1]), surface)
            else:
                widget.show_surface(int(rows[keep[-1]]))
            self.updates += 1

    def finished(self) -> None:
        self.worker = None
        self.start()


def _match_and_surface(job, points, guesses):
    """Worker body: match the points, and the surface of the last one."""
    part = match_points(
        job["template"],
        job["target"],
        points,
        image_points=guesses,
        keep_surfaces=True,
        **job["options"],
    )
    try:
        surface = part.surface(len(part) - 1)
    except ValueError:
        surface = None
    return part, surface
