"""The dock widget: controls wired to a matching session and its views."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container

from ..core._compiled import warm_up_in_background
from ..matching import KERNEL_MODULES
from ..matching._result import MatchResult
from . import layout, tasks
from .axes import DEPTH, first_axis_kind
from .controls import SETTINGS, MatchControls
from .display import DisplayControls
from .ellipses import UncertaintyEllipses
from .fields import FieldSection
from .inputs import InputProblem, check_not_itself, prepare_run
from .legend import legend_html
from .lifecycle import Lifecycle
from .live import LiveMatching
from .outputs import OutputLayers
from .pickers import LayerPickers
from .plots import Plots, PlotsDock
from .register import RegisterSection
from .results import ResultsView
from .running import Runner, report_error, run_controls
from .session import MatchOptions, MatchSession
from .session_files import SessionFiles
from .steps import wait_while
from .table import ResultsTable
from .tracking import TrackingSection

if TYPE_CHECKING:
    import napari
    from qtpy.QtWidgets import QWidget

RUN_KEY, TRACK_KEY = "Control-Enter", "Control-Shift-Enter"


class MatchWidget(Container):
    """Match the points of a Points layer from a template image to a target.

    The layer pickers and the status legend sit on top; below, one tab per
    task: Match, Track, Register and Dense field, sharing one session.

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
        # The Match tab scrolls; `native` is the whole tabbed widget.
        super().__init__(scrollable=True)
        self._viewer = viewer
        self.settings = MatchControls()
        for name in SETTINGS:
            setattr(self, name, getattr(self.settings, name))
        self._pickers = LayerPickers(viewer, lambda: self.first_axis.value)
        self.template_layer, self.image_layer, self.points_layer = (
            self._pickers.widgets
        )
        self.template_mask, self.image_mask = self._pickers.masks
        self.display = DisplayControls()
        self.ellipses = self.display.ellipses
        self.height_field = self.display.height_field
        self._add_controls()
        self.session = MatchSession()
        self._runner = Runner(self)
        self._add_views(viewer)
        self._native = self._assemble()
        self._life = Lifecycle(viewer, self._native, self._on_closed)
        self._results = ResultsView(
            viewer, self.session, self._life, self.points_layer
        )
        from qtpy.QtCore import QTimer

        # Once docked: napari's style sheet widens the controls, and the
        # dock's end is the widget's end.
        QTimer.singleShot(0, lambda: self._life.docked(self._areas))
        self._life.bind(RUN_KEY, self.run)
        self._life.bind(TRACK_KEY, self.tracking.track)
        self._add_callbacks()
        tasks.connect(self)
        self._update_buttons()
        # Compiled kernels load (or compile, once per machine) while the
        # user picks layers; a run before that takes the numpy paths.
        warm_up_in_background(KERNEL_MODULES)

    def _add_controls(self) -> None:
        (
            self.run_button,
            self.cancel_button,
            self.progress,
            self.live,
            self.undo_button,
        ) = run_controls(f"Match the points ({_key(RUN_KEY)})")
        buttons = Container(
            widgets=[self.run_button, self.cancel_button],
            layout="horizontal",
            labels=False,
        )
        buttons.margins = (0, 0, 0, 0)
        self.extend(
            [
                *self.settings.basic,
                buttons,
                self.progress,
                self.live,
                self.undo_button,
                *self.display.widgets,
            ]
        )
        self._advanced = Container(
            widgets=[*self.settings.advanced, *self._pickers.masks]
        )
        inner = super().native.layout()
        inner.addWidget(layout.folded("Advanced", self._advanced))
        inner.addStretch(1)

    def _add_views(self, viewer: napari.Viewer) -> None:
        self._outputs = OutputLayers(
            viewer,
            self.session,
            lambda: self.height_field.value,
            lambda: self.fields.coloring.value,
        )
        self._ellipses = UncertaintyEllipses(
            viewer,
            self.session,
            lambda: self.ellipses.value,
            lambda: self.display.ellipse_scale.value,
        )
        self.display.connect(viewer, self._outputs, self._ellipses)
        self._live = LiveMatching(
            self.session, viewer, lambda: self.live.value, report_error
        )
        self.register = RegisterSection(
            self.session,
            viewer,
            self._outputs.redraw,
            report_error,
            lambda: (self.template_layer.value, self.image_layer.value),
        )
        self.fields = FieldSection(
            self.session,
            viewer,
            lambda: self.template_layer.value,
            # A new grid is what the user wants matched next.
            partial(setattr, self.points_layer, "value"),
            self._outputs.redraw_matches,
            lambda: self.image_layer.value,
        )
        self.fields.follow_template_radius(self.template_radius.value)
        self.tracking = TrackingSection(
            self.session,
            viewer,
            lambda: self.template_layer.value,
            lambda: self.points_layer.value,
            lambda: self.match_options(volume=False),
        )
        self._plots = PlotsDock(
            self.session,
            self.tracking.session,
            lambda widget, name: self._life.add_dock(widget, name),
        )
        self._files = SessionFiles(self)

    def _assemble(self) -> QWidget:
        """Pickers and legend on top, a tab per task below."""
        top = layout.top_panel(
            [
                *self._pickers.widgets,
                *self.settings.axis_controls,
                layout.button_row(
                    self._plots.button,
                    self._files.save_button,
                    self._files.load_button,
                ),
            ]
        )
        self._areas = [
            self.root_native_widget,
            *(
                layout.scrolled(section.native)
                for section in (self.tracking, self.register, self.fields)
            ),
        ]
        self.legend = layout.legend_label(legend_html())
        outer, self.tabs = layout.tabbed(top.native, self.legend, self._areas)
        self._top = top
        return outer

    @property
    def native(self) -> QWidget:
        """The tabbed widget with the pickers on top: what napari docks
        (the Match tab's controls while the widget is being built)."""
        outer = self.__dict__.get("_native")
        return outer if outer is not None else super().native

    def _on_closed(self) -> None:
        self._plots.close()
        self._runner.close()
        self.session.close()

    def _add_callbacks(self) -> None:
        # QPushButton.clicked passes a bool: wrap the calls.
        self.run_button.changed.connect(lambda: self.run())
        self.cancel_button.changed.connect(lambda: self.cancel())
        self.undo_button.changed.connect(lambda: self.undo())
        self.template_radius.changed.connect(
            self.fields.follow_template_radius
        )
        for picker in self._pickers.widgets:
            picker.changed.connect(self._update_buttons)
        self.session.changed.connect(self._update_buttons)
        self._live.edited.connect(self._update_buttons)

    # --- the state, for scripts and tests ------------------------------

    @property
    def table(self) -> ResultsTable | None:
        """The results dock, once there are results."""
        return self._results.table

    @property
    def result(self) -> MatchResult | None:
        """The result of the last run, kept in step by live edits."""
        return self.session.result

    @property
    def running(self) -> bool:
        """Whether a run, a live update or a refinement is in progress."""
        return self._runner.busy or self._live.busy or self.register.busy

    def wait_until_done(self, timeout: float = 60.0) -> None:
        """Process GUI events until nothing is running any more.

        Raises
        ------
        TimeoutError
            When work is still running after `timeout` seconds.
        """
        wait_while(lambda: self.running, timeout, "matching")

    def first_axis_kind(self) -> str | None:
        """TIME or DEPTH for a template with an axis in front of (rows,
        cols), as labelled or chosen; None for plain images."""
        return first_axis_kind(
            self._viewer, self.template_layer.value, self.first_axis.value
        )

    def match_options(self, volume: bool | None = None) -> MatchOptions:
        """The matching settings as chosen in the controls; `volume`
        (default: the template's first axis is depth) matches in 3-D."""
        if volume is None:
            volume = self.first_axis_kind() == DEPTH
        return self.settings.options(volume)

    # --- running ------------------------------------------------------

    def run(self) -> Any:
        """Match the chosen points in a background worker.

        Returns the started worker, or None when the inputs cannot be
        matched (a notification says why; nothing is added or changed).
        """
        from napari.utils.notifications import show_warning

        if self._runner.worker is not None:
            return None
        try:
            check_not_itself(self.template_layer.value, self.image_layer.value)
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
        return self._runner.start(inputs, world)

    def show_plots(self) -> Plots | None:
        """Dock the plots (`PlotsDock.show`); None without matplotlib."""
        return self._plots.show()

    def save_session(self, path: str | Path) -> bool:
        """Write the layer choices, settings, results and fit to the
        folder `path` (`SessionFiles.save`); False before a run."""
        return self._files.save(path)

    def load_session(self, path: str | Path) -> bool:
        """Bring back a saved session without running again
        (`SessionFiles.load`); False when it cannot (a notification)."""
        return self._files.load(path)

    def cancel(self) -> None:
        """Stop the running worker after its current chunk of points."""
        self._runner.cancel()

    def undo(self) -> bool:
        """Put the points back as before the last edit (their matches
        follow); False when there is nothing to undo."""
        done = self._live.undo()
        self._update_buttons()
        return done

    def _update_buttons(self, *_: Any) -> None:
        """Buttons enabled only when they can act."""
        ready = all(
            picker.value is not None for picker in self._pickers.widgets
        )
        self.run_button.enabled = ready and self._runner.worker is None
        self.undo_button.enabled = self._live.can_undo


def _key(key: str) -> str:
    """napari's key name as a user reads it."""
    return key.replace("Control", "Ctrl").replace("-", "+")
