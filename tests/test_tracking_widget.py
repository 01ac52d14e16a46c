"""The Track through time section in a real napari viewer: tracks of a
drifting series, their vertices, corrections by hand, and bad input.

The series is a sum of plane waves evaluated exactly at the drifted
coordinates, so the true tracks carry no interpolation error.
"""

import time

import napari
import numpy as np
import pytest

from helpers import drag, open_widget, texture
from napari_normxcorr._napari.outputs import STATUS_COLORS
from napari_normxcorr._result import Status
from napari_normxcorr._track import retrack

FRAMES = 12
SHAPE = (128, 128)
# Points: three given in frame 0 and one in frame 6 (tracked both ways).
GIVEN = np.array([[0, 44.0, 40.0], [0, 64.3, 80.6], [0, 84.0, 52.0]])
MIDDLE = np.array([60.0, 60.0])
MOVED = 1  # the point corrected by hand
AT = 5  # ... at this frame


def drift(t):
    """Sub-pixel drift of frame t from frame 0, (row, col)."""
    return np.array([0.41 * t, -0.27 * t + 0.3 * np.sin(t / 3)])


def drifting_series(seed=0, count=60):
    """(FRAMES, *SHAPE) plane waves (wavelengths 6 to 24 px) drifting."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(6, 24, count)
    angle = rng.uniform(0, 2 * np.pi, count)
    k = (2 * np.pi / length)[:, None] * np.c_[np.cos(angle), np.sin(angle)]
    phase = rng.uniform(0, 2 * np.pi, count)
    grid = np.stack(np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]], -1).astype(float)
    frames = [
        np.cos((grid - drift(t)) @ k.T + phase).sum(-1) for t in range(FRAMES)
    ]
    stack = np.stack(frames) / np.sqrt(count / 2)
    return stack + 0.01 * rng.normal(size=stack.shape)


def truth(point, t):
    """Where input point `point` (a row of the points layer) is at t."""
    if point < len(GIVEN):
        return GIVEN[point, 1:] + drift(t)
    return MIDDLE + drift(t) - drift(6)


def points_layer_data():
    return np.vstack([GIVEN, [[6, *MIDDLE]]])


@pytest.fixture(scope="module")
def stack():
    return drifting_series()


@pytest.fixture
def tracked(make_napari_viewer, qtbot, stack):
    """The viewer, the widget and its section after pressing Track."""
    viewer = make_napari_viewer()
    image = viewer.add_image(stack, name="time-lapse")
    points = viewer.add_points(points_layer_data(), name="pois")
    widget = open_widget(viewer)
    widget.template_layer.value = image
    widget.image_layer.value = image
    widget.points_layer.value = points
    widget.search_radius.value = (25, 25)
    section = widget.tracking
    assert section.enabled
    assert (section.first.value, section.last.value) == (0, FRAMES - 1)
    section.track_button.native.click()
    section.wait_until_done(30)
    assert section.result is not None
    return viewer, widget, section


def vertex_index(layer, point, t):
    """Row of the tracked layer holding the vertex of `point` at `t`."""
    features = layer.features
    match = np.flatnonzero((features["point"] == point) & (features["t"] == t))
    assert len(match) == 1
    return int(match[0])


def by_point(layer):
    """Tracks data rows (t, row, col) of each input point."""
    point = layer.features["point"].to_numpy()
    return {p: layer.data[point == p, 1:] for p in np.unique(point)}


def test_track_draws_tracks_and_tracked_vertices(tracked):
    viewer, _, section = tracked
    tracks = viewer.layers["pois tracks"]
    assert isinstance(tracks, napari.layers.Tracks)
    data = tracks.data
    assert np.isfinite(data).all()
    assert len(np.unique(data[:, 0])) == 4
    assert len(data) == 4 * FRAMES
    point = tracks.features["point"].to_numpy()
    expected = np.array([truth(p, t) for p, t in zip(point, data[:, 1])])
    assert np.abs(data[:, 2:] - expected).max() <= 0.05
    assert tracks.color_by == "score"
    assert tracks.graph == {}
    assert 1 <= tracks.tail_length <= FRAMES

    vertices = viewer.layers["pois tracked"]
    assert len(vertices.data) == 4 * FRAMES
    assert set(vertices.features["status"]) == {"ok"}
    np.testing.assert_allclose(
        vertices.face_color, [STATUS_COLORS[Status.OK]] * len(vertices.data)
    )
    # The inputs are untouched; the table has a row per track.
    np.testing.assert_array_equal(
        viewer.layers["pois"].data, points_layer_data()
    )
    assert section.summaries.native.rowCount() == 4
    # Colouring by status uses the status colours.
    section.coloring.value = "status"
    assert tracks.color_by == "status_code"
    np.testing.assert_allclose(
        tracks.track_colors, [STATUS_COLORS[Status.OK]] * len(data)
    )


def move_vertex(section, layer, t, position):
    """Drag the vertex of MOVED at frame t; the seconds until re-tracked."""
    before = section.result
    start = time.monotonic()
    drag(layer, vertex_index(layer, MOVED, t), [t, *position])
    section.wait_until_done(10)
    assert section.result is not before
    return time.monotonic() - start


def assert_only_moved_from(result, before, t):
    """Only point MOVED changed, and only from frame t on."""
    others = np.arange(len(before)) != MOVED
    np.testing.assert_array_equal(
        result.position[others], before.position[others]
    )
    np.testing.assert_array_equal(result.status[others], before.status[others])
    np.testing.assert_array_equal(
        result.position[MOVED, :t], before.position[MOVED, :t]
    )


def test_moving_a_vertex_retracks_that_point_from_there(tracked, stack):
    viewer, _, section = tracked
    layer = viewer.layers["pois tracked"]
    original = section.result
    others = by_point(viewer.layers["pois tracks"])
    wrong = truth(MOVED, AT) + [2.5, -3.0]
    seconds = move_vertex(section, layer, AT, wrong)
    assert seconds < 1.0
    wrong_result = section.result
    assert_only_moved_from(wrong_result, original, AT)
    np.testing.assert_array_equal(wrong_result.position[MOVED, AT], wrong)
    # The engine's answer for the same correction.
    direct = retrack(
        original, stack, MOVED, AT, wrong, **section.session.run.keywords()
    )
    np.testing.assert_array_equal(wrong_result.position, direct.position)

    good = truth(MOVED, AT)
    seconds = move_vertex(section, viewer.layers["pois tracked"], AT, good)
    assert seconds < 1.0
    fixed = section.result
    assert_only_moved_from(fixed, original, AT)
    error = fixed.position[MOVED, AT:] - [
        truth(MOVED, t) for t in range(AT, FRAMES)
    ]
    assert np.abs(error).max() <= 0.05
    # The layers follow: the other tracks are drawn as before.
    now = by_point(viewer.layers["pois tracks"])
    for point, rows in others.items():
        if point != MOVED:
            np.testing.assert_array_equal(now[point], rows)
    vertex = viewer.layers["pois tracked"]
    row = vertex_index(vertex, MOVED, AT + 2)
    np.testing.assert_allclose(
        vertex.data[row, 1:], fixed.position[MOVED, AT + 2]
    )

    # Undo: the wrong correction comes back, then the original track.
    assert section.undo_button.enabled
    section.undo_button.native.click()
    np.testing.assert_array_equal(
        section.result.position, wrong_result.position
    )
    section.undo_button.native.click()
    np.testing.assert_array_equal(section.result.position, original.position)
    assert not section.undo_button.enabled
    restored = by_point(viewer.layers["pois tracks"])
    np.testing.assert_array_equal(
        restored[MOVED][:, 1:], original.position[MOVED]
    )


def test_drift_corrected_view(tracked, stack):
    viewer, _, section = tracked
    section.drift.value = True
    corrected = viewer.layers["time-lapse drift corrected"]
    inner = (slice(20, -20), slice(20, -20))
    last = np.asarray(corrected.data[FRAMES - 1])[inner]
    assert np.abs(last - stack[0][inner]).std() < 0.1
    section.drift.value = False
    assert "time-lapse drift corrected" not in viewer.layers


def test_template_without_time_axis_disables_tracking(
    make_napari_viewer, qtbot, monkeypatch
):
    viewer = make_napari_viewer()
    viewer.add_image(texture((80, 90)), name="before")
    viewer.add_points([[40.0, 40.0]], name="pois")
    widget = open_widget(viewer)
    section = widget.tracking
    assert not section.enabled
    assert "time" in section.native.toolTip()
    warnings = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", warnings.append
    )
    count = len(viewer.layers)
    assert section.track() is None
    assert len(warnings) == 1 and "no time axis" in warnings[0]
    assert len(viewer.layers) == count


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[40.0, 40.0]], "no time column"),
        ([[11, 40.0, 40.0]], "outside frames 0 to 8"),
    ],
)
def test_bad_points_notify_and_change_nothing(
    make_napari_viewer, qtbot, monkeypatch, stack, points, message
):
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="time-lapse")
    layer = viewer.add_points(points, name="pois")
    widget = open_widget(viewer)
    widget.points_layer.value = layer
    widget.tracking.last.value = 8
    warnings = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", warnings.append
    )
    count = len(viewer.layers)
    assert widget.tracking.track() is None
    assert len(warnings) == 1 and message in warnings[0]
    assert len(viewer.layers) == count
    np.testing.assert_array_equal(layer.data, points)


def test_track_again_updates_the_layers_in_place(tracked):
    viewer, _, section = tracked
    count = len(viewer.layers)
    section.track_button.native.click()
    section.wait_until_done(30)
    assert len(viewer.layers) == count
    assert len(viewer.layers["pois tracks"].data) == 4 * FRAMES


def test_cancel_stops_without_changing_layers(tracked, monkeypatch):
    _, _, section = tracked
    before = section.result
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_info", shown.append)
    section.track()
    section.cancel()
    section.wait_until_done(30)
    assert section.result is before
    assert shown == ["Tracking cancelled; no layers were changed."]
    assert section.track_button.enabled


def test_worker_errors_become_notifications(tracked, monkeypatch):
    _, _, section = tracked

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(
        "napari_normxcorr._napari.track_jobs.track_points", broken
    )
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    before = section.result
    section.track()
    section.wait_until_done(30)
    assert errors == ["Tracking failed: disk on fire"]
    assert section.result is before


def test_only_moves_correct_tracks(tracked, monkeypatch):
    """Data set as a whole (unchanged) tracks nothing again; a deleted
    vertex is put back, with a notification."""
    viewer, _, section = tracked
    layer = viewer.layers["pois tracked"]
    before = section.result
    layer.data = np.array(layer.data)
    assert not section.busy
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_info", shown.append)
    layer.selected_data = {3}
    layer.remove_selected()
    assert len(shown) == 1 and "not supported" in shown[0]
    assert len(layer.data) == 4 * FRAMES
    assert section.result is before and not section.busy
