"""track_points, TrackResult and estimate_drift against known motion.

The series are a sum of plane waves (wavelengths 6 to 24 px) evaluated
exactly at the moved coordinates, so that the true tracks carry no
interpolation error: sub-pixel drift, rotation and zoom that accumulate,
a smooth local deformation, 1 % noise and a slow brightness change.
"""

import numpy as np
import pytest
from scipy import ndimage

from helpers import texture
from napari_normxcorr import Status, TrackResult, estimate_drift, track_points
from napari_normxcorr.tracking._drift import ShiftedFrames
from napari_normxcorr.tracking._track import retrack

FRAMES = 30
SHAPE = (128, 128)
CENTRE = np.asarray(SHAPE, float) / 2


def waves(seed=0, count=80):
    """Wave vectors, phases and amplitudes of a random texture."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(6, 24, count)
    angle = rng.uniform(0, 2 * np.pi, count)
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    vectors = (2 * np.pi / length)[:, None] * direction
    return vectors, rng.uniform(0, 2 * np.pi, count), rng.normal(size=count)


def texture_at(texture, coords):
    """The texture at float (..., 2) coordinates."""
    vectors, phases, amplitudes = texture
    out = np.zeros(coords.shape[:-1])
    for k, phase, amplitude in zip(vectors, phases, amplitudes):
        out += amplitude * np.cos(coords @ k + phase)
    return out / np.sqrt(len(phases) / 2)


def drift(t):
    """Sub-pixel drift of frame t, (row, col)."""
    return np.array(
        [0.37 * t + 0.8 * np.sin(t / 5), -0.23 * t + 0.5 * np.cos(t / 7) - 0.5]
    )


def deformation(t, deformed):
    """Linear part and local amplitude of frame t."""
    if not deformed:
        return np.eye(2), 0.0
    a = np.deg2rad(0.3 * t)  # 0.3 degree and 0.2 % per frame
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (1 + 0.002 * t) * rotation, 0.04 * t


def local(p, amplitude):
    """Smooth local displacement (one wave over the frame)."""
    phase = 2 * np.pi * p / SHAPE[0]
    return amplitude * np.stack(
        [np.sin(phase[..., 1] + 0.3), np.cos(phase[..., 0])], axis=-1
    )


def true_position(p0, t, deformed):
    """Where the point p0 of frame 0 is in frame t."""
    linear, amplitude = deformation(t, deformed)
    return CENTRE + drift(t) + (p0 - CENTRE) @ linear.T + local(p0, amplitude)


def source_of(x, t, deformed):
    """The point of frame 0 that lands on x in frame t (fixed point)."""
    linear, amplitude = deformation(t, deformed)
    inverse = np.linalg.inv(linear)
    p = CENTRE + (x - CENTRE - drift(t)) @ inverse.T
    for _ in range(30 if amplitude else 0):
        moved = x - CENTRE - drift(t) - local(p, amplitude)
        p = CENTRE + moved @ inverse.T
    return p


def series(deformed, frames=FRAMES, fade=0.0, seed=0, noise=0.01):
    """(frames, *SHAPE) series with noise and brightness drift; `fade`
    blends in a second texture over the series (appearance change)."""
    first, second = waves(seed), waves(seed + 10)
    rng = np.random.default_rng(seed + 1)
    grid = np.stack(np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]], -1).astype(float)
    stack = np.empty((frames, *SHAPE))
    for t in range(frames):
        p = source_of(grid, t, deformed)
        values = texture_at(first, p)
        if fade:
            share = fade * t / (frames - 1)
            values = (1 - share) * values + share * texture_at(second, p)
        brightness = (1 + 0.01 * t) * values + 0.02 * t
        stack[t] = brightness + noise * rng.normal(size=SHAPE)
    return stack


def grid_points(low=40, high=88, count=4):
    """(count², 2) points on a grid in frame 0."""
    axis = np.linspace(low, high, count)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def errors(result, p0, deformed):
    """(N, T) distance from the true track, pixels."""
    truth = np.stack(
        [true_position(p0, t, deformed) for t in range(FRAMES)], axis=1
    )
    return np.linalg.norm(result.position - truth, axis=-1)


def rms(values):
    return float(np.sqrt(np.mean(np.square(values))))


@pytest.fixture(scope="module")
def drifting():
    return series(deformed=False)


@pytest.fixture(scope="module")
def deformed():
    return series(deformed=True)


@pytest.fixture(scope="module")
def drifting_tracks(drifting):
    p0 = grid_points()
    points = np.column_stack([np.zeros(len(p0)), p0])
    return p0, track_points(drifting, points)


@pytest.mark.parametrize("reference", ["adaptive", "first", "previous"])
def test_sub_pixel_drift_within_two_hundredths(drifting, reference):
    """Pure translation (with noise and brightness drift): every vertex ok
    and within 0.02 px RMS, whatever the reference."""
    p0 = grid_points()
    points = np.column_stack([np.zeros(len(p0)), p0])
    result = track_points(drifting, points, reference=reference)
    assert result.ok.all()
    assert rms(errors(result, p0, False)) <= 0.02


def test_adaptive_error_does_not_random_walk(drifting_tracks):
    """The last frame's error is at most twice the first step's."""
    p0, result = drifting_tracks
    error = errors(result, p0, False)
    assert rms(error[:, -1]) <= 2 * rms(error[:, 1])


def test_rotation_zoom_and_local_deformation(deformed):
    """9 degrees, 6 % zoom and a bending local field over 30 frames: the
    shape function keeps 'adaptive' within 0.05 px RMS, without drift."""
    p0 = grid_points()
    points = np.column_stack([np.zeros(len(p0)), p0])
    result = track_points(deformed, points)
    error = errors(result, p0, True)
    assert result.ok.all()
    assert rms(error) <= 0.05
    assert rms(error[:, -1]) <= 2 * rms(error[:, 1])


def test_affine_shape_function_is_biased_by_bending(deformed):
    """With the affine shape function the local field's curvature shows
    (the quadratic default is what keeps the error down)."""
    p0 = grid_points(count=3)
    points = np.column_stack([np.zeros(len(p0)), p0])
    affine = track_points(deformed, points, shape_order=1)
    quadratic = track_points(deformed, points)
    assert rms(errors(affine, p0, True)) > rms(errors(quadratic, p0, True))


def test_adaptive_refreshes_when_appearance_changes():
    """When the texture itself changes, 'first' loses the points while
    'adaptive' renews its references a few times (not every frame) and
    keeps every vertex ok."""
    stack = series(deformed=False, fade=0.9, seed=3)
    p0 = grid_points(count=3)
    points = np.column_stack([np.zeros(len(p0)), p0])
    first = track_points(stack, points, reference="first")
    adaptive = track_points(stack, points, refresh_score=0.95)
    refreshes = adaptive.refreshed.sum(axis=1)
    assert np.all(refreshes >= 1) and np.all(refreshes < FRAMES // 2)
    assert adaptive.ok.all()
    assert not first.ok[:, -1].any()
    summaries = adaptive.summaries()
    assert np.array_equal(summaries["refreshes"], refreshes)


def test_point_given_in_a_middle_frame_is_tracked_both_ways(drifting):
    """A point clicked at frame 15 gets vertices over the whole series."""
    p0 = grid_points(count=2)
    middle = np.stack([true_position(p, 15, False) for p in p0])
    points = np.column_stack([np.full(len(p0), 15), middle])
    result = track_points(drifting, points)
    assert result.ok.all()
    np.testing.assert_allclose(result.position[:, 15], middle)
    assert rms(errors(result, p0, False)) <= 0.02


def test_a_point_is_tracked_alone(deformed):
    """A point's vertices are the same, to the bit, whichever other points
    are tracked with it (what lets a cluster split the points): its
    regions' boxes fit its own warp, and its samples do not depend on
    where its box sits among the others."""
    rng = np.random.default_rng(7)
    stack = deformed[:16]
    points = np.column_stack(
        [rng.integers(0, 16, 40), rng.uniform(8, 120, (40, 2))]
    )
    options = {"template_radius": 7, "search_radius": 12}
    together = track_points(stack, points, **options)
    for rows in (np.arange(0, 40, 3), rng.permutation(40)[:17]):
        alone = track_points(stack, points[rows], **options)
        for name in (
            "position",
            "score",
            "distinctiveness",
            "status",
            "gradient",
        ):
            np.testing.assert_array_equal(
                getattr(alone, name), getattr(together, name)[rows], name
            )
        assert (alone.refreshed == together.refreshed[rows]).all()


def test_no_points_give_an_empty_result(drifting):
    result = track_points(drifting[:4], np.empty((0, 3)))
    assert result.position.shape == (0, 4, 2)
    assert result.to_table()["track_id"].size == 0


def sweeping(frames=24):
    """Translation series sweeping 14 px right and back (frames, 96, 128)."""
    texture = waves(5)
    rng = np.random.default_rng(6)
    grid = np.stack(np.mgrid[0:96, 0:128], -1).astype(float)
    stack = np.empty((frames, 96, 128))
    shifts = 14 * np.sin(np.pi * np.arange(frames) / (frames - 1))
    for t, s in enumerate(shifts):
        values = texture_at(texture, grid - [0.0, s])
        stack[t] = values + 0.01 * rng.normal(size=(96, 128))
    return stack, shifts


@pytest.fixture(scope="module")
def swept():
    stack, shifts = sweeping()
    points = np.array([[0, 48.0, 100.0], [0, 48.0, 40.0]])
    return stack, shifts, points, track_points(stack, points)


def test_points_leaving_the_image_are_lost_never_ok(swept):
    """A point whose template leaves the frame is lost, and its track has
    no vertex there; the point far from the border stays ok."""
    _, shifts, _, result = swept
    outside = 100 + shifts + 15 > 127
    assert outside.any()
    assert np.all(result.status[0, outside] == Status.LOST)
    assert not np.any(result.ok[0, outside])
    assert np.isnan(result.position[0, outside]).all()
    assert result.ok[1].all()


def test_lost_point_found_again_continues_as_a_linked_segment(swept):
    """Back in the frame, the point is found again: a new segment whose
    parent in the graph is the segment before it, and accurate again."""
    _, shifts, _, result = swept
    ids, graph = result.track_ids()
    segments = np.unique(ids[0][ids[0] >= 0])
    assert len(segments) == 2
    assert graph == {int(segments[1]): [int(segments[0])]}
    back = ids[0] == segments[1]
    expected = 100 + shifts[back]
    np.testing.assert_allclose(
        result.position[0, back, 1], expected, atol=0.05
    )


def test_to_napari_makes_a_tracks_layer(swept):
    """No NaN in the data, features per vertex, and napari accepts it."""
    napari = pytest.importorskip("napari")
    _, _, _, result = swept
    data, features, graph = result.to_napari()
    assert np.isfinite(data).all()
    assert data.shape[1] == 4
    assert all(len(v) == len(data) for v in features.values())
    assert set(features) >= {"point", "score", "status", "distinctiveness"}
    assert "lost" not in set(features["status"])
    layer = napari.layers.Tracks(data, features=features, graph=graph)
    assert len(layer.data) == len(data)
    assert layer.graph == graph


def test_table_csv_and_summaries(swept, tmp_path):
    """One table row per vertex, a CSV of it, one summary per segment."""
    _, _, points, result = swept
    table = result.to_table()
    rows = len(points) * result.status.shape[1]
    assert all(len(column) == rows for column in table.values())
    assert set(table) >= {"track_id", "point", "t", "position-0", "status"}
    path = tmp_path / "tracks.csv"
    result.to_csv(path)
    lines = path.read_text().splitlines()
    assert len(lines) == rows + 1 and lines[0].startswith("track_id")
    summaries = result.summaries()
    assert len(summaries["track_id"]) == 3
    assert np.all(summaries["length"] >= 1)
    total = int(np.count_nonzero(result.status != Status.LOST))
    assert summaries["length"].sum() == total


def test_inputs_are_not_modified(drifting):
    """Neither the stack nor the points change."""
    stack = drifting[:4].copy()
    points = np.array([[1, 60.3, 61.7], [0, 50.0, 70.0]])
    before = stack.copy(), points.copy()
    track_points(stack, points)
    np.testing.assert_array_equal(stack, before[0])
    np.testing.assert_array_equal(points, before[1])


class CountingStack:
    """A lazy stack that records the largest window read."""

    def __init__(self, values):
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, 3
        self.largest = 0

    def __getitem__(self, index):
        part = self.values[index]
        self.largest = max(self.largest, part.size)
        return part


def test_lazy_stacks_are_read_window_by_window(drifting):
    """A lazy stack is never read whole, and gives the numpy answer;
    dask arrays work too."""
    da = pytest.importorskip("dask.array")
    stack = drifting[:6]
    points = np.array([[0, 60.3, 61.7], [2, 50.0, 70.0]])
    lazy = CountingStack(stack)
    expected = track_points(stack, points)
    result = track_points(lazy, points)
    assert 0 < lazy.largest < SHAPE[0] * SHAPE[1] / 2
    np.testing.assert_allclose(result.position, expected.position)
    chunked = track_points(da.from_array(stack, chunks=(1, 64, 64)), points)
    np.testing.assert_allclose(chunked.position, expected.position)


def test_whole_pixels_without_subpixel(drifting_tracks, drifting):
    """subpixel=False moves points by whole pixels from their reference,
    within a pixel of the truth."""
    p0, _ = drifting_tracks
    points = np.column_stack([np.zeros(len(p0)), p0])
    result = track_points(drifting, points, subpixel=False)
    moved = result.position - p0[:, None, :]
    np.testing.assert_allclose(moved, np.rint(moved), atol=1e-9)
    assert errors(result, p0, False).max() <= 1.0
    assert np.isnan(result.gradient).all()


def test_three_dimensional_frames():
    """Volumes (t, z, row, col) are tracked in 3-D with three radii."""
    rng = np.random.default_rng(2)
    volume = ndimage.gaussian_filter(rng.normal(size=(40, 40, 40)), 2.0)
    volume /= volume.std()
    shifts = np.array([[0.3, -0.2, 0.45]]) * np.arange(5)[:, None]
    stack = np.stack([ndimage.shift(volume, s, order=5) for s in shifts])
    points = np.array([[0, 20.0, 20.0, 20.0], [0, 18.0, 22.0, 19.0]])
    result = track_points(
        stack, points, template_radius=(6, 6, 6), search_radius=(9, 9, 9)
    )
    assert result.ok.all()
    truth = points[:, None, 1:] + shifts[None]
    assert np.abs(result.position - truth).max() <= 0.05
    # A shift: no displacement gradient, 3 x 3 per vertex.
    assert result.gradient.shape == (2, 5, 3, 3)
    assert np.abs(result.gradient).max() <= 2e-3
    data, _, _ = result.to_napari()
    assert data.shape[1] == 5


def test_planes_of_volumes_tracked_in_two_dimensions():
    """With one radius, (t, z, row, col) points move within their plane."""
    base = np.stack([texture((96, 96), seed) for seed in range(3)])
    stack = np.stack(
        [
            ndimage.shift(base, (0, 0.3 * t, -0.2 * t), order=5)
            for t in range(5)
        ]
    )
    points = np.array([[0, 1, 48.0, 48.0], [2, 2, 40.0, 50.0]])
    result = track_points(stack, points)
    assert result.ok.all()
    np.testing.assert_array_equal(result.position[:, :, 0], [[1] * 5, [2] * 5])
    moved = points[:, None, 2:] + np.array([[0.3, -0.2]]) * (
        np.arange(5)[None, :, None] - points[:, None, :1]
    )
    assert np.abs(result.position[:, :, 1:] - moved).max() <= 0.05


def test_drift_and_corrected_view(drifting_tracks, drifting):
    """The median drift matches the known one, and the corrected stack
    puts frame t back onto frame 0 (dask and plain views alike)."""
    _, result = drifting_tracks
    found = estimate_drift(result)
    truth = np.stack([drift(t) - drift(0) for t in range(FRAMES)])
    np.testing.assert_allclose(found.displacement, truth, atol=0.02)
    assert np.all(found.points_used == len(result))
    inner = (slice(20, -20), slice(20, -20))
    for view in (
        found.corrected,
        ShiftedFrames(drifting, found.displacement),
    ):
        frame = np.asarray(view[FRAMES - 1])
        residual = frame[inner] / 1.29 - drifting[0][inner] + 0.58 / 1.29
        assert np.abs(residual).std() < 0.1
        assert view.shape == drifting.shape


def test_drift_of_a_list_of_frames(drifting_tracks, drifting):
    """A stack given as a list of frames drifts and corrects alike."""
    p0, _ = drifting_tracks
    points = np.column_stack([np.zeros(len(p0)), p0])
    found = estimate_drift(track_points(list(drifting), points))
    truth = np.stack([drift(t) - drift(0) for t in range(FRAMES)])
    np.testing.assert_allclose(found.displacement, truth, atol=0.02)
    last = np.asarray(found.corrected[FRAMES - 1])
    assert last.shape == drifting.shape[1:]
    assert np.asarray(found.corrected[1:3]).shape == (2, *drifting.shape[1:])


@pytest.mark.parametrize(
    ("stack", "points", "message"),
    [
        (np.zeros((1, 32, 32)), [[0, 16, 16]], "at least two"),
        (np.zeros((3, 32, 32)), [[16, 16]], "no time column"),
        (np.zeros((3, 32, 32)), [[3, 16, 16]], "outside the stack"),
        (np.zeros((3, 32, 32)), [[-1, 16, 16]], "outside the stack"),
        (
            [np.zeros((32, 32)), np.zeros((32, 30))],
            [[0, 16, 16]],
            "different shapes",
        ),
        (np.zeros((32, 32)), [[0, 16]], "time first"),
    ],
)
def test_bad_input_is_refused_clearly(stack, points, message):
    """Each mistake gets a ValueError that says what is wrong."""
    with pytest.raises(ValueError, match=message):
        track_points(stack, points)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reference": "last"}, "reference must be one of"),
        ({"refresh_score": 2.0}, "refresh_score"),
        ({"patience": -1}, "patience"),
        ({"shape_order": 3}, "shape_order"),
        ({"fft_precision": "half"}, "fft_precision"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_are_refused(drifting, options, message):
    with pytest.raises(ValueError, match=message):
        track_points(drifting, [[0, 60, 60]], **options)


def test_progress_is_reported_per_frame(drifting):
    """progress(done, total) after each frame of both sweeps."""
    calls = []
    points = [[2, 60.0, 60.0], [3, 50.0, 70.0]]
    track_points(drifting[:6], points, progress=lambda *a: calls.append(a))
    assert calls == [(k, 6) for k in range(1, 7)]


def test_result_is_a_track_result(drifting_tracks):
    _, result = drifting_tracks
    assert isinstance(result, TrackResult)
    assert result.status.shape == (len(result), FRAMES)


def test_a_frame_range_is_tracked_alone(drifting):
    """frames=(first, last): vertices outside are lost, those inside are
    those of tracking the range as a stack of its own."""
    points = np.array([[5, 60.0, 61.0], [8, 50.0, 70.0]])
    result = track_points(drifting, points, frames=(3, 10))
    alone = track_points(drifting[3:11], points - [3, 0, 0])
    assert result.status.shape == (2, FRAMES)
    assert np.all(result.status[:, :3] == Status.LOST)
    assert np.all(result.status[:, 11:] == Status.LOST)
    np.testing.assert_array_equal(result.position[:, 3:11], alone.position)
    np.testing.assert_array_equal(result.points, points)
    data, _, _ = result.to_napari()
    assert set(data[:, 1]) == set(range(3, 11))


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ((4, 4), "first < last"),
        ((0, FRAMES), "first < last"),
        ((6, 12), "outside the frames"),
    ],
)
def test_bad_frame_ranges_are_refused(drifting, frames, message):
    with pytest.raises(ValueError, match=message):
        track_points(drifting, [[5, 60, 60]], frames=frames)


@pytest.fixture(scope="module")
def corrected(drifting_tracks, drifting):
    """Point 5 moved at frame 12 by a pixel, tracked again from there."""
    _, result = drifting_tracks
    moved = result.position[5, 12] + [1.0, -0.5]
    again = retrack(result, drifting, 5, 12, moved)
    return result, moved, again


def test_retrack_changes_only_that_point_from_t_on(corrected):
    """Other points and the frames before t keep their vertices."""
    result, moved, again = corrected
    others = np.arange(len(result)) != 5
    for name in ("position", "score", "status", "refreshed"):
        before, after = getattr(result, name), getattr(again, name)
        np.testing.assert_array_equal(after[others], before[others])
        np.testing.assert_array_equal(after[5, :12], before[5, :12])
    np.testing.assert_array_equal(again.position[5, 12], moved)
    assert np.abs(again.position[5, 13:] - result.position[5, 13:]).min() > 0.3


def test_retrack_matches_tracking_from_the_corrected_vertex(
    corrected, drifting
):
    """From t on: the vertices of track_points given (t, position)."""
    _, moved, again = corrected
    direct = track_points(drifting, [[12, *moved]])
    for name in ("position", "score", "status", "refreshed"):
        np.testing.assert_array_equal(
            getattr(again, name)[5, 12:], getattr(direct, name)[0, 12:]
        )


def test_retrack_to_the_true_place_is_accurate(corrected, drifting):
    """Moved back onto the truth, the point is tracked within 0.02 px."""
    original, _, again = corrected
    p0 = original.points[5, 1:]
    truth = true_position(p0, 12, False)
    back = retrack(again, drifting, 5, 12, truth)
    assert back.ok[5].all()
    assert rms(errors(back, grid_points(), False)[5]) <= 0.02
    # The result it started from is not modified.
    assert np.abs(again.position[5, 12:] - back.position[5, 12:]).min() > 0.3


def test_retrack_before_the_first_vertex_goes_backwards_too(drifting):
    """A track that starts at frame 10, corrected at frame 5: tracked
    both ways from there, over the whole series."""
    p0 = np.array([60.0, 61.0])
    start = true_position(p0, 10, False)
    result = track_points(drifting, [[10, *start]], frames=(10, FRAMES - 1))
    assert not result.ok[0, :10].any()
    again = retrack(result, drifting, 0, 5, true_position(p0, 5, False))
    assert again.ok.all()
    assert rms(errors(again, p0[None], False)) <= 0.02


def test_retrack_at_the_last_frame(drifting_tracks, drifting):
    """Only the last vertex changes: it is where it was put."""
    _, result = drifting_tracks
    moved = result.position[2, -1] + 0.5
    again = retrack(result, drifting, 2, FRAMES - 1, moved)
    np.testing.assert_array_equal(again.position[2, -1], moved)
    np.testing.assert_array_equal(
        again.position[:, :-1], result.position[:, :-1]
    )


@pytest.mark.parametrize(
    ("point", "t", "position", "message"),
    [
        (16, 3, [60, 60], "point must lie"),
        (0, FRAMES, [60, 60], "outside the stack"),
        (0, 3, [60], "position has 1 coordinates"),
        (0, 3, [np.nan, 60], "position holds NaN"),
    ],
)
def test_retrack_refuses_what_does_not_fit(
    drifting_tracks, drifting, point, t, position, message
):
    _, result = drifting_tracks
    with pytest.raises(ValueError, match=message):
        retrack(result, drifting, point, t, position)
