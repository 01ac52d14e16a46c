"""Results table dock: one row per point, in step with the session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..io._files import InputError, read_points
from ..matching._result import MatchResult
from .session import MatchSession

QUALITY = (
    "score",
    "peak ratio",
    "uncertainty",
    "motion gap",
    "consistency",
    "neighbours",
    "residual",
    "status",
)


class ResultsTable(QWidget):
    """Sortable table of the session's result.

    Selecting a row selects the point and shows its surface; selecting a
    point selects its row; "Delete point" removes the point and its match;
    CSV export writes napari's points columns (the points of interest) and
    the result columns, and import reads points of interest back.

    Signals
    -------
    points_imported : (points, name)
        The user imported points of interest (an (N, D) array) from the
        file called `name`.
    """

    points_imported = Signal(object, str)

    def __init__(self, session: MatchSession):
        super().__init__()
        self._session = session
        self.table = QTableWidget()
        self.table.setSelectionBehavior(
            QAbstractItemView.SelectionBehavior.SelectRows
        )
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.NoEditTriggers
        )
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self._on_rows_selected)
        buttons = QHBoxLayout()
        for text, slot in (
            ("Delete point", self.delete_selected),
            ("Export CSV…", self._export_dialog),
            ("Import points…", self._import_dialog),
        ):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, slot=slot: slot())
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._syncing = False
        session.changed.connect(self.refresh)
        session.selected.connect(self.select_points)

    # --- contents -----------------------------------------------------

    def refresh(self, points: list[int] | None = None) -> None:
        """Show the session's current result, one row per point.

        With `points`, only their rows are rewritten (a live edit), as long
        as the table still has one row per point.
        """
        result = self._session.result
        if result is None:
            self.table.setRowCount(0)
            return
        headers, columns = _columns(result)
        self._syncing = True
        self.table.setSortingEnabled(False)
        if points is None or self.table.rowCount() != len(result):
            self.table.clear()
            self.table.setColumnCount(len(headers))
            self.table.setHorizontalHeaderLabels(headers)
            self.table.setRowCount(len(result))
            points = list(range(len(result)))
            rows = points
        else:
            row_of = self._rows_by_point()
            rows = [row_of[p] for p in points]
        for c, values in enumerate(columns):
            for r, p in zip(rows, points):
                self.table.setItem(r, c, _item(values[p]))
        self.table.setSortingEnabled(True)
        self._syncing = False

    def row_of_point(self, point: int) -> int | None:
        """The table row showing `point`, or None (not matched yet)."""
        return self._rows_by_point().get(point)

    def _rows_by_point(self) -> dict[int, int]:
        return {
            self.point_of_row(row): row for row in range(self.table.rowCount())
        }

    def point_of_row(self, row: int) -> int:
        """The point index shown in table row `row` (whatever the sort)."""
        item = self.table.item(row, 0)
        assert item is not None  # every row has its point column
        return int(item.data(Qt.ItemDataRole.UserRole))

    def _selected_points(self) -> list[int]:
        rows = {i.row() for i in self.table.selectedItems()}
        return sorted({self.point_of_row(row) for row in rows})

    # --- selection ----------------------------------------------------

    def _on_rows_selected(self) -> None:
        if self._syncing:
            return
        points = self._selected_points()
        if not points:
            return
        self._syncing = True
        try:
            self._session.select(points)
            self._session.show(points[0])
        finally:
            self._syncing = False

    def select_points(self, points: list[int]) -> None:
        """Select the rows of `points` (from a selection in the viewer)."""
        if self._syncing:
            return
        self._syncing = True
        try:
            self.table.clearSelection()
            row_of = self._rows_by_point()
            for point in points:
                if point in row_of:  # not matched yet otherwise
                    self.table.selectRow(row_of[point])
        finally:
            self._syncing = False

    # --- actions ------------------------------------------------------

    def delete_selected(self) -> None:
        """Delete the selected rows' points (their matches follow)."""
        points = self._selected_points()
        inputs = self._session.inputs
        if not points or inputs is None:
            return
        layer = inputs.points_layer
        layer.selected_data = set(points)
        layer.remove_selected()

    def export_csv(self, path: str | Path) -> None:
        """napari's points CSV columns (the points of interest, in the
        points layer's data coordinates) followed by the result columns."""
        result, inputs = self._session.result, self._session.inputs
        if result is None or inputs is None:
            raise ValueError("there are no results to export yet")
        result.to_csv(path, positions=inputs.points_layer.data)

    def import_csv(self, path: str | Path) -> None:
        """Points of interest from a points CSV (see `points_imported`)."""
        path = Path(path)
        points, _ = read_points(path)
        self.points_imported.emit(points, path.name)

    def _export_dialog(self) -> None:
        if self._session.result is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export matches", "matches.csv", "CSV (*.csv)"
        )
        if path:
            self.export_csv(path)

    def _import_dialog(self) -> None:
        from napari.utils.notifications import show_warning

        path, _ = QFileDialog.getOpenFileName(
            self, "Import points", "", "CSV (*.csv)"
        )
        if path:
            try:
                self.import_csv(path)
            except InputError as error:
                show_warning(str(error))


def _columns(result: MatchResult) -> tuple[list[str], list[Any]]:
    """Headers and columns of the table: point, offsets, quality."""
    d = result.offset.shape[1]
    headers = ["point", *(f"offset-{a}" for a in range(d)), *QUALITY]
    columns = [
        np.arange(len(result)),
        *result.offset.T,
        result.score,
        result.peak_ratio,
        result.uncertainty,
        result.motion_gap,
        result.consistency,
        result.neighbour_residual,
        result.transform_residual,
        [str(s) for s in result.status],
    ]
    return headers, columns


def _item(value: Any) -> QTableWidgetItem:
    """A cell that sorts numbers as numbers; NaN shows empty."""
    item = QTableWidgetItem()
    if isinstance(value, str):
        item.setText(value)
    elif isinstance(value, (int, np.integer)):
        item.setData(Qt.ItemDataRole.DisplayRole, int(value))
        item.setData(Qt.ItemDataRole.UserRole, int(value))
    elif not np.isnan(value):  # an unbounded uncertainty shows inf
        item.setData(Qt.ItemDataRole.DisplayRole, round(float(value), 3))
    return item
