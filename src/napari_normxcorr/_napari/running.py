"""A full run of the Match tab: started in a background worker, followed
by a progress bar, and its result drawn a layer per event-loop turn."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ProgressBar, PushButton

from ..matching._result import MatchResult
from . import jobs
from .advice import border_message, wider_search
from .layers import finish_left
from .session import RunInputs
from .steps import Steps, now

if TYPE_CHECKING:
    from .widget import MatchWidget


def run_controls(
    run_tip: str,
) -> tuple[PushButton, PushButton, ProgressBar, CheckBox, PushButton]:
    """Run, Cancel, the progress bar, live mode and Undo."""
    run = PushButton(text="Run", tooltip=run_tip)
    cancel = PushButton(
        text="Cancel",
        enabled=False,
        tooltip="Stop the run after its current chunk of points",
    )
    progress = ProgressBar(
        value=0, visible=False, label="progress", tooltip="Points matched"
    )
    live = CheckBox(
        value=False,
        text="live: re-match edited points",
        tooltip="On after the first run: adding, moving or deleting a "
        "point updates its match",
    )
    undo = PushButton(
        text="Undo last point edit",
        enabled=False,
        tooltip="Put the points back as before the last edit (a whole "
        "drag at a time)",
    )
    return run, cancel, progress, live, undo


class Runner:
    """Runs the widget's matching and shows its result.

    Parameters
    ----------
    widget : MatchWidget
        Its session, controls and views.
    """

    def __init__(self, widget: MatchWidget):
        self._widget = widget
        self.worker: Any = None
        self.steps = Steps()
        self._live_turned_on = False

    @property
    def busy(self) -> bool:
        """Whether a run works or its result is still being drawn."""
        return self.worker is not None or self.steps.busy

    def start(self, inputs: RunInputs, world: np.ndarray) -> Any:
        """Match `inputs` (points at `world`) in a background worker."""
        widget = self._widget
        points, guesses = inputs.pixels(world)
        widget.session.start()
        steps = jobs.steps(len(points))
        self.worker = jobs.start(
            jobs.match_in_chunks,
            inputs,
            points,
            guesses,
            session=widget.session,
            on_result=lambda result: self._on_result(inputs, world, result),
            on_error=report_error,
            on_finished=self._on_finished,
            on_cancelled=self._on_cancelled,
        )
        self._show_running(True, steps)
        # Our own bar, under Run, not napari's activity dock: it stops
        # showing bars after a run that ends before its bar is drawn, and
        # making a bar there holds the GUI for a tenth of a second or more
        # without a GPU.
        self.worker.yielded.connect(self._on_progress)
        return self.worker

    def cancel(self) -> None:
        """Stop the running worker after its current chunk of points."""
        if self.worker is not None:
            self.worker.quit()

    def close(self) -> None:
        """The widget is gone: nothing more to draw, but no output layer
        is left hidden."""
        self.steps.clear()
        finish_left(self._widget._viewer)

    def _show_running(self, running: bool, steps: int = 1) -> None:
        widget = self._widget
        widget.progress.visible = running
        widget.progress.max = steps
        widget.progress.value = 0
        widget.cancel_button.enabled = running
        widget._update_buttons()

    def _on_progress(self, done: int) -> None:
        if self._widget.session.is_closed:
            return
        progress = self._widget.progress
        try:
            progress.value = min(progress.max, jobs.steps(done))
        except RuntimeError:  # the viewer was closed meanwhile
            pass

    def _on_finished(self) -> None:
        self.worker = None
        self._show_running(False)

    def _on_cancelled(self) -> None:
        from napari.utils.notifications import show_info

        show_info("Matching cancelled; no layers were changed.")

    def _on_result(
        self, inputs: RunInputs, world: np.ndarray, result: MatchResult
    ) -> None:
        """Keep a finished run and show it; later edits update it live."""
        widget = self._widget
        # A result for a layer removed meanwhile (or a closed viewer,
        # which removes all layers) is dropped.
        if inputs.points_layer not in widget._viewer.layers:
            return
        # One layer (or dock) per turn of the event loop: no long freeze.
        # New layers are shown a turn after they are added, and filled
        # layers restyled a turn after their data (`layers.set_or_add`);
        # the matches and vectors are filled last, into layers added
        # empty (`OutputLayers.empty_steps`): until then the canvas has
        # few items to repaint after each turn.
        outputs = widget._outputs
        outputs.later = self.steps.add_next
        outputs.defer = self.steps.add
        try:
            # The worker judged the neighbours over the whole result.
            widget.session.finish(inputs, world, result, judged=True)
        finally:
            outputs.defer = now
        results = widget._results
        steps = outputs.empty_steps()
        if results.table is None:
            # A new results dock: docked on one turn, filled on the next.
            steps += [
                partial(results.show_table, fill=False),
                results.fill_table,
            ]
        # In this order, before the matches and vectors `finish` queued.
        for step in reversed([*steps, self._show_first_surface]):
            self.steps.add_next(step)
        widget._live.follow(inputs.points_layer)
        widget._results.follow(inputs.points_layer)
        # Live mode comes on once; a user who turns it off keeps it off.
        if not self._live_turned_on:
            self._live_turned_on = True
            widget.live.value = True
        self._advise(result)

    def _show_first_surface(self) -> None:
        session, outputs = self._widget.session, self._widget._outputs
        if session.result is None or session.is_closed:
            return
        # The peaks right after the surface.
        outputs.defer = self.steps.add_next
        try:
            with outputs.keeping_active_layer():
                session.show(0)
        finally:
            outputs.defer = now

    def _advise(self, result: MatchResult) -> None:
        """Name a max displacement that would fit when many peaks sit on
        the search border."""
        from napari.utils.notifications import show_warning

        settings = self._widget.settings
        limit = tuple(settings.max_displacement.value)
        if result.offset.shape[1] == 3:
            limit = (settings.max_displacement_z.value, *limit)
        suggestion = wider_search(result, limit)
        if suggestion is not None:
            show_warning(border_message(result, limit, suggestion))


def report_error(error: Exception) -> None:
    """A worker's error, as a notification."""
    from napari.utils.notifications import show_error

    show_error(f"Matching failed: {error}")
