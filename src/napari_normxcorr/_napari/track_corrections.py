"""Tracks corrected by hand: a vertex moved at frame t tracks its point
again from there (`retrack`), one point at a time in the background;
moves made meanwhile wait their turn, and Undo puts a track back."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ..tracking._tracks import TrackResult
from . import jobs, track_jobs
from .session import MatchSession
from .track_session import TrackSession


class Corrections:
    """The corrections by hand of one tracking session.

    Parameters
    ----------
    session : TrackSession
        The tracks; a correction replaces one of them.
    match_session : MatchSession
        The widget's session: once it is closed, workers stop.
    report_error : callable
        Called with the exception when a worker fails.
    """

    def __init__(
        self,
        session: TrackSession,
        match_session: MatchSession,
        report_error: Callable[[Exception], None],
    ):
        self.session = session
        self._match_session = match_session
        self._report_error = report_error
        # Vertices moved while a correction runs: point -> (t, position).
        self._pending: dict[int, tuple[int, np.ndarray]] = {}
        self._correcting: Any = None

    @property
    def busy(self) -> bool:
        """Whether a correction runs or waits to."""
        return self._correcting is not None or bool(self._pending)

    def clear(self) -> None:
        """Forget the corrections waiting (a full run replaces them)."""
        self._pending.clear()

    def undo(self) -> bool:
        """Put back the track before the last correction; False when
        there is none."""
        self._pending.clear()
        return self.session.undo() is not None

    def add(self, point: int, t: int, position: Any) -> None:
        """The vertex of `point` at frame `t` was moved to `position`."""
        self._pending[point] = (t, np.asarray(position, dtype=float))
        self._correct_next()

    def _correct_next(self) -> None:
        """Track the next moved point again, unless one is being done."""
        run, result = self.session.run, self.session.result
        if self._correcting is not None or not self._pending:
            return
        assert run is not None and result is not None
        point = next(iter(self._pending))
        t, position = self._pending.pop(point)
        given = np.array([[t, *position]])
        job = partial(
            track_jobs.retrack_vertex,
            result=result,
            point=point,
            keywords=run.keywords(),
        )
        self._correcting = jobs.start(
            job,
            run.inputs,
            given,
            given,
            session=self._match_session,
            on_result=lambda found: self._on_corrected(point, found, result),
            on_error=self._report_error,
            on_finished=self._on_correction_finished,
        )

    def _on_corrected(
        self, point: int, found: TrackResult, base: TrackResult
    ) -> None:
        """Show the new track, unless it is stale: the tracks changed
        since it started (a run, an undo) or the point moved again."""
        if self.session.result is not base or point in self._pending:
            return
        self.session.correct(point, found)

    def _on_correction_finished(self) -> None:
        self._correcting = None
        self._correct_next()
