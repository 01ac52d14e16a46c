"""match_points and track_points on a dask.distributed cluster: tasks of
many points each.

The points are sorted by position (plane, band of rows, column) and cut
into tasks of thousands of points, so that the windows of one task share
the chunks of the images' storage. Each image goes to the workers once,
by reference where it has storage (see :func:`ship`); the workers read
their own windows, run :func:`match_points` on their task and send back a
MatchResult without images. The client puts the rows back in input order
and gives the neighbour verdict once, on the whole result, so that the
numbers are those of a local run.

track_points goes the same way: a point is tracked alone, so a task
tracks its points through the whole series and sends back their
vertices; the client puts the rows back in input order, and the track
ids follow from the whole result.
"""

from __future__ import annotations

import logging
import mmap
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from ._arrays import LazyArray, as_image
from ._estimators import apply_matrix
from ._parallel import one_core
from ._result import MatchResult, Surface
from ._tracks import VERTEX_FIELDS, TrackResult
from ._validate import point_array
from ._variance import MAX_MAP_PIXELS
from ._verdicts import judge_neighbours

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install napari-normxcorr[distributed]"
# Points per task: at least enough to bury the scheduler's ~1 ms per
# task, at most what keeps one task's windows and result small.
MIN_TASK_POINTS = 256
MAX_TASK_POINTS = 8192
# Tasks per worker thread: enough to balance the load (and to lose
# little when a worker dies), few enough for the scheduler.
TASKS_PER_THREAD = 4
# A tracking task's vertices (points times frames) stay below this, so
# that its result (about 40 bytes a vertex) stays small.
MAX_TASK_VERTICES = 2**21
# In-memory images up to this size are copied to every worker at once;
# larger ones go to one worker and travel between workers on demand.
BROADCAST_BYTES = 2**26
# Rows of a band of the sort order when the storage has no chunks.
BAND_ROWS = 256
# For the workers' allocator. dask's nanny sets MALLOC_TRIM_THRESHOLD_ so
# that workers give memory back; setting it also freezes glibc's mmap
# threshold at 128 KiB, so every larger array is mapped afresh and
# page-faults on each use: a task ran 2.3 times slower. Arrays up to
# 32 MiB (the threshold's maximum) then come from the heap, and freed
# memory goes back beyond 64 MiB.
WORKER_ENVIRON = {
    "MALLOC_MMAP_THRESHOLD_": 2**25,
    "MALLOC_TRIM_THRESHOLD_": 2**26,
}
# Arguments that are not passed on to the tasks as they are.
_SHIPPED = ("template_image", "image", "template_mask", "image_mask")
_NOT_FORWARDED = (
    *_SHIPPED,
    *("points", "image_points", "transform"),
    *("client", "progress", "max_neighbour_residual"),
)

Match = Callable[..., MatchResult]
Track = Callable[..., TrackResult]
Part = TypeVar("Part")


def match_on_cluster(match: Match, arguments: dict[str, Any]) -> MatchResult:
    """Run `match` (match_points) with `arguments` on their ``client``.

    Parameters
    ----------
    match : callable
        :func:`match_points`; handed over by its caller so that this
        module needs no import of it (it runs on the workers).
    arguments : dict
        Every argument of the match_points call, ``client`` included.

    Returns
    -------
    MatchResult
        One row per point, in input order, equal to the local run's; its
        surfaces are recomputed locally from the caller's images.
    """
    client = _checked_client(arguments["client"], "match_points")
    points, guesses, context = _validated(match, arguments)
    if len(points) == 0:
        return context
    ndim = _matcher(context).ndim
    options = {k: v for k, v in arguments.items() if k not in _NOT_FORWARDED}
    # The neighbour test looks across tasks: given once, at the end.
    options["max_neighbour_residual"] = np.inf
    matrix = getattr(_matcher(context), "matrix", None)
    if matrix is not None:
        options["transform"] = matrix  # a fit would ship its matches
    images = {
        name: ship(client, arguments[name])
        for name in _SHIPPED
        if arguments[name] is not None
    }
    size = _task_points(len(points), client)
    if _maps_possible(arguments, ndim):
        size = len(points)
    tasks = task_rows(points, ndim, size, band=_band_rows(arguments["image"]))
    logger.info("%d points in %d tasks", len(points), len(tasks))
    futures = [
        client.submit(
            run_task,
            match,
            images,
            points[rows],
            guesses[rows],
            options,
            pure=False,
        )
        for rows in tasks
    ]
    parts: list[MatchResult] = _gather(
        client, futures, tasks, arguments["progress"]
    )
    result = assemble(parts, tasks, context)
    return judge_neighbours(result, arguments["max_neighbour_residual"], ndim)


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A Client of a LocalCluster of `workers` processes of one thread
    each (a task uses one core), with WORKER_ENVIRON; closed after."""
    import dask
    from distributed import Client, LocalCluster

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", {})
    environ = {**environ, **WORKER_ENVIRON}
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ}),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _checked_client(client: object, caller: str) -> Any:
    """`client` (of a call to `caller`) if it is a distributed.Client,
    else raise."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(
            f"{caller}(client=...) needs dask.distributed: {INSTALL_HINT}"
        ) from error
    if not isinstance(client, distributed.Client):
        raise ValueError(
            f"client must be a distributed.Client, got {client!r}."
        )
    return client


def _validated(
    match: Match, arguments: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, MatchResult]:
    """The points, their guesses, and an empty local run.

    The empty run checks every argument as the local run does, reading
    no pixel, and its Matcher recomputes surfaces for the result.
    """
    ndim = as_image("image", arguments["image"]).ndim
    points = point_array("points", arguments["points"], ndim)
    given = arguments["image_points"]
    guesses = (
        None if given is None else point_array("image_points", given, ndim)
    )
    if guesses is not None and guesses.shape != points.shape:
        raise ValueError(
            f"image_points has shape {guesses.shape} but points has shape "
            f"{points.shape}; give one guess per point."
        )
    checks = dict(arguments, client=None, progress=None)
    checks["points"] = points[:0]
    checks["image_points"] = None if guesses is None else guesses[:0]
    empty = match(**checks)
    if guesses is None:
        guesses = _guesses(points, empty)
    return points, guesses, empty


def _guesses(points: np.ndarray, empty: MatchResult) -> np.ndarray:
    """The starting guesses match_points takes: the points, mapped
    through the transform when there is one (for all points at once, as
    the local run maps them)."""
    guesses = points.copy()
    matcher = _matcher(empty)
    matrix = getattr(matcher, "matrix", None)
    if matrix is not None:
        d = matcher.ndim
        guesses[:, -d:] = apply_matrix(matrix, points[:, -d:])
    return guesses


def _matcher(empty: MatchResult) -> Any:
    """The Matcher behind a local run's result (its images, radii)."""
    if empty._context is None:
        raise RuntimeError("match_points returned a result without images")
    return empty._context


def _task_points(count: int, client: Any) -> int:
    """Points per task for `count` points on the cluster of `client`."""
    threads = max(1, sum(client.nthreads().values()))
    size = -(-count // (TASKS_PER_THREAD * threads))
    return int(np.clip(size, MIN_TASK_POINTS, MAX_TASK_POINTS))


def _maps_possible(arguments: dict[str, Any], ndim: int) -> bool:
    """Whether a local run might build variance maps of whole planes.

    It does for in-memory planes of up to MAX_MAP_PIXELS when its
    windows cover a plane, and a batch of windows takes the map path
    only if all of them have a map: its numbers then depend on which
    windows share a batch, across planes. Only the whole run in one
    task gives the same numbers.
    """
    return any(
        isinstance(arguments[name], np.ndarray)
        and np.prod(arguments[name].shape[-ndim:]) <= MAX_MAP_PIXELS
        for name in ("template_image", "image")
    )


def _band_rows(image: Any) -> int:
    """Height of the bands the points are sorted in: the storage's chunk
    rows, so that a task's windows fall in few chunks."""
    chunks = getattr(image, "chunks", None)
    if isinstance(chunks, tuple) and len(chunks) >= 2:
        rows = chunks[-2]
        rows = max(rows) if isinstance(rows, tuple) else rows
        return max(int(rows), 1)
    return BAND_ROWS


def task_rows(
    points: np.ndarray,
    ndim: int,
    size: int,
    *,
    band: int = BAND_ROWS,
) -> list[np.ndarray]:
    """Rows of `points` per task, grouped by position.

    Parameters
    ----------
    points : (N, D) ndarray
        Points, the last `ndim` coordinates matched.
    ndim : int
        Number of matched axes.
    size : int
        Points per task (about).
    band : int, optional
        Rows per band: points sort by plane, band of rows, then column.

    Returns
    -------
    list of ndarray of int
        Each row of `points` in exactly one task.
    """
    # Non-finite coordinates sort together; such rows match nowhere.
    values = np.nan_to_num(points, nan=-1.0, posinf=-1.0, neginf=-1.0)
    planes = np.rint(values[:, :-ndim])
    bands = np.floor(values[:, -ndim:-1] / band)
    keys = [values[:, -1], *bands.T[::-1], *planes.T[::-1]]
    order = np.lexsort(keys)
    return np.array_split(order, -(-len(points) // size))


def _gather(
    client: Any,
    futures: list,
    tasks: list[np.ndarray],
    progress: Callable[[int, int], None] | None,
) -> list[Part]:
    """The results of `futures` in task order, reporting points done.

    A worker that dies has its tasks rerun elsewhere by the scheduler:
    each future still gives one result.
    """
    from distributed import as_completed

    index = {future.key: k for k, future in enumerate(futures)}
    parts: list[Part | None] = [None] * len(futures)
    total, done = sum(len(rows) for rows in tasks), 0
    try:
        for future in as_completed(futures):
            k = index[future.key]
            parts[k] = future.result()
            done += len(tasks[k])
            if progress is not None:
                progress(done, total)
    finally:
        client.cancel([f for f in futures if not f.done()])
    return [part for part in parts if part is not None]


def assemble(
    parts: list[MatchResult], tasks: list[np.ndarray], context: MatchResult
) -> MatchResult:
    """One result from the tasks' parts, rows back in input order.

    `context` (the empty local run) lends its Matcher, so that surfaces
    are recomputed from the caller's images.
    """
    result = MatchResult.concatenate(parts).take(_input_order(parts, tasks))
    result._context = context._context
    if any(part._surfaces for part in parts):
        result._surfaces = _surfaces(parts, tasks)
    return result


def _input_order(parts: list[Any], tasks: list[np.ndarray]) -> np.ndarray:
    """Where each input row is in the tasks' parts, one after another;
    raises unless each part has one row per point of its task."""
    for part, rows in zip(parts, tasks, strict=True):
        if len(part) != len(rows):
            raise RuntimeError(
                f"a task returned {len(part)} rows for {len(rows)} points"
            )
    order = np.concatenate(tasks)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse


def _surfaces(
    parts: list[MatchResult], tasks: list[np.ndarray]
) -> dict[int, Surface]:
    """Kept surfaces of every part, by row of the whole result."""
    return {
        int(rows[k]): surface
        for part, rows in zip(parts, tasks)
        for k, surface in (part._surfaces or {}).items()
    }


def run_task(
    match: Match,
    images: dict[str, Any],
    points: np.ndarray,
    guesses: np.ndarray,
    options: dict[str, Any],
) -> MatchResult:
    """Body of one task, on a worker: match `points`, drop the images.

    `images` hold what :func:`ship` sent; each is opened here for reading
    windows (chunks decoded once per task).
    """
    opened = {name: opened_image(value) for name, value in images.items()}
    with one_core():
        result = match(
            opened.pop("template_image"),
            opened.pop("image"),
            points,
            image_points=guesses,
            **opened,
            **options,
        )
    # The result travels back: without the Matcher and its images.
    result._context = None
    return result


def track_on_cluster(
    track: Track,
    arguments: dict[str, Any],
    stack: LazyArray,
    points: np.ndarray,
) -> TrackResult:
    """Run `track` (track_points) with `arguments` on their ``client``.

    Parameters
    ----------
    track : callable
        :func:`track_points`; handed over by its caller so that this
        module needs no import of it (it runs on the workers).
    arguments : dict
        Every argument of the track_points call, ``client`` included,
        already checked.
    stack : LazyArray
        The checked stack, for the result (the tasks get
        ``arguments['stack']`` as given).
    points : (N, 1 + D) ndarray
        The checked points.

    Returns
    -------
    TrackResult
        One row per point, in input order, equal to the local run's.
    """
    client = _checked_client(arguments["client"], "track_points")
    options = {
        k: v
        for k, v in arguments.items()
        if k not in ("stack", "points", "client", "progress")
    }
    if len(points) == 0:
        return track(stack, points, **options)
    shipped = _ship_stack(client, arguments["stack"])
    frames = stack.shape[0]
    size = _task_points(len(points), client)
    size = max(1, min(size, MAX_TASK_VERTICES // frames))
    # Grouped by where they are in a frame (plane or depth, band of
    # rows, column), not by the frame they are given in.
    band = _band_rows(arguments["stack"])
    tasks = task_rows(points[:, 1:], 2, size, band=band)
    logger.info("%d points in %d tracking tasks", len(points), len(tasks))
    futures = [
        client.submit(
            run_track_task, track, shipped, points[rows], options, pure=False
        )
        for rows in tasks
    ]
    parts: list[TrackResult] = _gather(
        client, futures, tasks, arguments["progress"]
    )
    return assemble_tracks(parts, tasks, stack)


def _ship_stack(client: Any, stack: Any) -> Any:
    """`stack` sent to the workers by :func:`ship`: a list of frames
    frame by frame."""
    if isinstance(stack, list | tuple):
        return [ship(client, frame) for frame in stack]
    return ship(client, stack)


def run_track_task(
    track: Track,
    shipped: Any,
    points: np.ndarray,
    options: dict[str, Any],
) -> TrackResult:
    """Body of one tracking task, on a worker: track `points` through the
    stack that :func:`ship` sent, drop the stack."""
    if isinstance(shipped, list):
        stack = [opened_image(frame) for frame in shipped]
    else:
        stack = opened_image(shipped)
    with one_core():
        result = track(stack, points, **options)
    # The result travels back: without the stack.
    result.stack = None
    return result


def assemble_tracks(
    parts: list[TrackResult], tasks: list[np.ndarray], stack: LazyArray
) -> TrackResult:
    """One TrackResult from the tasks' parts, rows back in input order.

    Only the per-point arrays are assembled: the track ids and their
    graph follow from the statuses of the whole result.
    """
    inverse = _input_order(parts, tasks)
    arrays = {
        name: np.concatenate([getattr(part, name) for part in parts])[inverse]
        for name in ("points", *VERTEX_FIELDS)
    }
    return TrackResult(**arrays, stack=stack)


@dataclass(frozen=True)
class MemmapFile:
    """A numpy memmap by reference: the file, reopened read-only."""

    filename: str
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    order: Literal["C", "F"]

    def open(self) -> np.memmap:
        return np.memmap(
            self.filename,
            self.dtype,
            mode="r",
            offset=self.offset,
            shape=self.shape,
            order=self.order,
        )


@dataclass(frozen=True)
class Shipped:
    """An image as the workers receive it (a plain holder: scatter keeps
    it as one object, whatever it holds)."""

    value: Any


def ship(client: Any, image: Any) -> Any:
    """Send `image` to the workers once; returns what tasks take.

    - A numpy memmap of a whole file goes as a reference to the file.
    - A numpy array is scattered: to every worker at once up to
      BROADCAST_BYTES, else to one (the others fetch it once each).
    - Anything else (zarr, dask, h5py-like arrays) is scattered as it
      pickles: zarr arrays and dask arrays read from storage pickle as
      references to it (a zarr array in memory, or a dask array built
      from a numpy array, carries its data along).
    """
    if (
        isinstance(image, np.memmap)
        and isinstance(image.base, mmap.mmap)
        and image.filename is not None
    ):
        order: Literal["C", "F"] = "C"
        if not image.flags.c_contiguous:
            order = "F"
        return MemmapFile(
            image.filename, image.dtype, image.shape, image.offset, order
        )
    if isinstance(image, np.ndarray):
        small = image.nbytes <= BROADCAST_BYTES
        return _scatter(client, image, broadcast=small)
    size = len(pickle.dumps(image))
    if size > BROADCAST_BYTES:
        logger.warning("%s pickles to %d bytes", type(image).__name__, size)
    return _scatter(client, image, broadcast=True)


def _scatter(client: Any, image: Any, *, broadcast: bool) -> Any:
    """A future of `image` (wrapped in Shipped) on the workers.

    Under a key of its own (not the data's hash): the same image sent
    again by the next run would get the key the scheduler is still
    releasing from the last, and its tasks would be cancelled for lost
    dependencies (dask/distributed#8576); nor is the image hashed.
    """
    return client.scatter(Shipped(image), broadcast=broadcast, hash=False)


def opened_image(value: Any) -> Any:
    """What a task reads windows from, given what `ship` sent (the engine
    keeps the chunks it decodes, see `_chunk_cache`)."""
    if isinstance(value, MemmapFile):
        return value.open()
    image = value.value
    if hasattr(image, "dask"):
        return SyncReads(image)
    return image


class SyncReads:
    """A dask array whose windows are computed in the calling thread.

    Inside a task, a window is a tiny graph: the worker's own thread
    computes it, rather than a new round trip through the scheduler.
    """

    def __init__(self, array: Any):
        self.array = array
        self.shape, self.dtype = tuple(array.shape), array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.array[index].compute(scheduler="sync"))
