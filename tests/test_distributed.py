"""match_points and track_points on a real dask.distributed cluster: same
rows, same numbers.

One LocalCluster of two worker processes serves the module; nothing is
mocked. Task sizes are lowered (monkeypatch) so that small runs still
make several tasks.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from scipy import ndimage

from napari_normxcorr import match_points, track_points
from napari_normxcorr.cli import main
from napari_normxcorr.io import _cluster
from napari_normxcorr.matching._result import ROW_FIELDS
from napari_normxcorr.tracking._tracks import VERTEX_FIELDS

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

RADII = {"template_radius": 7, "search_radius": 16}
# Small windows for short runs; a high refresh score, so that references
# are refreshed along the tracks too.
TRACKING = {"template_radius": 6, "search_radius": 10, "refresh_score": 0.99}


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each, closed after the module."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture
def small_tasks(monkeypatch):
    """Tasks of 100-300 points, so that a few thousand make many."""
    monkeypatch.setattr(_cluster, "MIN_TASK_POINTS", 100)
    monkeypatch.setattr(_cluster, "MAX_TASK_POINTS", 300)


@pytest.fixture
def small_track_tasks(monkeypatch):
    """Tracking tasks of 8-16 points, so that a hundred make many."""
    monkeypatch.setattr(_cluster, "MIN_TASK_POINTS", 8)
    monkeypatch.setattr(_cluster, "MAX_TASK_POINTS", 16)


def textured_pair(shape, shift=(2.4, -1.7), seed=0):
    """A smooth random image and its shifted, noisy copy (float32)."""
    rng = np.random.default_rng(seed)
    template = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    moved = ndimage.shift(template, (0,) * (len(shape) - 2) + shift)
    moved += 0.02 * rng.normal(size=shape)
    return template.astype(np.float32), moved.astype(np.float32)


def random_points(count, shape, seed=1):
    """Points in random order over the matched axes (and planes), a few
    of them outside the image."""
    rng = np.random.default_rng(seed)
    high = np.array(shape, dtype=float) - 1
    points = rng.uniform(-3, high + 3, size=(count, len(shape)))
    points[:, :-2] = np.rint(np.clip(points[:, :-2], 0, high[:-2]))
    return points


def assert_same(local, cluster):
    """Every column equal, row for row (NaN equal to NaN)."""
    assert len(local) == len(cluster)
    for name in ROW_FIELDS:
        np.testing.assert_array_equal(
            getattr(cluster, name), getattr(local, name), err_msg=name
        )


def to_zarr(path, values, chunks):
    """`values` stored as zarr at `path`, opened read-only."""
    array = zarr.open(
        str(path), mode="w", shape=values.shape, chunks=chunks, dtype="f4"
    )
    array[...] = values
    return zarr.open(str(path), mode="r")


def test_numpy_images_match_the_local_run(cluster):
    """In-memory images: rows in input order, numbers identical."""
    template, image = textured_pair((160, 200))
    points = random_points(600, template.shape)
    local = match_points(template, image, points, **RADII)
    found = match_points(template, image, points, client=cluster, **RADII)
    assert_same(local, found)
    np.testing.assert_array_equal(found.points, points)
    assert (found.status == "ok").sum() > 400


def test_the_same_images_matched_again_at_once(cluster):
    """A second run on the same in-memory images, right after the first:
    its scattered copies do not collide with the first run's, being
    released."""
    template, image = textured_pair((96, 96))
    points = random_points(200, template.shape)
    first = match_points(template, image, points, client=cluster, **RADII)
    again = match_points(template, image, points, client=cluster, **RADII)
    assert_same(first, again)


def test_zarr_images_match_the_local_run(cluster, small_tasks, tmp_path):
    """zarr arrays are read by the workers; progress counts the points
    of each finished task; surfaces are recomputed on the client."""
    values = textured_pair((192, 256))
    template, image = (
        to_zarr(tmp_path / f"{name}.zarr", v, (64, 64))
        for name, v in zip(("template", "image"), values)
    )
    points = random_points(700, template.shape)
    local = match_points(template, image, points, **RADII)
    calls = []
    found = match_points(
        template,
        image,
        points,
        client=cluster,
        progress=lambda done, total: calls.append((done, total)),
        **RADII,
    )
    assert_same(local, found)
    # 700 points, 4 tasks per thread on 2 threads: 7 tasks of 100.
    assert len(calls) == 7
    assert calls[-1] == (700, 700)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    row = int(np.flatnonzero(found.status == "ok")[0])
    np.testing.assert_array_equal(
        found.surface(row).values, local.surface(row).values
    )


def test_tiled_tiffs_are_read_by_the_workers(cluster, small_tasks, tmp_path):
    """A tiled TIFF goes to the workers as its path; they read its tiles."""
    import tifffile

    from napari_normxcorr.io._files import TiffTiles

    values = textured_pair((192, 256))
    for name, v in zip(("template", "image"), values):
        tifffile.imwrite(tmp_path / f"{name}.tif", v, tile=(64, 64))
    template, image = (
        TiffTiles(str(tmp_path / f"{name}.tif"))
        for name in ("template", "image")
    )
    points = random_points(300, template.shape)
    local = match_points(template, image, points, **RADII)
    found = match_points(template, image, points, client=cluster, **RADII)
    assert_same(local, found)
    assert (found.status == "ok").sum() > 200


def test_a_stack_matches_the_local_run(cluster, small_tasks):
    """(t, row, col) points on an in-memory stack: same rows, same
    numbers (its small planes get variance maps: one task)."""
    template, image = textured_pair((3, 96, 96))
    points = random_points(450, template.shape)
    local = match_points(template, image, points, **RADII)
    found = match_points(template, image, points, client=cluster, **RADII)
    assert_same(local, found)
    assert set(np.unique(found.points[:, 0])) == {0.0, 1.0, 2.0}


def test_the_neighbour_verdict_is_given_on_the_whole_result(cluster):
    """Outliers are judged across tasks, with the caller's threshold."""
    template, image = textured_pair((128, 128))
    points = np.stack(
        np.meshgrid(np.arange(10, 118, 6.0), np.arange(10, 118, 6.0)), -1
    ).reshape(-1, 2)
    options = dict(RADII, max_neighbour_residual=0.5)
    local = match_points(template, image, points, **options)
    found = match_points(template, image, points, client=cluster, **options)
    assert_same(local, found)
    assert np.isfinite(found.neighbour_residual).sum() > 100


def test_a_worker_killed_mid_run_loses_no_row(cluster, small_tasks, tmp_path):
    """A worker process dies after the first task: its tasks run again
    elsewhere and the result is complete and identical to the local run.
    """
    values = textured_pair((3, 64, 160))
    template, image = (
        to_zarr(tmp_path / f"{name}.zarr", v, (1, 64, 64))
        for name, v in zip(("template", "image"), values)
    )
    points = random_points(1200, template.shape)
    local = match_points(template, image, points, **RADII)
    before = cluster.run(os.getpid)
    killed = []

    def kill_a_busy_worker(done, total):
        if killed:
            return
        busy = [w for w, keys in cluster.processing().items() if keys]
        killed.append(before[busy[0]])
        os.kill(killed[0], signal.SIGKILL)

    found = match_points(
        template,
        image,
        points,
        client=cluster,
        progress=kill_a_busy_worker,
        **RADII,
    )
    assert killed
    assert_same(local, found)
    cluster.wait_for_workers(2, timeout=60)
    assert killed[0] not in cluster.run(os.getpid).values()


def test_a_client_that_is_not_one_is_refused():
    template, image = textured_pair((64, 64))
    with pytest.raises(ValueError, match=r"distributed\.Client"):
        match_points(template, image, [[30, 30]], client="tcp://x:8786")


def test_tracking_with_a_client_that_is_not_one_is_refused():
    stack = moving_series(frames=3)
    with pytest.raises(ValueError, match=r"distributed\.Client"):
        track_points(stack, [[0, 40, 60]], client="tcp://x:8786")


def test_the_cli_on_local_workers_writes_the_same_csv(tmp_path):
    """`match --workers 2` on zarr inputs: the CSV of the local run."""
    values = textured_pair((128, 160))
    paths = []
    for name, v in zip(("template", "image"), values):
        paths.append(str(tmp_path / f"{name}.zarr"))
        to_zarr(paths[-1], v, (64, 64))
    points = random_points(300, values[0].shape)
    csv = tmp_path / "points.csv"
    rows = [f"{i},{r},{c}" for i, (r, c) in enumerate(points)]
    csv.write_text("index,axis-0,axis-1\n" + "\n".join(rows) + "\n")
    common = [*paths, str(csv), "--template-radius", "7"]
    common += ["--search-radius", "16"]
    out_local, out_cluster = tmp_path / "local.csv", tmp_path / "cluster.csv"
    assert main(["match", *common, "-o", str(out_local)]) == 0
    command = ["match", *common, "-o", str(out_cluster), "--workers", "2"]
    assert main(command) == 0
    assert out_cluster.read_text() == out_local.read_text()


def test_the_cli_refuses_both_scheduler_and_workers(tmp_path):
    with pytest.raises(SystemExit):
        main(
            ["match", "a.npy", "b.npy", "p.csv", "-o", str(tmp_path / "o")]
            + ["--workers", "2", "--scheduler", "tcp://x:1"]
        )


def moving_series(frames=12, shape=(96, 128), seed=0):
    """(frames, *shape) float32: a smooth texture that turns, zooms and
    swings back and forth a little more each frame (points near the
    border leave and come back), with noise."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    base /= base.std()
    centre = np.asarray(shape) / 2
    stack = np.empty((frames, *shape), np.float32)
    for t in range(frames):
        a = np.deg2rad(0.8 * t)
        turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        swing = np.array([5 * np.sin(t / 2), -3 * np.sin(t / 3)])
        matrix = turn / (1 + 0.005 * t)
        offset = centre - matrix @ (centre + swing)
        stack[t] = ndimage.affine_transform(base, matrix, offset, order=3)
        stack[t] += 0.1 * rng.normal(size=shape)
    return stack


def track_starts(count, stack, seed=1, frames=None):
    """(t, row, col) points in random order: random frames (within
    `frames`), anywhere in the frame (some too close to the border)."""
    rng = np.random.default_rng(seed)
    first, last = frames or (0, stack.shape[0] - 1)
    high = np.asarray(stack.shape[1:]) - 1
    return np.column_stack(
        [
            rng.integers(first, last + 1, count),
            rng.uniform(0, high, (count, 2)),
        ]
    )


def assert_same_tracks(local, found):
    """Every array equal, point for point, and so the same track ids and
    graph."""
    for name in ("points", *VERTEX_FIELDS):
        np.testing.assert_array_equal(
            getattr(found, name), getattr(local, name), err_msg=name
        )
    ids, graph = found.track_ids()
    local_ids, local_graph = local.track_ids()
    np.testing.assert_array_equal(ids, local_ids)
    assert graph == local_graph


@pytest.fixture(scope="module")
def moving():
    """A numpy series, points on it, and their local tracks."""
    stack = moving_series()
    points = track_starts(72, stack)
    return stack, points, track_points(stack, points, **TRACKING)


def test_tracks_of_a_numpy_stack_match_the_local_run(
    cluster, small_track_tasks, moving
):
    """Every vertex, track id and link as in the local run; progress
    counts the points of each finished task."""
    stack, points, local = moving
    calls = []
    found = track_points(
        stack,
        points,
        client=cluster,
        progress=lambda done, total: calls.append((done, total)),
        **TRACKING,
    )
    assert_same_tracks(local, found)
    assert found.stack is not None and found.stack.shape == stack.shape
    # 72 points, 4 tasks per thread on 2 threads: 8 tasks of 9.
    assert len(calls) == 8 and calls[-1] == (72, 72)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    # The run is worth comparing: tracks found, lost, refreshed.
    assert (local.status == "ok").sum() > 200
    assert (local.status == "lost").sum() > 100
    assert local.refreshed.sum() > 20


def test_track_rows_line_up_with_points_in_any_order(
    cluster, small_track_tasks, moving
):
    """Shuffled points: row k is the local run's track of point k."""
    stack, points, local = moving
    order = np.random.default_rng(3).permutation(len(points))
    found = track_points(stack, points[order], client=cluster, **TRACKING)
    for name in ("points", *VERTEX_FIELDS):
        np.testing.assert_array_equal(
            getattr(found, name), getattr(local, name)[order], err_msg=name
        )


def test_tracks_of_a_zarr_stack_match_the_local_run(
    cluster, small_track_tasks, tmp_path
):
    """The workers read a zarr stack themselves; a frame range and
    reference='previous' are passed on to the tasks."""
    stack = to_zarr(tmp_path / "stack.zarr", moving_series(), (1, 48, 64))
    points = track_starts(60, stack, seed=4, frames=(2, 9))
    options = dict(TRACKING, frames=(2, 9), reference="previous")
    local = track_points(stack, points, **options)
    found = track_points(stack, points, client=cluster, **options)
    assert_same_tracks(local, found)
    assert (found.status[:, [0, 1, 10, 11]] == "lost").all()


def test_a_worker_killed_mid_tracking_loses_no_point(
    cluster, small_track_tasks, tmp_path
):
    """A worker process dies after the first task: its tasks run again
    elsewhere, and the tracks are complete and identical to the local
    run's."""
    stack = to_zarr(tmp_path / "stack.zarr", moving_series(), (1, 48, 64))
    points = track_starts(128, stack, seed=5)
    local = track_points(stack, points, **TRACKING)
    before = cluster.run(os.getpid)
    killed = []

    def kill_a_busy_worker(done, total):
        if killed:
            return
        busy = [w for w, keys in cluster.processing().items() if keys]
        killed.append(before[busy[0]])
        os.kill(killed[0], signal.SIGKILL)

    found = track_points(
        stack, points, client=cluster, progress=kill_a_busy_worker, **TRACKING
    )
    assert killed
    assert_same_tracks(local, found)
    # The nanny starts a new process, which imports numpy, scipy and us:
    # on a busy machine that has taken over a minute.
    cluster.wait_for_workers(2, timeout=180)
    assert killed[0] not in cluster.run(os.getpid).values()


def test_the_cli_tracks_on_local_workers_into_the_same_csv(tmp_path):
    """`track --workers 2` on a zarr stack: the CSV of the local run."""
    path = tmp_path / "stack.zarr"
    stack = to_zarr(path, moving_series(frames=8), (1, 48, 64))
    points = track_starts(40, stack, seed=6)
    csv = tmp_path / "points.csv"
    rows = [f"{i},{t},{r},{c}" for i, (t, r, c) in enumerate(points)]
    csv.write_text("index,axis-0,axis-1,axis-2\n" + "\n".join(rows) + "\n")
    common = ["track", str(path), str(csv), "--template-radius", "6"]
    common += ["--search-radius", "10"]
    out_local, out_cluster = tmp_path / "local.csv", tmp_path / "cluster.csv"
    assert main([*common, "-o", str(out_local)]) == 0
    assert main([*common, "-o", str(out_cluster), "--workers", "2"]) == 0
    assert out_cluster.read_text() == out_local.read_text()
