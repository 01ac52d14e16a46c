"""The dock widget: controls wired to a matching session and its views."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    Container,
    FloatSpinBox,
    PushButton,
    SpinBox,
    TupleEdit,
)

from ..matching._result import MatchResult
from ..matching._verdicts import (
    MAX_CONSISTENCY_ERROR,
    MAX_MOTION_GAP,
    MAX_NEIGHBOUR_RESIDUAL,
    MAX_UNCERTAINTY,
)
from . import jobs
from .ellipses import UncertaintyEllipses
from .fields import FieldSection
from .inputs import InputProblem, prepare_run
from .layers import reconnect
from .live import LiveMatching
from .outputs import OutputLayers
from .pickers import LayerPickers
from .register import RegisterSection
from .session import MatchOptions, MatchSession, RunInputs
from .table import ResultsTable
from .tracking import TrackingSection

if TYPE_CHECKING:
    import napari
    from qtpy.QtWidgets import QWidget
    from superqt import QCollapsible


class MatchWidget(Container):
    """Match the points of a Points layer from a template image to a target.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are matched; outputs are added to it.

    Attributes
    ----------
    session : MatchSession
        The latest run's inputs, result and selection.
    table : ResultsTable or None
        The results dock, once there are results.
    register : RegisterSection
        Fits a transform to the matches and overlays the images.
    fields : FieldSection
        Grid points, the vectors' colouring and the dense field.
    tracking : TrackingSection
        Tracks the points through the template's frames.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        # With a section unfolded the controls are taller than a screen:
        # they scroll. napari docks `native`, which is then the scroll
        # area (see the property below); the controls live inside it.
        super().__init__(scrollable=True)
        self._controls: QWidget = super().native
        self._viewer = viewer
        self._pickers = LayerPickers(viewer)
        self.template_layer, self.image_layer, self.points_layer = (
            self._pickers.widgets
        )
        self.template_mask, self.image_mask = self._pickers.masks
        self._add_controls()
        self.session = MatchSession()
        self.table: ResultsTable | None = None
        self._worker: Any = None
        self._outputs = OutputLayers(
            viewer,
            self.session,
            lambda: self.height_field.value,
            lambda: self.fields.coloring.value,
        )
        self._ellipses = UncertaintyEllipses(
            viewer, self.session, lambda: self.ellipses.value
        )
        self._live = LiveMatching(
            self.session, viewer, lambda: self.live.value, self._report_error
        )
        self.register = RegisterSection(
            self.session, viewer, self._outputs.redraw, self._report_error
        )
        # Full width below the controls: as a magicgui child it would sit
        # in the column of the values, right of an empty label.
        self.fields = FieldSection(
            self.session,
            viewer,
            lambda: self.template_layer.value,
            self._on_grid_added,
            self._outputs.redraw_matches,
        )
        self.fields.follow_template_radius(self.template_radius.value)
        self.tracking = TrackingSection(
            self.session,
            viewer,
            lambda: self.template_layer.value,
            lambda: self.points_layer.value,
            self.match_options,
        )
        self.tracking.follow_template(self.template_layer.value)
        self.template_layer.changed.connect(self.tracking.follow_template)
        # Folded until wanted: the matching controls stay on one screen.
        for title, section in (
            ("Register", self.register),
            ("Dense field", self.fields),
            ("Track through time", self.tracking),
        ):
            box = _folded(title, section)
            box.toggled.connect(self._fit_width)
            self._controls.layout().addWidget(box)
        self._fit_width()
        # Again once docked: napari's style sheet widens the controls.
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, self._fit_width_if_open)
        self._add_callbacks()
        # Closing the viewer deletes the Qt widgets before running work
        # ends: the session stops it and drops what it would show.
        self.native.destroyed.connect(self.session.close)

    def _add_controls(self) -> None:
        self.template_radius = SpinBox(
            value=15,
            min=1,
            max=10_000,
            label="template radius (px)",
            tooltip="Patch around each point: 2 r + 1 pixels wide",
        )
        # Per axis: a rectified stereo pair needs a few rows but many cols.
        self.search_radius = TupleEdit(
            value=(40, 40),
            label="search radius (rows, cols)",
            options={"min": 1, "max": 100_000},
            tooltip="Window searched in the target: 2 r + 1 pixels wide "
            "along each axis; the match can move r - template radius",
        )
        self.subpixel = CheckBox(value=True, text="sub-pixel refinement")
        self.min_score = FloatSpinBox(
            value=0.5, min=-1.0, max=1.0, step=0.05, label="min score"
        )
        self.min_peak_ratio = FloatSpinBox(
            value=1.5,
            min=0.0,
            max=1000.0,
            step=0.1,
            label="min peak ratio",
            tooltip="(1 - second peak) / (1 - score): below, 'ambiguous'",
        )
        self.max_motion_gap = FloatSpinBox(
            value=MAX_MOTION_GAP,
            min=0.0,
            # NCC gains are at most 2: the top turns the test off.
            max=2.0,
            step=0.05,
            label="max motion gap",
            tooltip="How much better a quadrant of the template may score "
            "3 px or more from the match: above, 'two motions' (e.g. "
            "across a depth edge); 2 turns the test off",
        )
        self.max_uncertainty = FloatSpinBox(
            value=MAX_UNCERTAINTY,
            min=0.0,
            max=1000.0,
            step=0.05,
            label="max uncertainty (px)",
            tooltip="Largest standard deviation of a match: above, 'edge "
            "only' (elongated) or 'uncertain'",
        )
        self.max_consistency_error = FloatSpinBox(
            value=MAX_CONSISTENCY_ERROR,
            min=0.0,
            max=1000.0,
            step=0.5,
            label="max consistency error (px)",
        )
        self.neighbours = CheckBox(
            value=True,
            text="judge by neighbours ('outlier')",
            tooltip="Flag ok matches unlike their nearest ok matches (grids "
            "and dense points: planes of 16 or more ok matches)",
        )
        self.live = CheckBox(
            value=False,
            text="live: re-match edited points",
            tooltip="On after the first run: adding, moving or deleting a "
            "point updates its match",
        )
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.undo_button = PushButton(text="Undo last point edit")
        self.ellipses = CheckBox(
            value=False,
            text="uncertainty ellipses",
            tooltip="Draw each match's 2-sigma uncertainty ellipse (long "
            "and thin along the edge for 'edge only' matches)",
        )
        self.height_field = CheckBox(
            value=False,
            text="surface as 3-D height field",
            tooltip="Also show the shown surface as a height field; switch "
            "the viewer to 3-D to judge ambiguous peaks",
        )
        self.extend(
            [
                *self._pickers.widgets,
                *self._pickers.masks,
                self.template_radius,
                self.search_radius,
                self.subpixel,
                self.min_score,
                self.min_peak_ratio,
                self.max_motion_gap,
                self.max_uncertainty,
                self.max_consistency_error,
                self.neighbours,
                self.live,
                self.run_button,
                self.cancel_button,
                self.undo_button,
                self.ellipses,
                self.height_field,
            ]
        )

    @property
    def native(self) -> QWidget:
        """The scroll area around the controls: what napari docks."""
        return self.root_native_widget

    def _fit_width_if_open(self) -> None:
        """`_fit_width`, unless the dock was closed meanwhile."""
        try:
            self._fit_width()
        except RuntimeError:  # its Qt widgets are deleted
            pass

    def _fit_width(self, *_: object) -> None:
        """The scroll area as wide as the widest control: they scroll up
        and down, never sideways."""
        area = self.root_native_widget
        bar = area.verticalScrollBar().sizeHint().width()
        frame = 2 * area.frameWidth()
        area.setMinimumWidth(self._controls.sizeHint().width() + bar + frame)

    def _add_callbacks(self) -> None:
        # QPushButton.clicked passes a bool: wrap the calls.
        self.run_button.changed.connect(lambda: self.run())
        self.cancel_button.changed.connect(lambda: self.cancel())
        self.undo_button.changed.connect(lambda: self.undo())
        self.height_field.changed.connect(self._outputs.redraw_surface)
        self.ellipses.changed.connect(lambda: self._ellipses.redraw())
        self.template_radius.changed.connect(
            self.fields.follow_template_radius
        )
        self.session.selected.connect(self._on_selected)

    # --- the state, for scripts and tests ------------------------------

    @property
    def result(self) -> MatchResult | None:
        """The result of the last run, kept in step by live edits."""
        return self.session.result

    @property
    def running(self) -> bool:
        """Whether a run, a live update or a refinement is in progress."""
        return (
            self._worker is not None or self._live.busy or self.register.busy
        )

    def wait_until_done(self, timeout: float = 60.0) -> None:
        """Process GUI events until nothing is running any more.

        Raises
        ------
        TimeoutError
            When work is still running after `timeout` seconds.
        """
        from qtpy.QtWidgets import QApplication

        deadline = time.monotonic() + timeout
        while self.running:
            QApplication.processEvents()
            time.sleep(0.002)
            if time.monotonic() > deadline:
                raise TimeoutError(f"matching still runs after {timeout} s")

    def match_options(self) -> MatchOptions:
        """The matching settings as chosen in the controls."""
        return MatchOptions(
            template_radius=self.template_radius.value,
            search_radius=tuple(self.search_radius.value),
            subpixel=self.subpixel.value,
            min_score=self.min_score.value,
            min_peak_ratio=self.min_peak_ratio.value,
            # At the top the test is off: not computed at all.
            max_motion_gap=(
                np.inf
                if self.max_motion_gap.value >= self.max_motion_gap.max
                else self.max_motion_gap.value
            ),
            max_uncertainty=self.max_uncertainty.value,
            max_consistency_error=self.max_consistency_error.value,
            max_neighbour_residual=(
                MAX_NEIGHBOUR_RESIDUAL if self.neighbours.value else np.inf
            ),
        )

    # --- running ------------------------------------------------------

    def run(self) -> Any:
        """Match the chosen points in a background worker.

        Returns the started worker, or None when the inputs cannot be
        matched (a notification says why; nothing is added or changed).
        """
        from napari.utils.notifications import show_warning

        try:
            inputs, world = prepare_run(
                self.template_layer.value,
                self.image_layer.value,
                self.points_layer.value,
                self.match_options(),
                self.template_mask.value,
                self.image_mask.value,
            )
        except InputProblem as problem:
            show_warning(str(problem))
            return None
        # A run confirms the choices: new layers no longer re-pick them.
        self._pickers.automatic = False
        points, guesses = inputs.pixels(world)
        self.session.start()
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self._worker = jobs.start(
            jobs.match_in_chunks,
            inputs,
            points,
            guesses,
            session=self.session,
            on_result=lambda result: self._on_result(inputs, world, result),
            on_error=self._report_error,
            on_finished=self._on_finished,
            on_cancelled=self._on_cancelled,
            progress={
                "total": jobs.steps(len(points)),
                "desc": "Matching points",
            },
        )
        return self._worker

    def cancel(self) -> None:
        """Stop the running worker after its current chunk of points."""
        if self._worker is not None:
            self._worker.quit()

    def undo(self) -> bool:
        """Put the points back as before the last edit (their matches
        follow); False when there is nothing to undo."""
        return self._live.undo()

    def _on_finished(self) -> None:
        self._worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def _report_error(self, error: Exception) -> None:
        from napari.utils.notifications import show_error

        show_error(f"Matching failed: {error}")

    def _on_cancelled(self) -> None:
        from napari.utils.notifications import show_info

        show_info("Matching cancelled; no layers were changed.")

    # --- results ------------------------------------------------------

    def _on_result(
        self, inputs: RunInputs, world: np.ndarray, result: MatchResult
    ) -> None:
        """Keep a finished run and show it; later edits update it live."""
        # A result for a layer removed meanwhile (or a closed viewer,
        # which removes all layers) is dropped.
        if inputs.points_layer not in self._viewer.layers:
            return
        if self.table is None:
            self.table = ResultsTable(self.session)
            self.table.points_imported.connect(self._on_points_imported)
            self._viewer.window.add_dock_widget(
                self.table, name="NCC match results", area="bottom"
            )
        self.session.finish(inputs, world, result)
        with self._outputs.keeping_active_layer():
            self.session.show(0)
        self._live.follow(inputs.points_layer)
        reconnect(
            inputs.points_layer.selected_data.events.items_changed,
            self._on_points_picked,
        )
        self.live.value = True

    def _on_points_picked(self, event: Any = None) -> None:
        result, inputs = self.session.result, self.session.inputs
        if result is None or inputs is None:
            return
        layer = inputs.points_layer
        selected = [i for i in layer.selected_data if i < len(result)]
        if selected:
            self.session.select(selected)

    def _on_selected(self, points: list[int]) -> None:
        # Selected rows (from the table or the matches) select the points.
        inputs = self.session.inputs
        if inputs is None or inputs.points_layer not in self._viewer.layers:
            return
        layer = inputs.points_layer
        wanted = {p for p in points if p < len(layer.data)}
        if set(layer.selected_data) != wanted:
            layer.selected_data = wanted

    def _on_grid_added(self, layer: napari.layers.Points) -> None:
        # A new grid is what the user wants matched next.
        self.points_layer.value = layer

    def _on_points_imported(self, points: np.ndarray, name: str) -> None:
        layer = self.points_layer.value
        if layer is None:
            layer = self._viewer.add_points(points, name=f"points from {name}")
            self.points_layer.value = layer
        else:
            layer.data = points


def _folded(title: str, section: Container) -> QCollapsible:
    """`section` in a collapsible box titled `title`, folded."""
    from superqt import QCollapsible

    box = QCollapsible(title)
    box.addWidget(section.native)
    box.collapse(animate=False)
    return box
