"""The results table: rows follow the result, selection goes both ways."""

import numpy as np
from qtpy.QtCore import Qt

from helpers import SHIFT, live_widget


def test_results_table_follows_results_and_selection(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    table = widget.table
    assert table.model.rowCount() == 3
    headers = table.headers
    # One index column, and the units in the headers.
    assert headers == [
        "point",
        "\u0394 row (px)",
        "\u0394 col (px)",
        "score",
        "peak ratio",
        "uncertainty (px)",
        "motion gap",
        "consistency (px)",
        "vs neighbours (px)",
        "vs transform (px)",
        "status",
    ]
    assert table.table.verticalHeader().isHidden()
    # Sorting by score keeps the link between rows and points.
    table.table.sortByColumn(3, Qt.SortOrder.AscendingOrder)
    points = sorted(table.point_of_row(r) for r in range(3))
    assert points == [0, 1, 2]
    # Row -> point: selects the point and shows its surface.
    table.table.selectRow(table.row_of_point(2))
    assert set(viewer.layers["pois"].selected_data) == {2}
    assert set(viewer.layers["pois matched"].selected_data) == {2}
    assert viewer.layers["pois NCC surface"].metadata["point"] == 2
    # Point -> row.
    viewer.layers["pois matched"].selected_data = {1}
    assert table.selected_points() == [1]
    # A live edit rewrites its point's row, wherever the sort put it.
    table.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert table.row_of_point(0) == 2
    data = viewer.layers["pois"].data.copy()
    data[0] = [-50.0, -50.0]
    viewer.layers["pois"].data = data
    widget.wait_until_done(30)
    column = headers.index("status")
    status = [table.text(r, column) for r in range(3)]
    assert status[table.row_of_point(0)] == "outside image"
    assert sorted(status) == ["ok", "ok", "outside image"]
    assert sorted(table.point_of_row(r) for r in range(3)) == [0, 1, 2]


def test_table_delete_removes_point_and_match(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    table = widget.table
    table.table.clearSelection()
    table.table.selectRow(table.row_of_point(1))
    table.delete_selected()
    widget.wait_until_done(30)
    assert len(viewer.layers["pois"].data) == 2
    assert len(viewer.layers["pois matched"].data) == 2
    assert table.model.rowCount() == 2
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data,
        viewer.layers["pois"].data + SHIFT,
        atol=1e-6,
    )


def test_table_csv_export_and_import(viewer_with_pair, qtbot, tmp_path):
    import csv

    viewer = viewer_with_pair
    widget = live_widget(viewer)
    path = tmp_path / "matches.csv"
    widget.table.export_csv(path)
    with open(path) as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0])[:3] == ["index", "axis-0", "axis-1"]
    assert {"matched-0", "offset-1", "score", "status"} <= set(rows[0])
    np.testing.assert_allclose(
        [[float(r["axis-0"]), float(r["axis-1"])] for r in rows],
        viewer.layers["pois"].data,
    )
    # Re-import into a fresh layer state: the points come back.
    original = viewer.layers["pois"].data.copy()
    viewer.layers["pois"].data = [[10.0, 10.0]]
    widget.table.import_csv(path)
    np.testing.assert_allclose(viewer.layers["pois"].data, original)
