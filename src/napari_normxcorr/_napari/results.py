"""The results table and the selection: rows, points and matches select
each other, and a chosen row brings its point into view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .layers import pan_to, reconnect
from .table import ResultsTable

if TYPE_CHECKING:
    import napari
    from magicgui.widgets import ComboBox

    from .lifecycle import Lifecycle
    from .session import MatchSession


class ResultsView:
    """The results dock (made with the first result) and the selection.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the points are.
    session : MatchSession
        The result and its selection.
    life : Lifecycle
        Docks the table, and takes it away with the widget.
    points_picker : ComboBox
        The widget's points picker (imported points go there).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        session: MatchSession,
        life: Lifecycle,
        points_picker: ComboBox,
    ):
        self._viewer = viewer
        self._session = session
        self._life = life
        self._points = points_picker
        self.table: ResultsTable | None = None
        session.selected.connect(self._on_selected)

    def show_table(self, fill: bool = True) -> ResultsTable:
        """The results dock, docked at the bottom on first use.

        A new table shows the session's result, or with `fill` False,
        nothing until its `refresh` (docking it resizes and repaints the
        canvas, and filling 16 000 rows takes tens of ms: each on its own
        turn of the event loop, neither freezes the GUI long).
        """
        if self.table is None:
            self.table = ResultsTable(self._session)
            self.table.points_imported.connect(self._on_points_imported)
            self.table.row_chosen.connect(self._pan_to_point)
            self._life.add_results(self.table)
            if fill:
                self.table.refresh()
        return self.table

    def fill_table(self) -> None:
        """Show the session's result in the table (see `show_table`)."""
        if self.table is not None:
            self.table.refresh()

    def follow(self, points_layer: napari.layers.Points) -> None:
        """Points selected in `points_layer` select their rows."""
        reconnect(
            points_layer.selected_data.events.items_changed,
            self._on_points_picked,
        )

    def _on_points_picked(self, event: Any = None) -> None:
        result, inputs = self._session.result, self._session.inputs
        if result is None or inputs is None:
            return
        layer = inputs.points_layer
        selected = [i for i in layer.selected_data if i < len(result)]
        if selected:
            self._session.select(selected)

    def _on_selected(self, points: list[int]) -> None:
        # Selected rows (from the table or the matches) select the points.
        inputs = self._session.inputs
        if inputs is None or inputs.points_layer not in self._viewer.layers:
            return
        layer = inputs.points_layer
        wanted = {p for p in points if p < len(layer.data)}
        if set(layer.selected_data) != wanted:
            layer.selected_data = wanted

    def _pan_to_point(self, point: int) -> None:
        """A row chosen in the table: the view centres on its point."""
        world = self._session.world
        if self._session.result is not None and point < len(world):
            pan_to(self._viewer, world[point])

    def _on_points_imported(self, points: np.ndarray, name: str) -> None:
        layer = self._points.value
        if layer is None:
            layer = self._viewer.add_points(points, name=f"points from {name}")
            self._points.value = layer
        else:
            layer.data = points
