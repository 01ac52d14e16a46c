"""The dock widget in a real napari viewer (runs under Xvfb)."""

import os

import numpy as np
import pytest
from scipy import ndimage

if not os.environ.get("DISPLAY"):
    pytest.skip(
        "needs a display: run the tests with `make test` (uses Xvfb)",
        allow_module_level=True,
    )

napari = pytest.importorskip("napari")

from napari_normxcorr import MatchWidget, match_points  # noqa: E402

SHIFT = (4, -6)


def texture(shape, seed=0):
    rng = np.random.default_rng(seed)
    values = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return values / values.std()


@pytest.fixture
def viewer_with_pair(make_napari_viewer):
    viewer = make_napari_viewer()
    base = texture((160, 180))
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    viewer.add_points([[60.0, 70.0], [100.5, 120.25], [40, 140]], name="pois")
    return viewer


def open_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-normxcorr", "Match points (NCC)"
    )
    return widget


def run_and_wait(qtbot, widget):
    widget.result = None
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(
        lambda: widget.result is not None and widget._worker is None,
        timeout=30_000,
    )
    return worker


def choose(widget, template, image, points):
    widget.template_layer.value = template
    widget.image_layer.value = image
    widget.points_layer.value = points


def pair_widget(viewer):
    """The widget, set to match 'pois' from 'before' into 'after'."""
    widget = open_widget(viewer)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    return widget


def test_widget_opens_from_manifest_and_matches(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = open_widget(viewer)
    assert isinstance(widget, MatchWidget)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    before = {ly.name: np.array(ly.data, copy=True) for ly in layers}
    layers.selection.active = layers["pois"]
    run_and_wait(qtbot, widget)
    # The outputs did not take over the layer the user clicks points on.
    assert layers.selection.active is layers["pois"]

    matched = layers["pois matched"]
    points = layers["pois"].data
    np.testing.assert_allclose(matched.data, points + SHIFT, atol=1e-6)
    features = matched.features
    np.testing.assert_allclose(features["score"], 1.0, atol=1e-6)
    np.testing.assert_allclose(features["offset-0"], SHIFT[0], atol=1e-6)
    np.testing.assert_allclose(features["offset-1"], SHIFT[1], atol=1e-6)
    assert list(features["status"]) == ["ok"] * 3
    assert {"distinctiveness", "consistency", "second_score"} <= set(features)

    vectors = layers["pois displacement"].data
    np.testing.assert_allclose(vectors[:, 0], points)
    np.testing.assert_allclose(vectors[:, 1], [SHIFT] * 3, atol=1e-6)

    surface = layers["pois NCC surface"]
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    peak_world = surface.data_to_world(peak)
    np.testing.assert_allclose(peak_world, matched.data[0], atol=1e-6)
    assert tuple(surface.contrast_limits) == (-1.0, 1.0)

    # Input layers are untouched.
    for name, data in before.items():
        np.testing.assert_array_equal(layers[name].data, data)


def test_rerun_updates_instead_of_duplicating(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    run_and_wait(qtbot, widget)
    count = len(viewer.layers)
    viewer.layers["pois"].data = [[80.0, 90.0]]
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == count
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, [[84.0, 84.0]], atol=1e-6
    )
    assert len(viewer.layers["pois matched"].features) == 1


def test_selecting_a_match_shows_its_surface(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    run_and_wait(qtbot, widget)
    matched = viewer.layers["pois matched"]
    matched.selected_data = {2}
    surface = viewer.layers["pois NCC surface"]
    assert surface.metadata["point"] == 2
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), matched.data[2], atol=1e-6
    )


def test_scale_and_translate_are_respected(make_napari_viewer, qtbot):
    """Template with scale (2, 2), target with translate (10, -5)."""
    viewer = make_napari_viewer()
    base = texture((150, 150), seed=3)
    moved = np.roll(base, SHIFT, axis=(0, 1))
    viewer.add_image(base, name="before", scale=(2, 2))
    viewer.add_image(moved, name="after", translate=(10, -5))
    # Points clicked on the template: world = 2 * template pixel.
    template_pixels = np.array([[30.0, 40.0], [45.0, 30.0]])
    viewer.add_points(template_pixels * 2, name="pois")
    widget = pair_widget(viewer)
    widget.search_radius.value = (120, 120)
    run_and_wait(qtbot, widget)
    # The same pixel content sits in the target at pixel + SHIFT, whose
    # world position is pixel + SHIFT + (10, -5).
    expected_world = template_pixels + SHIFT + np.array([10, -5])
    direct = match_points(
        base,
        moved,
        template_pixels,
        template_radius=15,
        search_radius=120,
        image_points=template_pixels * 2 - [10, -5],
    )
    np.testing.assert_allclose(
        direct.matched + [10, -5], expected_world, atol=1e-6
    )
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, expected_world, atol=1e-6
    )
    surface = viewer.layers["pois NCC surface"]
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), expected_world[0], atol=1e-6
    )


def test_time_lapse_points_match_in_their_frame(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    frames = np.stack([texture((100, 110), seed=s) for s in range(3)])
    moved = np.roll(frames, (2, 3), axis=(1, 2))
    viewer.add_image(frames, name="t0")
    viewer.add_image(moved, name="t1")
    viewer.add_points([[0, 50, 50], [2, 40.0, 60.0]], name="pois")
    widget = open_widget(viewer)
    choose(
        widget, viewer.layers["t0"], viewer.layers["t1"], viewer.layers["pois"]
    )
    run_and_wait(qtbot, widget)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data,
        [[0, 52, 53], [2, 42, 63]],
        atol=1e-6,
    )
    surface = viewer.layers["pois NCC surface"]
    assert surface.ndim == 3
    assert surface.data.shape[0] == 1
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), [0, 52, 53], atol=1e-6
    )


def test_rgb_images_are_matched_in_luminance(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    grey = texture((120, 120), seed=4)
    rgb = np.clip(
        np.stack([grey, 0.5 * grey, -grey], axis=-1) * 40 + 128, 0, 255
    ).astype(np.uint8)
    viewer.add_image(rgb, name="before", rgb=True)
    viewer.add_image(np.roll(rgb, SHIFT, axis=(0, 1)), name="after", rgb=True)
    viewer.add_points([[60.0, 60.0]], name="pois")
    widget = pair_widget(viewer)
    run_and_wait(qtbot, widget)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, [[64.0, 54.0]], atol=1e-6
    )


def test_cancel_stops_without_adding_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    base = texture((600, 600), seed=5)
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    rng = np.random.default_rng(0)
    viewer.add_points(rng.uniform(50, 550, size=(3000, 2)), name="pois")
    widget = pair_widget(viewer)
    count = len(viewer.layers)
    worker = widget.run()
    aborted = []
    worker.aborted.connect(lambda: aborted.append(True))
    widget.cancel()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert aborted
    assert widget.result is None
    assert len(viewer.layers) == count


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_points_layer", "Choose a Points layer"),
        ("empty_points", "has no points"),
        ("outside", "outside the template image"),
        ("dimensions", "incompatible dimensionality"),
        ("radius", "too large"),
        ("search_smaller", "must be at least the template radius"),
    ],
)
def test_bad_input_notifies_and_changes_nothing(
    make_napari_viewer, qtbot, monkeypatch, setup, message
):
    viewer = make_napari_viewer()
    base = texture((80, 90))
    viewer.add_image(base, name="before")
    viewer.add_image(base, name="after")
    if setup != "no_points_layer":
        data = {
            "empty_points": np.empty((0, 2)),
            "outside": [[500.0, 500.0], [-40.0, 3.0]],
            "dimensions": [[0, 10.0, 10.0]],
        }.get(setup, [[40.0, 40.0]])
        viewer.add_points(
            data, name="pois", ndim=np.shape(data)[1] if np.size(data) else 2
        )
    widget = open_widget(viewer)
    widget.template_layer.value = viewer.layers["before"]
    widget.image_layer.value = viewer.layers["after"]
    if setup == "radius":
        widget.template_radius.value = 60
    if setup == "search_smaller":
        widget.search_radius.value = (5, 5)
    warnings = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", warnings.append
    )
    count = len(viewer.layers)
    assert widget.run() is None
    assert len(warnings) == 1
    assert message in warnings[0]
    assert len(viewer.layers) == count


def test_worker_errors_become_notifications(
    viewer_with_pair, qtbot, monkeypatch
):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("napari_normxcorr._widget.match_points", broken)
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=30_000)
    assert errors == ["Matching failed: disk on fire"]
    assert "pois matched" not in viewer.layers


def test_pickers_follow_layers(viewer_with_pair):
    viewer = viewer_with_pair
    widget = open_widget(viewer)
    names = [c for c in widget.image_layer.choices]
    assert [ly.name for ly in names] == ["before", "after"]
    viewer.add_image(np.zeros((10, 10)), name="third")
    assert "third" in [ly.name for ly in widget.image_layer.choices]
    viewer.layers["third"].name = "renamed"
    combo = widget.image_layer.native
    shown = [combo.itemText(i) for i in range(combo.count())]
    assert shown == ["before", "after", "renamed"]
    viewer.layers.remove("renamed")
    assert len(widget.image_layer.choices) == 2
    # Defaults: two different images and the points layer.
    assert widget.template_layer.value is not widget.image_layer.value
    assert widget.points_layer.value is viewer.layers["pois"]


def live_widget(viewer, qtbot):
    widget = pair_widget(viewer)
    run_and_wait(qtbot, widget)
    assert widget.live.value, "live mode turns on after the first run"
    return widget


def wait_live(qtbot, widget, updates):
    qtbot.waitUntil(
        lambda: (
            widget._live.updates >= updates
            and widget._live.worker is None
            and not widget._live.pending
        ),
        timeout=30_000,
    )


def test_live_moving_a_point_rematches_only_that_point(
    viewer_with_pair, qtbot, monkeypatch
):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    calls = []
    import napari_normxcorr._live as live

    original = live.match_points

    def counting(template, image, points, **kwargs):
        calls.append(len(points))
        return original(template, image, points, **kwargs)

    monkeypatch.setattr(live, "match_points", counting)
    layer = viewer.layers["pois"]
    data = layer.data.copy()
    data[1] = [90.0, 50.0]
    layer.data = data
    wait_live(qtbot, widget, 1)
    assert calls == [1]
    matched = viewer.layers["pois matched"]
    np.testing.assert_allclose(matched.data[1], [94.0, 44.0], atol=1e-6)
    np.testing.assert_allclose(
        matched.data[[0, 2]], data[[0, 2]] + SHIFT, atol=1e-6
    )
    vectors = viewer.layers["pois displacement"]
    np.testing.assert_allclose(vectors.data[1, 0], [90.0, 50.0])
    surface = viewer.layers["pois NCC surface"]
    assert surface.metadata["point"] == 1
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), [94.0, 44.0], atol=1e-6
    )
    # The layers are updated in place: what napari slices for display (and
    # draws) follows too.
    np.testing.assert_allclose(matched._view_data, matched.data)
    np.testing.assert_allclose(vectors._view_data, vectors.data)
    np.testing.assert_allclose(surface._slice.image.view, surface.data)


def test_live_adding_and_deleting_points(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    layer = viewer.layers["pois"]
    layer.add([[120.0, 60.0]])
    wait_live(qtbot, widget, 1)
    matched = viewer.layers["pois matched"]
    assert len(matched.data) == 4
    np.testing.assert_allclose(matched.data[3], [124.0, 54.0], atol=1e-6)
    assert matched.features["status"].iloc[3] == "ok"
    layer.selected_data = {0}
    layer.remove_selected()
    wait_live(qtbot, widget, 2)
    assert len(matched.data) == 3
    assert len(matched.features) == 3
    np.testing.assert_allclose(matched.data, layer.data + SHIFT, atol=1e-6)
    assert len(viewer.layers["pois displacement"].data) == 3


def test_live_burst_of_moves_shows_the_last_position(viewer_with_pair, qtbot):
    """A drag fires many events: the final match is for the final place."""
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    layer = viewer.layers["pois"]
    for step in range(8):
        data = layer.data.copy()
        data[0] = [60.0 + step, 70.0 + step]
        layer.data = data
    qtbot.waitUntil(
        lambda: widget._live.worker is None and not widget._live.pending,
        timeout=30_000,
    )
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data[0],
        [67.0 + SHIFT[0], 77.0 + SHIFT[1]],
        atol=1e-6,
    )
    np.testing.assert_allclose(widget.result.points[0], [67.0, 77.0])


def test_live_off_leaves_results_alone(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    widget.live.value = False
    before = viewer.layers["pois matched"].data.copy()
    layer = viewer.layers["pois"]
    data = layer.data.copy()
    data[0] = [30.0, 30.0]
    layer.data = data
    qtbot.wait(200)
    np.testing.assert_array_equal(viewer.layers["pois matched"].data, before)


def test_results_table_follows_results_and_selection(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    table = widget.table
    assert table.table.rowCount() == 3
    headers = [
        table.table.horizontalHeaderItem(c).text()
        for c in range(table.table.columnCount())
    ]
    assert headers == [
        "point",
        "offset-0",
        "offset-1",
        "score",
        "distinctiveness",
        "consistency",
        "status",
    ]
    # Sorting by score keeps the link between rows and points.
    table.table.sortItems(3)
    points = sorted(table.point_of_row(r) for r in range(3))
    assert points == [0, 1, 2]
    # Row -> point: selects the point and shows its surface.
    table.table.selectRow(table.row_of_point(2))
    assert set(viewer.layers["pois"].selected_data) == {2}
    assert set(viewer.layers["pois matched"].selected_data) == {2}
    assert viewer.layers["pois NCC surface"].metadata["point"] == 2
    # Point -> row.
    viewer.layers["pois matched"].selected_data = {1}
    selected = {
        table.point_of_row(i.row()) for i in table.table.selectedItems()
    }
    assert selected == {1}
    # A live edit rewrites its point's row, wherever the sort put it.
    from qtpy.QtCore import Qt

    table.table.sortItems(0, Qt.SortOrder.DescendingOrder)
    assert table.row_of_point(0) == 2
    data = viewer.layers["pois"].data.copy()
    data[0] = [-50.0, -50.0]
    viewer.layers["pois"].data = data
    wait_live(qtbot, widget, 1)
    status = [table.table.item(r, 6).text() for r in range(3)]
    assert status[table.row_of_point(0)] == "outside image"
    assert sorted(status) == ["ok", "ok", "outside image"]
    assert sorted(table.point_of_row(r) for r in range(3)) == [0, 1, 2]


def test_table_delete_removes_point_and_match(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    table = widget.table
    table.table.clearSelection()
    table.table.selectRow(table.row_of_point(1))
    table.delete_selected()
    wait_live(qtbot, widget, 1)
    assert len(viewer.layers["pois"].data) == 2
    assert len(viewer.layers["pois matched"].data) == 2
    assert table.table.rowCount() == 2
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data,
        viewer.layers["pois"].data + SHIFT,
        atol=1e-6,
    )


def test_table_csv_export_and_import(viewer_with_pair, qtbot, tmp_path):
    import csv

    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
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


def test_undo_restores_the_point_and_its_match(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    layer = viewer.layers["pois"]
    original = layer.data.copy()
    data = original.copy()
    data[0] = [30.0, 40.0]
    layer.data = data
    wait_live(qtbot, widget, 1)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data[0], [34.0, 34.0], atol=1e-6
    )
    widget.undo_button.clicked.emit()
    wait_live(qtbot, widget, 2)
    np.testing.assert_allclose(layer.data, original)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data[0], original[0] + SHIFT, atol=1e-6
    )


def test_peaks_marked_and_height_field(viewer_with_pair, qtbot):
    from napari_normxcorr._match import second_peak

    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    peaks = viewer.layers["pois peaks"]
    assert list(peaks.features["peak"]) == ["best", "second"]
    np.testing.assert_allclose(
        peaks.data[0], viewer.layers["pois matched"].data[0], atol=1e-6
    )
    surface = widget.result.surface(0)
    index, value = second_peak(surface.values)
    np.testing.assert_allclose(peaks.data[1], surface.origin + index)
    assert value < surface.values.max()
    widget.height_field.value = True
    mesh = viewer.layers["pois NCC height field"]
    vertices, faces, values = mesh.data
    assert vertices.shape == (surface.values.size, 3)
    top = np.argmax(values)
    np.testing.assert_allclose(
        vertices[top, 1:], viewer.layers["pois matched"].data[0], atol=1e-6
    )
    rows, cols = surface.values.shape
    assert faces.shape == (2 * (rows - 1) * (cols - 1), 3)


def test_result_after_the_points_layer_is_gone_is_dropped(
    viewer_with_pair, qtbot
):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    layers = viewer.layers
    worker = widget.run()
    # The worker's result is delivered by the event loop, so after this.
    layers.remove("pois")
    qtbot.waitUntil(lambda: widget._worker is None, timeout=30_000)
    assert worker is not None
    assert widget.result is None
    assert "pois matched" not in layers


def drag(layer, index, position):
    """What napari does for one step of dragging point `index`."""
    layer.data[index] = position
    layer.refresh()
    layer.events.data(
        value=layer.data,
        action="changed",
        data_indices=(index,),
        vertex_indices=((),),
    )


def test_undo_takes_back_a_whole_drag_and_one_edit_at_a_time(
    viewer_with_pair, qtbot
):
    viewer = viewer_with_pair
    widget = live_widget(viewer, qtbot)
    layer = viewer.layers["pois"]
    original = layer.data.copy()
    for step in range(1, 6):  # one drag of point 0
        drag(layer, 0, original[0] + step)
    drag(layer, 1, original[1] + 3)  # then another point
    after_drag = original.copy()
    after_drag[0] += 5
    widget.undo_button.clicked.emit()
    np.testing.assert_allclose(layer.data, after_drag)
    widget.undo_button.clicked.emit()
    np.testing.assert_allclose(layer.data, original)
    wait_live(qtbot, widget, 1)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, original + SHIFT, atol=1e-6
    )


def test_search_radius_per_axis(viewer_with_pair, qtbot):
    widget = pair_widget(viewer_with_pair)
    widget.template_radius.value = 10
    # The shift is (4, -6): room for 5 rows and 7 cols finds it ...
    widget.search_radius.value = (15, 17)
    run_and_wait(qtbot, widget)
    assert list(widget.result.status) == ["ok"] * 3
    np.testing.assert_allclose(widget.result.offset, [SHIFT] * 3, atol=1e-6)
    assert widget.result.surface(0).values.shape == (11, 15)
    # ... room for 3 rows does not: the best place is on the border.
    widget.search_radius.value = (13, 17)
    run_and_wait(qtbot, widget)
    assert widget.result.surface(0).values.shape == (7, 15)
    assert set(widget.result.status) == {"peak on search border"}


def test_output_images_own_their_data(make_napari_viewer):
    from napari_normxcorr._layers import set_or_add

    viewer = make_napari_viewer()
    first, second = np.zeros((3, 4)), np.ones((3, 4))
    kwargs = dict(update=("affine",), affine=np.eye(3))
    layer = set_or_add(viewer, "surface", "image", first, **kwargs)
    assert set_or_add(viewer, "surface", "image", second, **kwargs) is layer
    # The update wrote into the layer's own copy, never into `first` (a
    # kept surface of another point, in the widget).
    np.testing.assert_array_equal(layer.data, second)
    np.testing.assert_array_equal(first, 0.0)


@pytest.mark.parametrize(
    ("sample", "layers"),
    [
        ("stereo", ("left", "right", "stereo points")),
        ("deformed", ("before", "after (deformed)", "grid points")),
        ("drifting", ("frames t", "frames t+1", "tracked points")),
    ],
)
def test_samples_open_with_the_right_layers_picked(
    make_napari_viewer, sample, layers
):
    if sample == "stereo":
        pytest.importorskip("skimage")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", sample)
    widget = open_widget(viewer)
    picked = (
        widget.template_layer.value,
        widget.image_layer.value,
        widget.points_layer.value,
    )
    assert tuple(layer.name for layer in picked) == layers
