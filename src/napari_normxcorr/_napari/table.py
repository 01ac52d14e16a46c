"""Results table dock: one row per point, in step with the session.

A model over the result's columns (no item per cell), sorted by numpy:
16 000 rows show at once, and a live edit rewrites its rows only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal
from qtpy.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    Qt,
)
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..io._files import InputError, read_points
from ..matching._result import MatchResult
from .session import MatchSession

QUALITY = (
    "score",
    "peak ratio",
    "uncertainty (px)",
    "motion gap",
    "consistency (px)",
    "vs neighbours (px)",
    "vs transform (px)",
    "status",
)
_AXES = {2: ("row", "col"), 3: ("z", "row", "col")}
_TIPS = {
    "point": "Row of the point in its Points layer",
    "score": "NCC of the best match (1: identical patches)",
    "peak ratio": "(1 - second peak) / (1 - score): how far the best "
    "match stands out",
    "uncertainty (px)": "Largest standard deviation of the match",
    "motion gap": "How much better part of the template scores elsewhere",
    "consistency (px)": "Distance of matching back from the point",
    "vs neighbours (px)": "How far the displacement is from its "
    "neighbours' (the 'outlier' test)",
    "vs transform (px)": "Distance of the match from the fitted transform",
    "status": "The verdict; the legend above gives its colour",
}
_DISPLAY = Qt.ItemDataRole.DisplayRole


class _ResultModel(QAbstractTableModel):
    """The result's columns, one row per point, sorted by numpy (a sort
    through Qt asks for every cell: seconds for 16 000 rows)."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self._columns: list[Any] = []
        # Table row -> point, and point -> table row.
        self.order = np.arange(0)
        self.row_of = np.arange(0)
        self._sort: tuple[int, Any] | None = None

    def show(self, result: MatchResult | None) -> None:
        """Every row anew (another result, or rows added or removed)."""
        self.beginResetModel()
        self.headers, self._columns = _columns(result)
        count = 0 if result is None else len(result)
        self.order = self.row_of = np.arange(count)
        if self._sort is not None and self._columns:
            self._arrange(*self._sort)
        self.endResetModel()

    def rewrite(self, result: MatchResult, points: list[int]) -> None:
        """The rows of `points` changed (a live edit)."""
        self.headers, self._columns = _columns(result)
        last = len(self.headers) - 1
        for point in points:
            row = int(self.row_of[point])
            self.dataChanged.emit(self.index(row, 0), self.index(row, last))

    def rowCount(self, parent: Any = None) -> int:
        return (
            0 if parent is not None and parent.isValid() else len(self.order)
        )

    def columnCount(self, parent: Any = None) -> int:
        valid = parent is not None and parent.isValid()
        return 0 if valid else len(self.headers)

    def data(self, index: QModelIndex, role: int = _DISPLAY) -> Any:
        if not index.isValid() or role != _DISPLAY:
            return None
        value = self._columns[index.column()][self.order[index.row()]]
        if isinstance(value, str):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        # NaN shows empty; an unbounded uncertainty shows inf; three
        # decimals always (0.9996 is not a perfect 1).
        value = float(value)
        return None if np.isnan(value) else f"{value:.3f}"

    def headerData(
        self, section: int, orientation: Any, role: int = _DISPLAY
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        name = self.headers[section]
        if role == _DISPLAY:
            return name
        if role == Qt.ItemDataRole.ToolTipRole:
            return _TIPS.get(name, "Displacement of the match, in pixels")
        return None

    def sort(self, column: int, order: Any = None) -> None:
        """Sort by `column` (Qt's sort order), NaN first."""
        order = Qt.SortOrder.AscendingOrder if order is None else order
        self._sort = (column, order)
        if not self._columns:
            return
        self.layoutAboutToBeChanged.emit()
        self._arrange(column, order)
        self.layoutChanged.emit()

    def _arrange(self, column: int, order: Any) -> None:
        values = self._columns[column]
        if isinstance(values, list):
            keys = np.asarray(values, dtype=object).astype(str)
        else:
            keys = np.asarray(values, dtype=float)
            keys = np.where(np.isnan(keys), -np.inf, keys)
        ranked = np.argsort(keys, kind="stable")
        if order == Qt.SortOrder.DescendingOrder:
            ranked = ranked[::-1]
        self.order = ranked
        self.row_of = np.empty_like(ranked)
        self.row_of[ranked] = np.arange(len(ranked))


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
    row_chosen : (point,)
        The user selected a row: its (first) point, to go to.
    """

    points_imported = Signal(object, str)
    row_chosen = Signal(int)

    def __init__(self, session: MatchSession):
        super().__init__()
        self._session = session
        self.model = _ResultModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(
            QAbstractItemView.SelectionBehavior.SelectRows
        )
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.NoEditTriggers
        )
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        header, index = (
            self.table.horizontalHeader(),
            self.table.verticalHeader(),
        )
        assert header is not None and index is not None  # a table has both
        header.setResizeContentsPrecision(200)
        # The point column is the index: no second one.
        index.hide()
        self._selection().selectionChanged.connect(self._on_rows_selected)
        buttons = QHBoxLayout()
        for text, slot, tip in (
            (
                "Delete point",
                self.delete_selected,
                "Delete the selected points and their matches",
            ),
            (
                "Export CSV…",
                self._export_dialog,
                "Write the points and every result column to a CSV file",
            ),
            (
                "Import points…",
                self._import_dialog,
                "Read points of interest from a CSV file",
            ),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
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
        self._syncing = True
        try:
            if (
                result is None
                or points is None
                or self.model.rowCount() != len(result)
            ):
                columns = self.model.columnCount()
                self.model.show(result)
                # Fitted to the contents when the columns change only
                # (it reads 200 rows: tens of ms).
                if self.model.columnCount() != columns:
                    self.table.resizeColumnsToContents()
            else:
                self.model.rewrite(result, points)
        finally:
            self._syncing = False

    @property
    def headers(self) -> list[str]:
        """The column titles."""
        return list(self.model.headers)

    def text(self, row: int, column: int) -> str:
        """What table row `row` shows in `column` (as sorted)."""
        value = self.model.index(row, column).data(_DISPLAY)
        return "" if value is None else str(value)

    def row_of_point(self, point: int) -> int | None:
        """The table row showing `point`, or None (not matched yet)."""
        if not 0 <= point < self.model.rowCount():
            return None
        return int(self.model.row_of[point])

    def point_of_row(self, row: int) -> int:
        """The point index shown in table row `row` (whatever the sort)."""
        return int(self.model.order[row])

    def _selection(self) -> QItemSelectionModel:
        selection = self.table.selectionModel()
        assert selection is not None  # the view has its model
        return selection

    def selected_points(self) -> list[int]:
        """The points of the selected rows."""
        rows = self._selection().selectedRows()
        return sorted({self.point_of_row(index.row()) for index in rows})

    # --- selection ----------------------------------------------------

    def _on_rows_selected(self, *_: Any) -> None:
        if self._syncing:
            return
        points = self.selected_points()
        if not points:
            return
        self._syncing = True
        try:
            self._session.select(points)
            self._session.show(points[0])
        finally:
            self._syncing = False
        self.row_chosen.emit(points[0])

    def select_points(self, points: list[int]) -> None:
        """Select the rows of `points` (from a selection in the viewer)."""
        if self._syncing:
            return
        self._syncing = True
        try:
            selection = QItemSelection()
            last = self.model.columnCount() - 1
            for point in points:
                row = self.row_of_point(point)
                if row is not None:  # not matched yet otherwise
                    selection.select(
                        self.model.index(row, 0), self.model.index(row, last)
                    )
            self._selection().select(
                selection,
                QItemSelectionModel.SelectionFlag.ClearAndSelect,
            )
        finally:
            self._syncing = False

    # --- actions ------------------------------------------------------

    def delete_selected(self) -> None:
        """Delete the selected rows' points (their matches follow)."""
        points = self.selected_points()
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


def _columns(result: MatchResult | None) -> tuple[list[str], list[Any]]:
    """Headers and columns of the table: point, offsets, quality."""
    if result is None:
        return [], []
    d = result.offset.shape[1]
    names = _AXES.get(d, tuple(f"axis {a}" for a in range(d)))
    headers = ["point", *(f"\u0394 {name} (px)" for name in names), *QUALITY]
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
