"""The widget's Track through time section: the points followed through
the frames of the template image, and tracks corrected by hand.

The template's first axis is time; its points are (t, row, col) and each
is tracked both ways from its frame (`track_points`). Moving a vertex of
``<points> tracked`` tracks that point again from there (`retrack`), in
the background, and Undo puts its track back. Selecting a track (a row of
the summaries or a vertex) lists its vertices and shows the NCC surface
of its vertex at the shown frame. Input layers never change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    PushButton,
    SpinBox,
)

from ..tracking._track import REFERENCES
from ..tracking._tracks import TrackResult
from . import jobs, track_jobs
from .inputs import InputProblem, prepare_run
from .session import MatchOptions, MatchSession
from .steps import wait_while
from .track_corrections import Corrections
from .track_session import TrackRun, TrackSession
from .track_surface import TrackSurface, current_frame, show_frame
from .track_tables import TrackSummaries, TrackVertices
from .track_views import TRACK_COLORINGS, TrackLayers

if TYPE_CHECKING:
    import napari

_NO_TIME_AXIS = (
    "Tracking needs a time-lapse: pick a template image with time first, "
    "(t, rows, cols)."
)
_DEPTH_AXIS = (
    "The first axis is depth (z), not time: a volume is matched in 3-D on "
    "the Match tab. If it is time, say so with 'first axis is'."
)
_TIPS = {
    "track": "Track the points through the frames (Ctrl+Shift+Enter)",
    "cancel": "Stop tracking after the current frame",
    "undo": "Put back the track as before the last correction by hand",
}
_REFERENCE_TIP = (
    "adaptive: the first template while it scores at least 0.9, then "
    "renewed from the current frame; first: never renewed (no drift, "
    "loses points that change); previous: renewed every frame (follows "
    "change, error adds up)"
)


def _button(text: str, tooltip: str) -> PushButton:
    """A button, disabled until it can act."""
    return PushButton(text=text, enabled=False, tooltip=tooltip)


def frame_count(layer: napari.layers.Image | None) -> int:
    """Frames of an image whose first axis is time; 0 without one."""
    if layer is None or layer.ndim < 3:
        return 0
    data = layer.data[0] if layer.multiscale else layer.data
    return int(data.shape[0])


class TrackingSection(Container):
    """Track the points through the template's frames; correct by hand.

    Parameters
    ----------
    match_session : MatchSession
        The widget's session: once it is closed, workers stop.
    viewer : napari.Viewer
        Where the tracks are drawn.
    template_layer, points_layer : callable
        The template image and the Points layer picked in the widget.
    options : callable
        The widget's matching options (radii, sub-pixel, min score).

    Attributes
    ----------
    session : TrackSession
        The latest tracking run, its result and the corrections to undo.
    """

    def __init__(
        self,
        match_session: MatchSession,
        viewer: napari.Viewer,
        template_layer: Callable[[], napari.layers.Image | None],
        points_layer: Callable[[], napari.layers.Points | None],
        options: Callable[[], MatchOptions],
    ):
        super().__init__()
        self._match_session = match_session
        self._viewer = viewer
        self._template_layer = template_layer
        self._points_layer = points_layer
        self._options = options
        self.session = TrackSession()
        self._worker: Any = None
        self._stop = threading.Event()
        # Whether the running run's result arrived (before its end).
        self._delivered = False
        self._corrections = Corrections(
            self.session, match_session, self._report_error
        )
        self._why_not = _NO_TIME_AXIS
        self._add_controls()
        self._layers = TrackLayers(
            viewer,
            self.session,
            lambda: self.coloring.value,
            lambda: self.drift.value,
        )
        self.summaries = TrackSummaries(self.session)
        self.vertices = TrackVertices(self.session)
        self.surface = TrackSurface(viewer, self.session, self.current_frame)
        for table in (self.summaries, self.vertices):
            self.native.layout().addWidget(table.native)
        self._add_callbacks()

    def _add_controls(self) -> None:
        self.note = Label(value=_NO_TIME_AXIS)
        # Wrapped: one long line would set the width of the whole dock.
        self.note.native.setWordWrap(True)
        self.first = SpinBox(value=0, min=0, max=0, label="first frame")
        self.last = SpinBox(value=0, min=0, max=0, label="last frame")
        self.reference = ComboBox(
            choices=REFERENCES,
            value="adaptive",
            label="reference",
            tooltip=_REFERENCE_TIP,
        )
        self.first.tooltip = "Track from this frame on"
        self.last.tooltip = "Track up to this frame"
        self.coloring = ComboBox(
            choices=TRACK_COLORINGS,
            value="score",
            label="colour tracks by",
            tooltip="Colour the tracks by their NCC score or by the status "
            "of each vertex",
        )
        self.drift = CheckBox(
            value=False,
            text="drift-corrected view",
            tooltip="Add the template with each frame shifted back by the "
            "median motion of the ok points",
        )
        self.track_button = PushButton(text="Track", tooltip=_TIPS["track"])
        self.cancel_button = _button("Cancel", _TIPS["cancel"])
        self.undo_button = _button("Undo last track edit", _TIPS["undo"])
        self.extend(
            [
                self.note,
                self.first,
                self.last,
                self.reference,
                self.coloring,
                self.drift,
                self.track_button,
                self.cancel_button,
                self.undo_button,
            ]
        )

    def _add_callbacks(self) -> None:
        # QPushButton.clicked passes a bool: wrap the calls.
        self.track_button.changed.connect(lambda: self.track())
        self.cancel_button.changed.connect(lambda: self.cancel())
        self.undo_button.changed.connect(lambda: self.undo())
        self.coloring.changed.connect(self._layers.recolor)
        self.drift.changed.connect(self._on_drift)
        self._layers.vertex_moved.connect(self._on_vertex_moved)
        self.session.changed.connect(self._on_changed)
        self.session.selected.connect(self._mark_frame)
        self.vertices.frame_picked.connect(self.go_to_frame)
        self._viewer.dims.events.current_step.connect(self._on_frame)
        self._match_session.closed.connect(self.cancel)
        self._match_session.closed.connect(self._stop_following_frames)

    def follow_template(
        self, layer: napari.layers.Image | None, is_time: bool = True
    ) -> None:
        """Offer tracking when `layer` has a time axis: its frames become
        the range; without one (or when its first axis is depth) the
        section is disabled and says why."""
        frames = frame_count(layer) if is_time else 0
        self._why_not = _NO_TIME_AXIS if is_time else _DEPTH_AXIS
        self.note.value = self._why_not
        self.enabled = frames >= 2
        self.note.visible = frames < 2
        self.native.setToolTip("" if frames >= 2 else self._why_not)
        if frames >= 2:
            for box in (self.first, self.last):
                box.max = frames - 1
            self.first.value, self.last.value = 0, frames - 1

    # --- the selected track and the shown frame -----------------------

    def current_frame(self) -> int | None:
        """The frame of the tracked template that the viewer shows (None:
        nothing tracked, or the template is gone)."""
        run = self.session.run
        if run is None:
            return None
        return current_frame(self._viewer, run.inputs.template_layer)

    def go_to_frame(self, t: int) -> None:
        """Show frame `t` of the tracked template (the time slider)."""
        run = self.session.run
        shown = self.current_frame()
        if run is not None and shown is not None and t != shown:
            show_frame(self._viewer, run.inputs.template_layer, t)

    def _on_frame(self, event: Any = None) -> None:
        """The shown frame changed: the surface and the vertex row follow
        (the selected vertex only: one small match)."""
        if self.session.point is not None:
            self.surface.draw()
            self._mark_frame()

    def _mark_frame(self, *args: Any) -> None:
        """Select the shown frame's row in the vertex table."""
        t = self.current_frame()
        if self.session.point is not None and t is not None:
            self.vertices.show_frame(t)

    def _stop_following_frames(self) -> None:
        self._viewer.dims.events.current_step.disconnect(self._on_frame)

    # --- the state, for scripts and tests ------------------------------

    @property
    def result(self) -> TrackResult | None:
        """The tracks of the last run, with the corrections since."""
        return self.session.result

    @property
    def busy(self) -> bool:
        """Whether a run or a correction is running or waits to."""
        return self._worker is not None or self._corrections.busy

    def wait_until_done(self, timeout: float = 60.0) -> None:
        """Process GUI events until nothing runs any more (TimeoutError
        after `timeout` seconds)."""
        wait_while(lambda: self.busy, timeout, "tracking")

    # --- tracking -----------------------------------------------------

    def track(self) -> Any:
        """Track the points through the frames in a background worker.

        Returns the started worker, or None when the layers cannot be
        tracked (a notification says why; nothing changes).
        """
        from napari.utils.notifications import show_warning

        try:
            run, points = self._prepare()
        except InputProblem as problem:
            show_warning(str(problem))
            return None
        self._corrections.clear()
        stop = self._stop = threading.Event()
        job = partial(
            track_jobs.track_in_steps, keywords=run.keywords(), stop=stop
        )
        self._set_running(True)
        self._worker = jobs.start(
            job,
            run.inputs,
            points,
            points,
            session=self._match_session,
            on_result=lambda result: self._on_tracked(run, result),
            on_error=self._report_error,
            on_finished=lambda: self._on_run_finished(stop),
            progress={"total": _steps(points, run.frames), "desc": "Tracking"},
        )
        return self._worker

    def _prepare(self) -> tuple[TrackRun, np.ndarray]:
        """The run and its points in template pixels, or InputProblem."""
        template = self._template_layer()
        if self._why_not == _DEPTH_AXIS and template is not None:
            raise InputProblem(f"'{template.name}': " + _DEPTH_AXIS)
        frames = (int(self.first.value), int(self.last.value))
        return prepare_track(
            template,
            self._points_layer(),
            frames,
            self.reference.value,
            self._options(),
        )

    def cancel(self) -> None:
        """Stop the running tracking after its current frame."""
        self._stop.set()
        if self._worker is not None:
            self._worker.quit()

    def _set_running(self, running: bool) -> None:
        if not running:
            self._worker = None
        self.track_button.enabled = not running
        self.cancel_button.enabled = running

    def _on_tracked(self, run: TrackRun, result: TrackResult | None) -> None:
        """Keep a finished run and show it, unless it was cancelled or its
        layers are gone."""
        if result is None:
            return
        self._delivered = True
        layers = self._viewer.layers
        mine = (run.inputs.template_layer, run.inputs.points_layer)
        if any(layer not in layers for layer in mine):
            return
        self.session.finish(run, result)

    def _on_run_finished(self, stop: threading.Event) -> None:
        """Say so when the run ended cancelled: a worker told to quit may
        end without a signal of its own (superqt emits no ``returned``
        then, and ``aborted`` only between frames)."""
        from napari.utils.notifications import show_info

        self._set_running(False)
        if stop.is_set() and not self._delivered:
            show_info("Tracking cancelled; no layers were changed.")
        self._delivered = False

    def _report_error(self, error: Exception) -> None:
        from napari.utils.notifications import show_error

        show_error(f"Tracking failed: {error}")

    def _on_changed(self, points: list[int] | None = None) -> None:
        self.undo_button.enabled = self.session.can_undo
        self._mark_frame()

    def _on_drift(self, on: bool) -> None:
        if not on:
            self._layers.remove_drift()
        elif self.session.result is not None:
            self._layers.draw_drift()

    # --- correction by hand -------------------------------------------

    def undo(self) -> bool:
        """Put back the track before the last correction; False when
        there is none."""
        return self._corrections.undo()

    def _on_vertex_moved(self, point: int, t: int, position: Any) -> None:
        # A full run under way replaces every track: nothing to correct.
        if self._worker is None and self.session.result is not None:
            self._corrections.add(point, t, position)


def _steps(points: np.ndarray, frames: tuple[int, int]) -> int:
    """Frames a run goes through: forwards from the earliest point's frame
    and backwards from the latest's (the progress bar's total)."""
    times = np.rint(points[:, 0])
    first, last = frames
    return max(1, int(last - times.min()) + int(times.max() - first))


def _check_frames(
    points: np.ndarray, frames: tuple[int, int], name: str
) -> None:
    times = np.rint(points[:, 0])
    outside = np.flatnonzero((times < frames[0]) | (times > frames[1]))
    if outside.size:
        raise InputProblem(
            f"{outside.size} of the {len(points)} points of '{name}' lie "
            f"outside frames {frames[0]} to {frames[1]}: widen the frame "
            "range or remove them."
        )


def prepare_track(
    template: napari.layers.Image | None,
    points: napari.layers.Points | None,
    frames: tuple[int, int],
    reference: str,
    options: MatchOptions,
) -> tuple[TrackRun, np.ndarray]:
    """A tracking run and its points in template pixels.

    Raises
    ------
    InputProblem
        When the template has no time axis, the points no time column,
        the frames are out of order or a point lies outside them (and for
        every problem a run of the widget has).
    """
    if frame_count(template) < 2:
        name = "" if template is None else f" '{template.name}'"
        raise InputProblem(
            f"The template{name} has no time axis. " + _NO_TIME_AXIS
        )
    assert template is not None
    if points is not None and points.ndim == template.ndim - 1:
        raise InputProblem(
            f"The points of '{points.name}' have no time column: they "
            f"are {points.ndim}-D and '{template.name}' is "
            f"{template.ndim}-D. Click them on the time-lapse, so that "
            "each has its frame first."
        )
    if frames[0] >= frames[1]:
        raise InputProblem(
            f"The first frame ({frames[0]}) must come before the last "
            f"({frames[1]})."
        )
    inputs, world = prepare_run(template, template, points, options)
    pixels, _ = inputs.pixels(world)
    _check_frames(pixels, frames, inputs.points_layer.name)
    return TrackRun(inputs, frames, reference), pixels
