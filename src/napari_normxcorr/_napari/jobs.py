"""What the background workers run: the engine, in steps the GUI can follow.

Nothing here touches a layer: workers get plain arrays and return results
that the GUI thread applies (through the callbacks given to `start`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from ..matching._match import match_points
from ..matching._result import MatchResult, Surface
from ..matching._verdicts import judge_neighbours
from ..registration._transform import TransformFit
from .session import MatchSession, RunInputs

# Points matched per step of a full run: progress and cancel granularity
# (each step pays for a thread pool; 256 keeps that under a few percent).
CHUNK = 256


class MatchingFailed(Exception):
    """An error inside the worker, passed on to the user.

    superqt's workers swallow a RuntimeError without emitting ``errored``
    or ``finished``; re-raising every error as this type keeps them
    visible.
    """


def start(
    job: Callable[..., Any],
    inputs: RunInputs,
    points: np.ndarray,
    guesses: np.ndarray,
    *,
    session: MatchSession,
    on_result: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    on_finished: Callable[[], None],
    on_cancelled: Callable[[], None] | None = None,
    progress: dict[str, Any] | None = None,
) -> Any:
    """Run ``job(inputs, points, guesses)`` in a napari thread worker.

    The callbacks run on the GUI thread (`on_cancelled` when the worker
    is told to quit), as long as `session` is open: once it is closed the
    worker is told to quit and its callbacks, whose widgets are gone, are
    skipped. `progress` (napari's ``total`` and ``desc``) shows a
    progress bar for a generator job. Returns the started worker.
    """
    from napari.qt.threading import create_worker

    def while_open(callback: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            if not session.is_closed:
                callback(*args)

        return call

    worker = create_worker(
        job,
        inputs,
        points,
        guesses,
        _progress=progress,
        # Handled here, so the error is not raised again in the GUI.
        _connect={"errored": while_open(on_error)},
        _start_thread=False,
    )
    worker.returned.connect(while_open(on_result))
    worker.finished.connect(while_open(on_finished))
    if on_cancelled is not None:
        worker.aborted.connect(while_open(on_cancelled))
    session.closed.connect(worker.quit)
    worker.start()
    return worker


def no_data(inputs: RunInputs) -> dict[str, Any]:
    """The run's no-data masks as `match_points` keywords (none given:
    none passed, so that the plain path runs)."""
    masks = {
        "template_mask": inputs.template_mask,
        "image_mask": inputs.image_mask,
    }
    return {name: mask for name, mask in masks.items() if mask is not None}


def steps(count: int) -> int:
    """How many steps a full run of `count` points takes."""
    return max(1, int(np.ceil(count / CHUNK)))


def match_in_chunks(
    inputs: RunInputs, points: np.ndarray, guesses: np.ndarray
) -> Generator[int, None, MatchResult]:
    """Match chunk by chunk, yielding the points done; return the result
    with its neighbours judged over all of it."""
    parts = []
    for start in range(0, len(points), CHUNK):
        stop = start + CHUNK
        try:
            part = match_points(
                inputs.template,
                inputs.target,
                points[start:stop],
                image_points=guesses[start:stop],
                **inputs.options.part_keywords(),
                **no_data(inputs),
            )
        except Exception as error:
            raise MatchingFailed(str(error)) from error
        parts.append(part)
        yield stop
    result = MatchResult.concatenate(parts)
    # The neighbours judge each other over all the points, here rather
    # than on the GUI thread (tens of ms for 16 000 points).
    options = inputs.options
    judge_neighbours(
        result, options.max_neighbour_residual, len(options.search_radius)
    )
    return result


def match_and_surface(
    inputs: RunInputs, points: np.ndarray, guesses: np.ndarray
) -> tuple[MatchResult, Surface | None]:
    """Match a few edited points, and the surface of the last one."""
    try:
        part = match_points(
            inputs.template,
            inputs.target,
            points,
            image_points=guesses,
            keep_surfaces=True,
            **inputs.options.part_keywords(),
            **no_data(inputs),
        )
    except Exception as error:
        raise MatchingFailed(str(error)) from error
    try:
        surface = part.surface(len(part) - 1)
    except ValueError:
        surface = None
    return part, surface


def register_matches(
    inputs: RunInputs,
    points: np.ndarray,
    transform: np.ndarray,
    *,
    model: str,
    robust: bool,
) -> TransformFit:
    """Match `points` guided by `transform` (template pixels to target
    pixels) and refit, until the fit settles (the engine's ``register``).

    Returns the final fit; its ``matches`` are the guided matches, one row
    per point. Guided matching takes no masks: the run's no-data layers
    are not used here (NaN pixels still make their windows non-finite).
    """
    from ..registration._register import register

    try:
        return register(
            inputs.template,
            inputs.target,
            points,
            model=model,
            transform=transform,
            robust=robust,
            **inputs.options.as_keywords(),
        )
    except Exception as error:
        raise MatchingFailed(str(error)) from error
