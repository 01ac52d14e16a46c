"""The tracking section's tables: one row per track, and the vertices of
the selected track, one row per frame.

Selecting a track's row selects its point in the session (as selecting a
vertex of ``<points> tracked`` does); the vertex table then lists that
point's vertices, and clicking one of them asks for its frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from .track_session import TrackSession

if TYPE_CHECKING:
    from qtpy.QtWidgets import QTableWidget

# The summary table's short headers in full.
_SUMMARY_TIPS = {
    "point": "The row of the points layer",
    "track": "Track segment (a point lost and found again has more)",
    "first": "First frame of the track",
    "last": "Last frame of the track",
    "n": "Vertices",
    "score": "Mean score of its vertices",
    "refr.": "References renewed along it",
    "moved": "Net displacement, first to last vertex (px)",
}
# Names of a frame's axes in the vertex table (the last ones).
_AXES = ("plane", "row", "col")


def _formatted(value: Any) -> str:
    """A table cell: integers as they are, other numbers to 2 places."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else ""
    if isinstance(value, str):
        return value
    if isinstance(value, np.integer | int):
        return str(int(value))
    return f"{float(value):.2f}" if np.isfinite(value) else "–"


def _read_only_table(
    columns: list[str], tips: dict[str, str] | None = None
) -> QTableWidget:
    """A table of whole-row single selection that the user cannot edit;
    `tips` explain the short headers."""
    from qtpy.QtWidgets import QAbstractItemView, QTableWidget

    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    for column, name in enumerate(columns):
        item = table.horizontalHeaderItem(column)
        if item is not None and tips and name in tips:
            item.setToolTip(tips[name])
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    header = table.verticalHeader()
    if header is not None:
        header.setVisible(False)
    table.setMinimumHeight(110)
    table.setMaximumHeight(180)
    table.setVisible(False)
    return table


def _fill(table: QTableWidget, columns: list[Any]) -> None:
    """Fill `table` with `columns` (each a sequence of cell values)."""
    from qtpy.QtWidgets import QTableWidgetItem

    table.setRowCount(len(columns[0]) if columns else 0)
    for column, values in enumerate(columns):
        for row, value in enumerate(values):
            table.setItem(row, column, QTableWidgetItem(_formatted(value)))
    table.resizeColumnsToContents()


def _select_row(table: QTableWidget, row: int | None) -> None:
    """Select `row` (None: nothing) without reporting it as the user's."""
    table.blockSignals(True)
    try:
        if row is None:
            table.clearSelection()
        else:
            table.selectRow(row)
            table.scrollToItem(table.item(row, 0))
    finally:
        table.blockSignals(False)
    # Signals were blocked: the view must repaint the new selection.
    viewport = table.viewport()
    if viewport is not None:
        viewport.update()


def _selected_row(table: QTableWidget) -> int | None:
    """The selected row, or None."""
    model = table.selectionModel()
    rows = model.selectedRows() if model is not None else []
    return rows[0].row() if rows else None


class TrackSummaries:
    """A small table with one row per track segment, kept in step with
    the session; selecting a row selects the track's point."""

    # Short headers: the dock is narrow (the tips say them in full).
    COLUMNS = (
        ("point", "point"),
        ("track", "track_id"),
        ("first", "first"),
        ("last", "last"),
        ("n", "length"),
        ("score", "mean_score"),
        ("refr.", "refreshes"),
        ("moved", "distance"),
    )

    def __init__(self, session: TrackSession):
        self._session = session
        self.native = _read_only_table(
            [c for c, _ in self.COLUMNS], _SUMMARY_TIPS
        )
        # The point of each row.
        self._points = np.empty(0, dtype=int)
        self.native.itemSelectionChanged.connect(self._on_picked)
        session.changed.connect(self._on_changed)
        session.selected.connect(self._on_selected)

    def _on_changed(self, points: list[int] | None = None) -> None:
        result = self._session.result
        if result is None:
            return
        summaries = result.summaries()
        self._points = np.asarray(summaries["point"], dtype=int)
        self.native.blockSignals(True)
        try:
            _fill(self.native, [summaries[key] for _, key in self.COLUMNS])
        finally:
            self.native.blockSignals(False)
        self.native.setVisible(True)
        self._on_selected(self._session.point)

    def _on_picked(self) -> None:
        row = _selected_row(self.native)
        if row is not None and row < len(self._points):
            self._session.select(int(self._points[row]))

    def _on_selected(self, point: int | None) -> None:
        """Select the point's first track, unless one of its is already."""
        row = _selected_row(self.native)
        if row is not None and row < len(self._points):
            if self._points[row] == point:
                return
        rows = np.flatnonzero(self._points == point)
        _select_row(self.native, int(rows[0]) if rows.size else None)


class TrackVertices:
    """The vertices of the selected track: one row per frame of its
    point (``TrackResult.to_table`` of that point), lost ones included.

    Attributes
    ----------
    native : QWidget
        A caption over the table.
    table : QTableWidget
        The vertices; its rows are the point's frames in order.

    Signals
    -------
    frame_picked : (t,)
        The user clicked the vertex of frame `t`.
    """

    frame_picked = Signal(int)

    def __init__(self, session: TrackSession):
        from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

        self._session = session
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.table = _read_only_table([])
        # A track has a row per frame: room for more of them.
        self.table.setMaximumHeight(260)
        self.native = QWidget()
        layout = QVBoxLayout(self.native)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.table)
        self.native.setVisible(False)
        # The frame of each row.
        self._frames = np.empty(0, dtype=int)
        self.table.itemSelectionChanged.connect(self._on_picked)
        session.changed.connect(self.refresh)
        session.selected.connect(self.refresh)

    def refresh(self, *args: Any) -> None:
        """List the selected point's vertices (hidden: no selection)."""
        result, point = self._session.result, self._session.point
        if result is None or point is None:
            self.native.setVisible(False)
            return
        table = result.to_table()
        mine = table["point"] == point
        keys = _vertex_keys(table)
        self.table.setColumnCount(len(keys))
        self.table.setHorizontalHeaderLabels([name for name, _ in keys])
        self._frames = np.asarray(table["t"][mine], dtype=int)
        self.table.blockSignals(True)
        try:
            _fill(self.table, [_shown(table, key)[mine] for _, key in keys])
        finally:
            self.table.blockSignals(False)
        ok = int(np.sum(table["status"][mine] == "ok"))
        self.caption.setText(
            f"Point {point}: {ok} of {mine.sum()} vertices ok. "
            "Click a vertex to go to its frame."
        )
        self.table.setVisible(True)
        self.native.setVisible(True)

    def show_frame(self, t: int) -> None:
        """Select the vertex of frame `t` (the viewer shows it)."""
        rows = np.flatnonzero(self._frames == t)
        _select_row(self.table, int(rows[0]) if rows.size else None)

    def _on_picked(self) -> None:
        row = _selected_row(self.table)
        if row is not None and row < len(self._frames):
            self.frame_picked.emit(int(self._frames[row]))


def _shown(table: dict[str, np.ndarray], key: str) -> np.ndarray:
    """Column `key` of `table` as the vertex table shows it: a lost
    vertex's track (-1) as a dash."""
    values = table[key]
    if key != "track_id":
        return values
    return np.array(["–" if v < 0 else str(v) for v in values], dtype=object)


def _vertex_keys(table: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """(header, column of `to_table`) of the vertex table: the frame
    first, then the track, the position and the verdict (not the point:
    the caption names it)."""
    positions = [key for key in table if key.startswith("position-")]
    names = _AXES[-len(positions) :] if len(positions) <= len(_AXES) else []
    axes = list(zip(names or positions, positions, strict=True))
    return [
        ("t", "t"),
        ("track", "track_id"),
        *axes,
        ("score", "score"),
        ("distinct.", "distinctiveness"),
        ("status", "status"),
        ("refreshed", "refreshed"),
    ]
