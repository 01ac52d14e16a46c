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
from napari_normxcorr.matching._result import Status
from napari_normxcorr.tracking._track import retrack

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
    """Added right above the template (under the points and tracks),
    see-through, and without taking the selection."""
    viewer, _, section = tracked
    layers = viewer.layers
    layers.selection.active = layers["pois"]
    section.drift.value = True
    corrected = viewer.layers["time-lapse drift corrected"]
    assert layers.index(corrected) == layers.index("time-lapse") + 1
    assert corrected.opacity < 1
    assert layers.selection.active is layers["pois"]
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


# --- the selected track: its vertices and its NCC surface -------------


def cells(table):
    """The text of every cell of a QTableWidget, row by row."""
    return [
        [table.item(r, c).text() for c in range(table.columnCount())]
        for r in range(table.rowCount())
    ]


def headers(table):
    return [
        table.horizontalHeaderItem(c).text()
        for c in range(table.columnCount())
    ]


def select_summary_of(section, point):
    """Click the first row of the summary table that is `point`'s."""
    summaries = section.summaries.native
    column = headers(summaries).index("point")
    rows = [
        r
        for r, row in enumerate(cells(summaries))
        if row[column] == str(point)
    ]
    summaries.selectRow(rows[0])


def assert_cells_are(table, expected, keys):
    """Each cell holds its value of `expected` (columns of to_table)."""
    shown = cells(table)
    assert len(shown) == len(expected["t"])
    for row, texts in enumerate(shown):
        for text, key in zip(texts, keys, strict=True):
            value = expected[key][row]
            if key == "status":
                assert text == value
            elif key == "refreshed":
                assert text == ("yes" if value else "")
            elif key == "track_id":
                assert text == (str(value) if value >= 0 else "–")
            elif np.isfinite(value):
                assert float(text) == pytest.approx(value, abs=0.005)
            else:
                assert text == "–"


VERTEX_KEYS = [
    "t",
    "track_id",
    "position-0",
    "position-1",
    "score",
    "distinctiveness",
    "status",
    "refreshed",
]


def test_selecting_a_track_lists_its_vertices(tracked):
    viewer, _, section = tracked
    vertices = section.vertices
    assert not vertices.native.isVisibleTo(section.native)
    select_summary_of(section, MOVED)
    assert section.session.point == MOVED
    table = section.result.to_table()
    mine = {
        key: values[table["point"] == MOVED] for key, values in table.items()
    }
    assert headers(vertices.table) == [
        "t",
        "track",
        "row",
        "col",
        "score",
        "distinct.",
        "status",
        "refreshed",
    ]
    assert_cells_are(vertices.table, mine, VERTEX_KEYS)
    assert f"Point {MOVED}" in vertices.caption.text()
    assert vertices.native.isVisibleTo(section.native)

    # Selecting a vertex of the tracked layer selects its track.
    layer = viewer.layers["pois tracked"]
    layer.selected_data = {vertex_index(layer, 3, 2)}
    assert section.session.point == 3
    mine = {key: values[table["point"] == 3] for key, values in table.items()}
    assert_cells_are(vertices.table, mine, VERTEX_KEYS)
    summaries = section.summaries.native
    picked = summaries.selectionModel().selectedRows()[0].row()
    assert summaries.item(picked, 0).text() == "3"

    # Clicking a vertex shows its frame; the slider selects the row.
    vertices.table.selectRow(7)
    assert viewer.dims.current_step[0] == 7
    viewer.dims.set_current_step(0, 4)
    assert vertices.table.selectionModel().selectedRows()[0].row() == 4


def brute_force_ncc(template, image, center, radius, offsets):
    """NCC of `template` with the windows of `image` centred on
    ``center + q`` for each q of `offsets` (numpy, no FFT)."""
    t = template - template.mean()
    values = np.empty(len(offsets))
    for k, q in enumerate(offsets):
        r, c = center + q
        w = image[r - radius : r + radius + 1, c - radius : c + radius + 1]
        w = w - w.mean()
        values[k] = (t * w).sum() / np.sqrt((t * t).sum() * (w * w).sum())
    return values


def assert_surface_of(viewer, section, stack, point, t, source):
    """The surface layer shows the NCC of `point`'s template at `source`
    over frame t, under the vertex at t."""
    result = section.result
    layer = viewer.layers["pois track surface"]
    assert layer.visible
    assert layer.metadata["t"] == t and layer.metadata["point"] == point
    values = np.asarray(layer.data)[0]
    # Placed in the template's world at frame t, peak under the vertex.
    peak = np.unravel_index(np.argmax(values), values.shape)
    world = np.asarray(layer.data_to_world((0, *peak)))
    assert world[0] == t
    assert np.abs(world[1:] - result.position[point, t]).max() <= 1.0
    # The values: NCC of the source frame's window against frame t.
    radius = section.session.run.keywords()["template_radius"]
    at = result.position[point, source]
    corner = np.rint(at).astype(int)
    template = stack[source][
        corner[0] - radius : corner[0] + radius + 1,
        corner[1] - radius : corner[1] + radius + 1,
    ]
    origin = np.asarray(layer.data_to_world((0, 0, 0)))[1:]
    start = np.rint(origin - (at - corner)).astype(int)
    offsets = np.indices(values.shape).reshape(2, -1).T
    expected = brute_force_ncc(template, stack[t], start, radius, offsets)
    np.testing.assert_allclose(values.ravel(), expected, atol=2e-3)


def test_track_surface_follows_the_selected_vertex(tracked, stack):
    viewer, _, section = tracked
    before = viewer.layers["pois"].data.copy()
    image = viewer.layers["time-lapse"]
    image_data = image.data.copy()
    assert "pois track surface" not in viewer.layers
    select_summary_of(section, MOVED)
    viewer.dims.set_current_step(0, 4)
    # Tracked forwards from frame 0: frame 4 from frame 3.
    assert_surface_of(viewer, section, stack, MOVED, 4, 3)
    # Under the tracks and vertices, which it would dim.
    names = [layer.name for layer in viewer.layers]
    assert names.index("pois track surface") < names.index("pois tracks")
    assert (
        viewer.layers.selection.active
        is not viewer.layers["pois track surface"]
    )
    viewer.dims.set_current_step(0, 9)
    assert_surface_of(viewer, section, stack, MOVED, 9, 8)

    # Point 3 was given at frame 6: before it, tracked backwards.
    select_summary_of(section, 3)
    viewer.dims.set_current_step(0, 2)
    assert_surface_of(viewer, section, stack, 3, 2, 3)
    # At its own frame nothing was matched: no surface.
    viewer.dims.set_current_step(0, 6)
    assert not viewer.layers["pois track surface"].visible
    viewer.dims.set_current_step(0, 7)
    assert_surface_of(viewer, section, stack, 3, 7, 6)

    # Inputs untouched.
    np.testing.assert_array_equal(viewer.layers["pois"].data, before)
    np.testing.assert_array_equal(image.data, image_data)
    np.testing.assert_array_equal(image.data, stack)


def test_track_surface_follows_a_correction(tracked, stack):
    viewer, _, section = tracked
    select_summary_of(section, MOVED)
    viewer.dims.set_current_step(0, AT + 1)
    layer = viewer.layers["pois track surface"]
    old = np.array(layer.data)
    wrong = truth(MOVED, AT) + [2.5, -3.0]
    move_vertex(section, viewer.layers["pois tracked"], AT, wrong)
    # Re-tracked from the wrong vertex: the surface is drawn again.
    assert_surface_of(viewer, section, stack, MOVED, AT + 1, AT)
    assert not np.array_equal(np.asarray(layer.data), old)
    table = section.result.to_table()
    mine = {
        key: values[table["point"] == MOVED] for key, values in table.items()
    }
    assert_cells_are(section.vertices.table, mine, VERTEX_KEYS)


def test_lost_vertices_have_no_surface(tracked, stack):
    viewer, _, section = tracked
    section.last.value = 8
    section.track_button.native.click()
    section.wait_until_done(30)
    result = section.result
    assert (result.status[:, 9:] == Status.LOST).all()
    select_summary_of(section, 0)
    viewer.dims.set_current_step(0, 5)
    assert_surface_of(viewer, section, stack, 0, 5, 4)
    viewer.dims.set_current_step(0, 10)
    layer = viewer.layers["pois track surface"]
    assert not layer.visible
    rows = cells(section.vertices.table)
    status = headers(section.vertices.table).index("status")
    assert rows[10][status] == "lost"
    assert rows[10][1] == rows[10][2] == "–"
    # Back on a found vertex, the layer comes back.
    viewer.dims.set_current_step(0, 8)
    assert_surface_of(viewer, section, stack, 0, 8, 7)


def test_no_selection_no_surface(tracked):
    viewer, _, section = tracked
    for t in (3, 8):
        viewer.dims.set_current_step(0, t)
    assert "pois track surface" not in viewer.layers
    assert section.session.point is None
