"""The plumbing of a dask.distributed cluster: images sent to the workers
once, points cut into tasks by position, results gathered.

The points are sorted by position (plane, band of rows, column) and cut
into tasks of thousands of points, so that the windows of one task share
the chunks of the images' storage. Each image goes to the workers once,
by reference where it has storage (see :func:`ship`), and the workers
read their own windows. ``matching._cluster`` and ``tracking._cluster``
run match_points and track_points this way.
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
Part = TypeVar("Part")


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


def checked_client(client: object, caller: str) -> Any:
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
    if client.status in ("closing", "closed") or client.scheduler is None:
        raise ValueError(
            f"client is {client.status}: give a Client that is connected "
            "to its cluster (a closed one cannot run tasks)."
        )
    return client


def task_points(count: int, client: Any) -> int:
    """Points per task for `count` points on the cluster of `client`."""
    threads = max(1, sum(client.nthreads().values()))
    size = -(-count // (TASKS_PER_THREAD * threads))
    return int(np.clip(size, MIN_TASK_POINTS, MAX_TASK_POINTS))


def band_rows(image: Any) -> int:
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


def gather(
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


def input_order(parts: list[Any], tasks: list[np.ndarray]) -> np.ndarray:
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
