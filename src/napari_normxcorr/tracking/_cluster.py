"""track_points on a dask.distributed cluster: tasks of many points each.

A point is tracked alone, so a task tracks its points through the whole
series and sends back their vertices; the client puts the rows back in
input order, and the track ids follow from the whole result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core._arrays import LazyArray
from ..core._parallel import one_core
from ..io._cluster import (
    MAX_TASK_VERTICES,
    band_rows,
    checked_client,
    gather,
    input_order,
    opened_image,
    ship,
    task_points,
    task_rows,
)
from ._tracks import VERTEX_FIELDS, TrackResult

logger = logging.getLogger(__name__)

Track = Callable[..., TrackResult]


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
    client = checked_client(arguments["client"], "track_points")
    options = {
        k: v
        for k, v in arguments.items()
        if k not in ("stack", "points", "client", "progress")
    }
    if len(points) == 0:
        return track(stack, points, **options)
    shipped = _ship_stack(client, arguments["stack"])
    frames = stack.shape[0]
    size = task_points(len(points), client)
    size = max(1, min(size, MAX_TASK_VERTICES // frames))
    # Grouped by where they are in a frame (plane or depth, band of
    # rows, column), not by the frame they are given in.
    band = band_rows(arguments["stack"])
    tasks = task_rows(points[:, 1:], 2, size, band=band)
    logger.info("%d points in %d tracking tasks", len(points), len(tasks))
    futures = [
        client.submit(
            run_track_task, track, shipped, points[rows], options, pure=False
        )
        for rows in tasks
    ]
    parts: list[TrackResult] = gather(
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
    inverse = input_order(parts, tasks)
    arrays = {
        name: np.concatenate([getattr(part, name) for part in parts])[inverse]
        for name in ("points", *VERTEX_FIELDS)
    }
    return TrackResult(**arrays, stack=stack)
