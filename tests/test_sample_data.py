"""Sample data loads through npe2 and holds the answers it promises."""

import numpy as np
import pytest

from helpers import open_widget
from napari_normxcorr import Status, match_points

npe2 = pytest.importorskip("npe2")


def samples():
    manager = npe2.PluginManager.instance()
    manager.discover()
    contributions = manager.get_manifest("napari-normxcorr").contributions
    return {s.key: s for s in contributions.sample_data}


def load(key):
    return samples()[key].open()


def test_three_samples_are_contributed():
    assert set(samples()) == {"stereo", "deformed", "drifting"}


def test_stereo_sample():
    pytest.importorskip("skimage")
    (left, *_), (right, *_), (points, _, kind) = load("stereo")
    assert left.shape == right.shape == (500, 741)
    assert kind == "points" and len(points) == 12


def test_deformed_sample_true_positions_are_found():
    layers = {meta["name"]: data for data, meta, _ in load("deformed")}
    before, after = layers["before"], layers["after (deformed)"]
    points, truth = layers["grid points"], layers["true positions"]
    result = match_points(
        before, after, points, template_radius=12, search_radius=24
    )
    assert np.all(result.status == Status.OK)
    # The field is smooth but not a translation: a tenth of a pixel.
    np.testing.assert_allclose(result.matched, truth, atol=0.15)
    assert np.abs(truth - points).max() > 2


def test_drifting_sample_follows_points_from_t_to_t_plus_1():
    (frames, *_), (later, *_), (points, *_) = load("drifting")
    assert frames.ndim == 3 and frames.shape == later.shape
    result = match_points(
        frames, later, points, template_radius=10, search_radius=20
    )
    np.testing.assert_allclose(
        result.offset[:, 1:], [[1.5, -1.0]] * len(points), atol=0.05
    )
    np.testing.assert_array_equal(result.offset[:, 0], 0)


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
