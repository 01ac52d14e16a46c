"""match_points on a dask.distributed cluster: tasks of many points each.

The points are sorted by position (plane, band of rows, column) and cut
into tasks of thousands of points, so that the windows of one task share
the chunks of the images' storage. Each image goes to the workers once,
by reference where it has storage (see :func:`~..io._cluster.ship`); the
workers read their own windows, run :func:`match_points` on their task
and send back a MatchResult without images. The client puts the rows
back in input order and gives the neighbour verdict once, on the whole
result, so that the numbers are those of a local run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core._arrays import as_image
from ..core._parallel import one_core
from ..core._validate import point_array
from ..core._variance import MAX_MAP_PIXELS
from ..io._cluster import (
    band_rows,
    checked_client,
    gather,
    input_order,
    opened_image,
    ship,
    task_points,
    task_rows,
)
from ._guided import apply_matrix
from ._result import MatchResult, Surface
from ._verdicts import judge_neighbours

logger = logging.getLogger(__name__)

# Arguments that are not passed on to the tasks as they are.
_SHIPPED = ("template_image", "image", "template_mask", "image_mask")
_NOT_FORWARDED = (
    *_SHIPPED,
    *("points", "image_points", "transform"),
    *("client", "progress", "max_neighbour_residual"),
)

Match = Callable[..., MatchResult]


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
    client = checked_client(arguments["client"], "match_points")
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
    size = task_points(len(points), client)
    if _maps_possible(arguments, ndim):
        size = len(points)
    tasks = task_rows(points, ndim, size, band=band_rows(arguments["image"]))
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
    parts: list[MatchResult] = gather(
        client, futures, tasks, arguments["progress"]
    )
    result = assemble(parts, tasks, context)
    return judge_neighbours(result, arguments["max_neighbour_residual"], ndim)


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


def assemble(
    parts: list[MatchResult], tasks: list[np.ndarray], context: MatchResult
) -> MatchResult:
    """One result from the tasks' parts, rows back in input order.

    `context` (the empty local run) lends its Matcher, so that surfaces
    are recomputed from the caller's images.
    """
    result = MatchResult.concatenate(parts).take(input_order(parts, tasks))
    result._context = context._context
    if any(part._surfaces for part in parts):
        result._surfaces = _surfaces(parts, tasks)
    return result


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
