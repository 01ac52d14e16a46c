"""Advice after a run: when many peaks sit on the search border, the
points moved further than the search allows; say what would fit."""

from __future__ import annotations

import numpy as np

from ..matching._result import MatchResult, Status

# At least this many rows, and this share of them, on the border.
MIN_ON_BORDER = 3
MIN_SHARE = 0.2


def wider_search(
    result: MatchResult, max_displacement: tuple[int, ...]
) -> tuple[int, ...] | None:
    """A max displacement per axis that would fit, or None when the run
    needs none (few peaks on the border).

    Axes where the border peaks press against the limit get twice the
    limit, or 1.5 times the largest ok displacement if that is more.
    """
    status = np.asarray(result.status)
    border = status == Status.ON_BORDER
    count = int(border.sum())
    if count < MIN_ON_BORDER or count < MIN_SHARE * len(status):
        return None
    limit = np.asarray(max_displacement, dtype=float)
    d = len(limit)
    offsets = np.abs(np.asarray(result.offset, dtype=float)[:, -d:])
    ok = offsets[status == Status.OK]
    largest = np.nanmax(ok, axis=0) if len(ok) else np.zeros(d)
    pressed = np.nanmax(offsets[border], axis=0) >= limit - 0.5
    if not pressed.any():
        pressed[:] = True
    wider = np.maximum(2 * limit, np.ceil(1.5 * largest))
    wider = np.maximum(wider, 1)
    return tuple(
        int(w) if p else int(m) for w, p, m in zip(wider, pressed, limit)
    )


def border_message(
    result: MatchResult,
    max_displacement: tuple[int, ...],
    suggestion: tuple[int, ...],
) -> str:
    """The notification naming the max displacement that would fit."""
    count = int(np.sum(np.asarray(result.status) == Status.ON_BORDER))
    return (
        f"{count} of {len(result)} matches peak on the search border: the "
        f"points move further than the max displacement "
        f"{tuple(max_displacement)} px allows. Try max displacement "
        f"{tuple(suggestion)} px and Run again."
    )
