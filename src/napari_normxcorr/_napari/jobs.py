"""What the background workers run: the engine, in steps the GUI can follow.

Nothing here touches a layer: workers get plain arrays and return results
that the GUI thread applies.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .._match import match_points
from .._result import MatchResult, Surface
from .session import RunInputs

# Points matched per step of a full run: progress and cancel granularity
# (each step pays for a thread pool; 256 keeps that under a few percent).
CHUNK = 256


class MatchingFailed(Exception):
    """An error inside the worker, passed on to the user.

    superqt's workers swallow a RuntimeError without emitting ``errored``
    or ``finished``; re-raising every error as this type keeps them
    visible.
    """


def steps(count: int) -> int:
    """How many steps a full run of `count` points takes."""
    return max(1, int(np.ceil(count / CHUNK)))


def match_in_chunks(
    inputs: RunInputs, points: np.ndarray, guesses: np.ndarray
) -> Generator[int, None, MatchResult]:
    """Match chunk by chunk, yielding the points done; return the result."""
    parts = []
    for start in range(0, len(points), CHUNK):
        stop = start + CHUNK
        try:
            part = match_points(
                inputs.template,
                inputs.target,
                points[start:stop],
                image_points=guesses[start:stop],
                **inputs.options.as_keywords(),
            )
        except Exception as error:
            raise MatchingFailed(str(error)) from error
        parts.append(part)
        yield stop
    return MatchResult.concatenate(parts)


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
            **inputs.options.as_keywords(),
        )
    except Exception as error:
        raise MatchingFailed(str(error)) from error
    try:
        surface = part.surface(len(part) - 1)
    except ValueError:
        surface = None
    return part, surface
