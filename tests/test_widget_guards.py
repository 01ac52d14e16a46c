"""No silent wrong answers: a layer is never matched against itself, and
a (z, y, x) volume is matched in 3-D unless its first axis is time."""

import numpy as np
import pytest
from scipy import ndimage

from helpers import choose, open_widget, pair_widget, run_and_wait
from napari_normxcorr._napari.axes import DEPTH, TIME

VOLUME_SHIFT = (2, 3, -4)


@pytest.fixture
def warnings(monkeypatch):
    caught = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", caught.append
    )
    return caught


def shown(control):
    """Whether `control` is shown (its viewer may not be)."""
    return not control.native.isHidden()


def volume_pair(seed=0):
    """A smooth random (z, y, x) volume and a copy moved by VOLUME_SHIFT."""
    rng = np.random.default_rng(seed)
    volume = ndimage.gaussian_filter(rng.normal(size=(24, 60, 60)), 1.5)
    return volume, np.roll(volume, VOLUME_SHIFT, axis=(0, 1, 2))


def test_a_layer_against_itself_is_refused(viewer_with_pair, qtbot, warnings):
    """The same 2-D layer as template and target would give every point
    score 1 at offset 0: refused, with a hint."""
    viewer = viewer_with_pair
    widget = open_widget(viewer)
    layers = viewer.layers
    choose(widget, layers["before"], layers["before"], layers["pois"])
    count = len(layers)
    assert widget.run() is None
    assert len(warnings) == 1
    assert "both the template and the target" in warnings[0]
    assert "Track" in warnings[0]
    assert len(layers) == count and widget.result is None


def test_a_time_lapse_against_itself_is_refused(
    make_napari_viewer, qtbot, warnings
):
    """Run (not Track) on one time-lapse as template and target matched
    each point in its own frame: score 1, offset 0. Match does not offer
    a time-lapse; said to be a volume, it is refused against itself."""
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    stack = ndimage.gaussian_filter(
        rng.normal(size=(5, 80, 80)), (0, 1.5, 1.5)
    )
    layer = viewer.add_image(stack, name="movie", axis_labels=("t", "y", "x"))
    points = viewer.add_points([[0, 40.0, 40.0], [2, 30.0, 50.0]], name="p")
    widget = open_widget(viewer)
    widget.tabs.setCurrentIndex(0)
    assert layer not in widget.template_layer.choices
    widget.first_axis.value = DEPTH
    choose(widget, layer, layer, points)
    assert widget.first_axis_kind() == DEPTH
    assert widget.run() is None
    assert "Track" in warnings[0]


def test_an_unlabelled_volume_is_matched_in_3d(make_napari_viewer, qtbot):
    """(z, y, x) with no axis labels: a volume, matched in 3-D with a
    radius per axis, finding the shift along z too."""
    viewer = make_napari_viewer()
    before, after = volume_pair()
    viewer.add_image(before, name="before")
    viewer.add_image(after, name="after")
    points = np.array([[12.0, 30.0, 30.0], [10.0, 25.0, 35.0]])
    viewer.add_points(points, name="pois")
    widget = pair_widget(viewer)
    assert widget.first_axis_kind() == DEPTH
    assert shown(widget.template_radius_z)
    assert "3-D" in widget.settings.axis_note.value
    widget.template_radius.value = 6
    widget.max_displacement.value = (6, 6)
    widget.template_radius_z.value = 4
    widget.max_displacement_z.value = 4
    options = widget.match_options()
    assert options.search_radius == (8, 12, 12)
    run_and_wait(widget)
    np.testing.assert_allclose(
        widget.result.offset, [VOLUME_SHIFT] * 2, atol=0.05
    )
    assert list(widget.result.status) == ["ok"] * 2
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, points + VOLUME_SHIFT, atol=0.05
    )
    # Unlabelled, Track may still take it as time (pressing Track says
    # so); labelled z, it does not.
    assert widget.tracking.enabled
    viewer.layers["before"].axis_labels = ("z", "y", "x")
    widget.template_layer.value = viewer.layers["after"]
    widget.template_layer.value = viewer.layers["before"]
    assert not widget.tracking.enabled
    assert "depth" in widget.tracking.native.toolTip()


def test_axis_labels_and_the_control_say_what_the_first_axis_is(
    make_napari_viewer, qtbot
):
    """Labelled 't': a time-lapse, for Track (the widget opens there);
    the control overrides the labels both ways."""
    viewer = make_napari_viewer()
    before, after = volume_pair()
    axes = ("t", "y", "x")
    viewer.add_image(before, name="before", axis_labels=axes)
    viewer.add_image(after, name="after", axis_labels=axes)
    viewer.add_points([[12.0, 30.0, 30.0]], name="pois")
    widget = open_widget(viewer)
    assert widget.template_layer.label == "time-lapse"
    assert widget.template_layer.value is viewer.layers["before"]
    widget.template_radius.value = 6
    widget.max_displacement.value = (6, 6)
    assert widget.first_axis_kind() == TIME
    assert not shown(widget.template_radius_z)
    assert widget.tracking.enabled
    assert len(widget.match_options().search_radius) == 2
    widget.first_axis.value = DEPTH
    assert widget.template_layer.value is None
    widget.tabs.setCurrentIndex(0)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    assert widget.first_axis_kind() == DEPTH
    assert len(widget.match_options().search_radius) == 3
    assert not widget.tracking.enabled
    widget.template_radius_z.value = 4
    widget.max_displacement_z.value = 4
    run_and_wait(widget)
    np.testing.assert_allclose(widget.result.offset, [VOLUME_SHIFT], atol=0.05)
    widget.first_axis.value = TIME
    # Said to be time, the two series are matched frame by frame.
    assert layers["before"] in widget.template_layer.choices
    assert len(widget.match_options().search_radius) == 2
    widget.tabs.setCurrentIndex(1)
    assert widget.first_axis_kind() == TIME


def test_the_viewer_s_axis_labels_count_too(make_napari_viewer, qtbot):
    """A layer without labels of its own takes the viewer's."""
    viewer = make_napari_viewer()
    before, _ = volume_pair()
    viewer.add_image(before, name="labelled", axis_labels=("time", "y", "x"))
    viewer.add_image(before, name="plain")
    widget = open_widget(viewer)
    widget.template_layer.value = viewer.layers["plain"]
    assert widget.first_axis_kind() == TIME


def test_the_time_lapse_sample_labels_its_time_axis(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", "drifting")
    for name in ("time-lapse", "points", "true tracks"):
        assert viewer.layers[name].axis_labels[0] == "t"
    widget = open_widget(viewer)
    assert widget.first_axis_kind() == TIME
    assert widget.tracking.enabled
