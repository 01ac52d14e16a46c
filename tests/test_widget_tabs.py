"""Each tab offers only the layers that fit its task: Track a time-lapse
(no target), Match, Register and Dense field 2-D images and volumes; the
points never an output or a layer of answers. Switching tabs keeps a
choice that still fits."""

import numpy as np
import pytest

from helpers import open_widget, texture
from napari_normxcorr._napari.axes import DEPTH, FROM_LABELS, TIME
from napari_normxcorr._napari.layout import TABS

ANSWERS = {"napari-normxcorr": {"answers": True}}


@pytest.fixture
def viewer(make_napari_viewer):
    """2-D images, a time-lapse, a volume, points, an output of ours and
    a layer of answers."""
    viewer = make_napari_viewer()
    plane = texture((40, 50))
    stack = np.stack([plane] * 3)
    viewer.add_image(plane, name="before")
    viewer.add_image(plane, name="after")
    viewer.add_image(stack, name="movie", axis_labels=("t", "y", "x"))
    viewer.add_image(stack, name="volume", axis_labels=("z", "y", "x"))
    viewer.add_points([[10.0, 10.0]], name="pois")
    viewer.add_points([[10.0, 10.0]], name="pois matched")
    viewer.add_points([[10.0, 12.0]], name="truth", metadata=ANSWERS)
    return viewer


def names(picker):
    return [layer.name for layer in picker.choices if layer is not None]


def show_tab(widget, title):
    widget.tabs.setCurrentIndex(TABS.index(title))


def test_each_tab_offers_the_layers_of_its_task(viewer, qtbot):
    widget = open_widget(viewer)
    for title in ("Match", "Register", "Dense field", "Match"):
        show_tab(widget, title)
        pairs = ["before", "after", "volume"]
        assert names(widget.template_layer) == pairs, title
        assert names(widget.image_layer) == pairs, title
        assert widget.image_layer.enabled
        assert widget.template_layer.label == "template image"
        assert names(widget.points_layer) == ["pois"], title
    show_tab(widget, "Track")
    assert names(widget.template_layer) == ["movie"]
    assert widget.template_layer.label == "time-lapse"
    assert not widget.image_layer.enabled
    assert names(widget.points_layer) == ["pois"]


def test_an_unlabelled_stack_fits_every_tab(make_napari_viewer, qtbot):
    """Unlabelled, the first axis is depth to Match and time to Track:
    the stack is offered on both, and stays picked."""
    viewer = make_napari_viewer()
    stack = np.stack([texture((40, 50), seed=s) for s in range(3)])
    layer = viewer.add_image(stack, name="stack")
    viewer.add_image(stack[::-1].copy(), name="other")
    widget = open_widget(viewer)
    widget.template_layer.value = layer
    for title in ("Track", "Register", "Track", "Match"):
        show_tab(widget, title)
        assert names(widget.template_layer) == ["stack", "other"]
        assert widget.template_layer.value is layer
    assert widget.image_layer.value is viewer.layers["other"]


def test_switching_tabs_keeps_a_choice_that_fits(viewer, qtbot):
    widget = open_widget(viewer)
    layers = viewer.layers
    widget.template_layer.value = layers["before"]
    widget.image_layer.value = layers["after"]
    show_tab(widget, "Track")
    assert widget.template_layer.value is layers["movie"]
    assert widget.tracking.enabled
    # Back on a pair tab: the pair chosen there; the target never moved.
    show_tab(widget, "Dense field")
    assert widget.template_layer.value is layers["before"]
    assert widget.image_layer.value is layers["after"]
    show_tab(widget, "Track")
    assert widget.template_layer.value is layers["movie"]
    assert widget.points_layer.value is layers["pois"]


def test_the_first_axis_control_refilters(viewer, qtbot):
    """Said to be depth, a time-lapse is matched as a volume (Match
    offers it, Track does not); said to be time, the other way round."""
    widget = open_widget(viewer)
    assert not widget.first_axis.native.isHidden()
    widget.first_axis.value = DEPTH
    assert "movie" in names(widget.template_layer)
    show_tab(widget, "Track")
    assert names(widget.template_layer) == []
    assert not widget.first_axis.native.isHidden()
    widget.first_axis.value = TIME
    assert names(widget.template_layer) == ["movie", "volume"]
    show_tab(widget, "Match")
    # Two series of one shape: Match offers them too, frame by frame.
    assert sorted(names(widget.template_layer)) == [
        "after",
        "before",
        "movie",
        "volume",
    ]
    widget.first_axis.value = FROM_LABELS
    assert "movie" not in names(widget.template_layer)
    assert "volume" in names(widget.template_layer)


def test_the_drifting_sample_opens_on_track(make_napari_viewer, qtbot):
    """A time-lapse alone: the widget opens on Track with it picked, and
    never the true tracks as the points."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", "drifting")
    widget = open_widget(viewer)
    assert widget.tabs.currentIndex() == TABS.index("Track")
    assert widget.template_layer.value is viewer.layers["time-lapse"]
    assert widget.points_layer.value is viewer.layers["points"]
    assert widget.tracking.enabled
    show_tab(widget, "Match")
    assert names(widget.template_layer) == []
    assert not widget.run_button.enabled


def test_opened_before_the_drifting_sample_too(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = open_widget(viewer)
    viewer.open_sample("napari-normxcorr", "drifting")
    assert widget.tabs.currentIndex() == TABS.index("Track")
    assert widget.template_layer.value is viewer.layers["time-lapse"]


def test_answers_are_never_offered_as_points(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", "deformed")
    widget = open_widget(viewer)
    assert names(widget.points_layer) == ["grid points"]
    assert widget.tabs.currentIndex() == TABS.index("Match")
