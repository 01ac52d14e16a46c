"""Sample data loads through npe2 and holds the answers it promises."""

import numpy as np
import pytest

from helpers import open_widget
from napari_normxcorr import Status, match_points, track_points

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


def test_drifting_sample_is_tracked_along_its_true_tracks():
    (stack, *_), (truth, *_), (points, *_) = load("drifting")
    assert stack.ndim == 3 and len(stack) == 30
    result = track_points(stack, points, template_radius=10)
    found = {}
    for i, p in enumerate(result.position):
        for t in range(len(stack)):
            if result.status[i, t] == Status.OK:
                found[i, t] = p[t, -2:]
    true = {(int(i), int(t)): q for i, t, *q in truth}
    # Every ok vertex is on its true track: none outside the true frames
    # (points that left are lost), all within a few hundredths of a pixel.
    assert set(found) <= set(true)
    error = np.array([np.linalg.norm(found[k] - true[k]) for k in found])
    assert np.sqrt(np.mean(error**2)) < 0.08
    assert error.max() < 0.3
    # Most of the truth is found; the left column leaves the frame.
    assert len(found) > 0.9 * len(true)
    assert len(true) < len(points) * len(stack)


@pytest.mark.parametrize(
    ("sample", "layers"),
    [
        ("stereo", ("left", "right", "stereo points")),
        ("deformed", ("before", "after (deformed)", "grid points")),
        # A time-lapse alone: the Track tab, which has no target.
        ("drifting", ("time-lapse", None, "points")),
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
    assert tuple(ly and ly.name for ly in picked) == layers
