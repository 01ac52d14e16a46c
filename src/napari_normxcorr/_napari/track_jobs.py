"""What the tracking workers run: `track_points` frame by frame, and one
point tracked again from a corrected vertex.

As in `jobs`, nothing here touches a layer, and each job takes the
``(inputs, points, guesses)`` of `jobs.start`: tracking predicts its own
search positions, so `guesses` are not used.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import Any

import numpy as np

from ..tracking._track import retrack, track_points
from ..tracking._tracks import TrackResult
from .jobs import MatchingFailed
from .session import RunInputs


class _Stopped(Exception):
    """Raised inside `track_points` (by its progress callback) to stop."""


def track_in_steps(
    inputs: RunInputs,
    points: np.ndarray,
    guesses: np.ndarray,
    *,
    keywords: dict[str, Any],
    stop: threading.Event,
) -> Generator[int, None, TrackResult | None]:
    """Track `points` (template pixels, time first) through the template
    stack, yielding once per frame done; return the result.

    `track_points` runs in a thread of its own and reports each frame, so
    that the worker can yield them (napari's progress bar) and `stop` can
    end it after the current frame: then None is returned.
    """
    steps: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    outcome: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if stop.is_set():
            raise _Stopped
        steps.put(done)

    def work() -> None:
        try:
            outcome["result"] = track_points(
                inputs.template, points, progress=progress, **keywords
            )
        except _Stopped:
            pass
        except Exception as error:
            outcome["error"] = error
        finally:
            steps.put(None)

    threading.Thread(target=work, name="tracking", daemon=True).start()
    while (done := steps.get()) is not None:
        yield done
    if "error" in outcome:
        error = outcome["error"]
        raise MatchingFailed(str(error)) from error
    return outcome.get("result")


def retrack_vertex(
    inputs: RunInputs,
    points: np.ndarray,
    guesses: np.ndarray,
    *,
    result: TrackResult,
    point: int,
    keywords: dict[str, Any],
) -> TrackResult:
    """`result` with point `point` tracked again from the corrected vertex
    ``points[0]`` = (t, position in template pixels)."""
    t, *position = points[0]
    try:
        return retrack(
            result,
            inputs.template,
            point,
            int(np.rint(t)),
            position,
            **keywords,
        )
    except Exception as error:
        raise MatchingFailed(str(error)) from error
