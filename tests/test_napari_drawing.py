"""Drawing a run's outputs in steps: new layers added hidden and shown on a
later turn, empty layers filled, then restyled and shown, on two turns."""

import numpy as np

from helpers import live_widget, pair_widget, run_and_wait

OUTPUTS = ("pois matched", "pois displacement", "pois NCC surface")


def later_steps():
    """A `later` for set_or_add that keeps its steps, and runs them."""
    steps = []

    def run():
        while steps:
            steps.pop(0)()

    return steps.append, run


def test_a_new_layer_is_shown_on_a_later_turn(make_napari_viewer):
    from napari_normxcorr._napari.layers import set_or_add

    viewer = make_napari_viewer()
    later, run = later_steps()
    layer = set_or_add(viewer, "m", "points", np.zeros((2, 2)), later=later)
    assert not layer.visible
    run()
    assert layer.visible


def test_an_empty_layer_is_restyled_and_shown_on_a_later_turn(
    make_napari_viewer,
):
    """Its data at once, its colours with its showing; extent too."""
    from napari_normxcorr._napari.layers import set_or_add

    viewer = make_napari_viewer()
    update = dict(update=("face_color",))
    layer = set_or_add(viewer, "m", "points", np.empty((0, 2)), **update)
    later, run = later_steps()
    points = np.array([[10.0, 20.0], [300.0, 400.0]])
    red = np.array([[1.0, 0, 0, 1], [1, 0, 0, 1]])
    set_or_add(
        viewer, "m", "points", points, later=later, face_color=red, **update
    )
    assert not layer.visible
    np.testing.assert_array_equal(layer.data, points)
    run()
    assert layer.visible
    np.testing.assert_array_equal(layer.face_color, red)
    np.testing.assert_allclose(layer.extent.data, [[10, 20], [300, 400]])


def test_an_update_meanwhile_wins_over_the_left_restyling(
    make_napari_viewer,
):
    """The step left by a fill does nothing once a newer update restyled
    and showed the layer (no stale colours)."""
    from napari_normxcorr._napari.layers import set_or_add

    viewer = make_napari_viewer()
    update = dict(update=("face_color",))
    layer = set_or_add(viewer, "m", "points", np.empty((0, 2)), **update)
    later, run = later_steps()
    points = np.array([[10.0, 20.0], [30.0, 40.0]])
    red, blue = np.eye(4)[[0, 0]], np.eye(4)[[2, 2]]
    red[:, 3] = blue[:, 3] = 1
    set_or_add(
        viewer, "m", "points", points, later=later, face_color=red, **update
    )
    set_or_add(viewer, "m", "points", points + 1, face_color=blue, **update)
    assert layer.visible
    run()
    np.testing.assert_array_equal(layer.face_color, blue)
    np.testing.assert_array_equal(layer.data, points + 1)


def test_a_layer_the_user_hid_stays_hidden(make_napari_viewer):
    """A layer the user hid stays hidden through updates of any shape."""
    from napari_normxcorr._napari.layers import set_or_add

    viewer = make_napari_viewer()
    layer = set_or_add(viewer, "m", "points", np.zeros((2, 2)))
    set_or_add(viewer, "m", "points", np.ones((3, 2)))
    assert layer.visible and len(layer.data) == 3
    layer.visible = False
    set_or_add(viewer, "m", "points", np.full((4, 2), 50.0))
    assert not layer.visible and len(layer.data) == 4


def test_a_run_shows_every_output_and_the_table(viewer_with_pair, qtbot):
    """Added hidden and filled on several turns, every output is visible
    and filled once the run is done."""
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    for name in (*OUTPUTS, "pois peaks"):
        assert viewer.layers[name].visible, name
    assert len(viewer.layers["pois matched"].data) == 3
    assert len(viewer.layers["pois matched"].features) == 3
    assert widget.table is not None and widget.table.model.rowCount() == 3


def test_outputs_the_user_hid_stay_hidden_on_a_new_run(
    viewer_with_pair, qtbot
):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    run_and_wait(widget)
    for name in OUTPUTS:
        viewer.layers[name].visible = False
    viewer.layers["pois"].add([[80.0, 90.0]])
    widget.wait_until_done()
    run_and_wait(widget)
    assert len(viewer.layers["pois matched"].data) == 4
    for name in OUTPUTS:
        assert not viewer.layers[name].visible, name
