"""Vectors of a grid replaced by the mean of their neighbours.

Between passes of window deformation the field must be whole: vectors
that failed a check, or were not measured, take the mean of their
neighbours (as OpenPIV's 'localmean'), holes filling from their edges
in.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def replace_vectors(
    field: np.ndarray, replace: np.ndarray, rounds: int | None = None
) -> np.ndarray:
    """`field` with the vectors `replace` (and NaN ones) set to the mean of
    their finite neighbours, in `rounds` (default: until every hole is
    filled), so that holes fill from their edges in; NaN where no round
    reached."""
    out = np.where(replace[..., None], np.nan, field)
    for _ in range(max(out.shape[:-1]) if rounds is None else rounds):
        holes = np.isnan(out[..., 0])
        if not holes.any():
            break
        neighbours = _neighbours(out)
        with _quiet():
            mean = np.nanmean(neighbours, axis=0)
        filled = holes & np.isfinite(mean[..., 0])
        if not filled.any():
            break
        out[filled] = mean[filled]
    return out


def _neighbours(field: np.ndarray) -> np.ndarray:
    """(3**d - 1, *grid, D): each vector's neighbours, NaN beyond the
    grid's edge."""
    grid = field.shape[:-1]
    d = len(grid)
    padded = np.pad(field, [(1, 1)] * d + [(0, 0)], constant_values=np.nan)
    shifts = [
        s for s in itertools.product((0, 1, 2), repeat=d) if s != (1,) * d
    ]
    return np.stack(
        [
            padded[tuple(slice(s, s + n) for s, n in zip(shift, grid))]
            for shift in shifts
        ]
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'All-NaN slice' and 'Mean of empty slice' warnings:
    a vector without usable neighbours is expected here."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def smoothed(field: np.ndarray, rounds: int = 1) -> np.ndarray:
    """`field` (*grid, D) filtered `rounds` times by [1, 2, 1] / 4 along
    each grid axis, the grid extended linearly beyond its edges (a
    shear or rotation is left as it is, at the edges too)."""
    out = field
    d = field.ndim - 1
    for _ in range(rounds):
        for axis in range(d):
            if out.shape[axis] < 3:
                continue
            pad = [(0, 0)] * out.ndim
            pad[axis] = (1, 1)
            wide = np.pad(out, pad, mode="reflect", reflect_type="odd")
            n = out.shape[axis]
            take = [slice(None)] * out.ndim
            parts = []
            for start in range(3):
                take[axis] = slice(start, start + n)
                parts.append(wide[tuple(take)])
            out = 0.25 * parts[0] + 0.5 * parts[1] + 0.25 * parts[2]
    return out
