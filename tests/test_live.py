"""Live mode: edits of the points re-match only what changed; undo."""

import numpy as np

from helpers import SHIFT, drag, live_widget


def test_live_moving_a_point_rematches_only_that_point(
    viewer_with_pair, qtbot, monkeypatch
):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    calls = []
    import napari_normxcorr._napari.jobs as jobs

    original = jobs.match_points

    def counting(template, image, points, **kwargs):
        calls.append(len(points))
        return original(template, image, points, **kwargs)

    monkeypatch.setattr(jobs, "match_points", counting)
    layer = viewer.layers["pois"]
    data = layer.data.copy()
    data[1] = [90.0, 50.0]
    layer.data = data
    widget.wait_until_done(30)
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
    widget = live_widget(viewer)
    layer = viewer.layers["pois"]
    layer.add([[120.0, 60.0]])
    widget.wait_until_done(30)
    matched = viewer.layers["pois matched"]
    assert len(matched.data) == 4
    np.testing.assert_allclose(matched.data[3], [124.0, 54.0], atol=1e-6)
    assert matched.features["status"].iloc[3] == "ok"
    layer.selected_data = {0}
    layer.remove_selected()
    widget.wait_until_done(30)
    assert len(matched.data) == 3
    assert len(matched.features) == 3
    np.testing.assert_allclose(matched.data, layer.data + SHIFT, atol=1e-6)
    assert len(viewer.layers["pois displacement"].data) == 3


def test_live_burst_of_moves_shows_the_last_position(viewer_with_pair, qtbot):
    """A drag fires many events: the final match is for the final place."""
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    layer = viewer.layers["pois"]
    for step in range(8):
        data = layer.data.copy()
        data[0] = [60.0 + step, 70.0 + step]
        layer.data = data
    widget.wait_until_done(30)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data[0],
        [67.0 + SHIFT[0], 77.0 + SHIFT[1]],
        atol=1e-6,
    )
    np.testing.assert_allclose(widget.result.points[0], [67.0, 77.0])


def test_live_off_leaves_results_alone(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    widget.live.value = False
    before = viewer.layers["pois matched"].data.copy()
    layer = viewer.layers["pois"]
    data = layer.data.copy()
    data[0] = [30.0, 30.0]
    layer.data = data
    qtbot.wait(200)
    np.testing.assert_array_equal(viewer.layers["pois matched"].data, before)


def test_undo_restores_the_point_and_its_match(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    layer = viewer.layers["pois"]
    original = layer.data.copy()
    data = original.copy()
    data[0] = [30.0, 40.0]
    layer.data = data
    widget.wait_until_done(30)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data[0], [34.0, 34.0], atol=1e-6
    )
    widget.undo_button.clicked.emit()
    widget.wait_until_done(30)
    np.testing.assert_allclose(layer.data, original)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data[0], original[0] + SHIFT, atol=1e-6
    )


def test_undo_takes_back_a_whole_drag_and_one_edit_at_a_time(
    viewer_with_pair, qtbot
):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
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
    widget.wait_until_done(30)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, original + SHIFT, atol=1e-6
    )
