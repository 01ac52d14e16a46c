"""The tracker's whole-pixel matches of points whose windows lie inside.

Along a track, each point's template is matched into a small window of
the next frame, and the template changes only when the point's
reference does. :class:`CoarseSearch` keeps the templates' spectra
(``core._small_ncc``) and matches every point whose template and search
window lie wholly inside their frames and hold finite values, in chunks
on all cores; it gives what ``match_points`` gives for them (whole-pixel
position, score, second peak, statuses). The whole-pixel step of
``_whole_pixel`` matches the other points (clipped at a border,
non-finite data) with ``match_points``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core._arrays import LazyArray
from ..core._parallel import cpu_count, map_on, shared_pool
from ..core._peaks import argmax_indices, on_borders, second_peaks
from ..core._small_ncc import TemplateBank, small_ncc
from ..core._windows import inside_all
from ..matching._result import Status, statuses

# Windows per chunk: their arrays stay in cache, and the calls around
# the arithmetic are paid once for all of them.
_CHUNK = 64


class Coarse(NamedTuple):
    """Whole-pixel matches of some rows; `done` says which were matched
    (the small-window search leaves the others to match_points)."""

    done: np.ndarray  # (n,) bool
    position: np.ndarray  # (n, D) matched axes, NaN where not done
    score: np.ndarray
    second: np.ndarray
    status: np.ndarray


class CoarseSearch:
    """Whole-pixel NCC matches of tracked points into small windows.

    The search radius must be at least the template radius along every
    axis (the surfaces are 'valid' correlations).
    """

    def __init__(
        self,
        stack: LazyArray,
        count: int,
        radius: tuple[int, ...],
        search: tuple[int, ...],
        fft_dtype: type[np.floating],
        min_score: float,
    ):
        self.stack = stack
        self.radius = np.asarray(radius)
        self.search = np.asarray(search)
        self.frame_shape = np.asarray(stack.shape[-len(radius) :])
        self.min_score = min_score
        self.bank = TemplateBank(
            count,
            tuple(2 * self.radius + 1),
            _search_shape(search),
            fft_dtype,
            key_length=stack.ndim,
        )

    @staticmethod
    def bank_bytes(
        count: int, search: tuple[int, ...], fft_dtype: type[np.floating]
    ) -> int:
        """Bytes the kept spectra of `count` points would take."""
        return TemplateBank.size(count, _search_shape(search), fft_dtype)

    def match(
        self,
        rows: np.ndarray,
        planes: np.ndarray,
        source_frames: np.ndarray,
        centres: np.ndarray,
        guesses: np.ndarray,
        target_frames: np.ndarray,
    ) -> Coarse:
        """Match the template of each of `rows` (points of the bank), cut
        around `centres` in its source frame, into its target frame around
        `guesses`, where both windows lie inside their frames."""
        n, d = len(rows), len(self.radius)
        found = Coarse(
            np.zeros(n, dtype=bool),
            np.full((n, d), np.nan),
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.empty(n, dtype=object),
        )
        template_at = np.rint(centres).astype(np.int64)
        search_at = np.rint(guesses).astype(np.int64)
        inside = inside_all(
            template_at, self.frame_shape, self.radius
        ) & inside_all(search_at, self.frame_shape, self.search)
        keys = np.column_stack([source_frames, planes, template_at])
        self._prepare(rows[inside], keys[inside], planes[inside])
        todo = np.flatnonzero(inside & self.bank.usable[rows])
        chunks = [todo[k : k + _CHUNK] for k in range(0, todo.size, _CHUNK)]
        pool = shared_pool() if cpu_count() > 1 and len(chunks) > 1 else None

        def run(chunk: np.ndarray) -> None:
            self._match_chunk(
                chunk,
                rows[chunk],
                planes[chunk],
                search_at[chunk] - self.search,
                target_frames[chunk],
                centres[chunk] - template_at[chunk],
                found,
            )

        map_on(pool, run, chunks)
        return found

    def _prepare(
        self, rows: np.ndarray, keys: np.ndarray, planes: np.ndarray
    ) -> None:
        """Read the templates of `rows` whose key changed into the bank."""
        stale = self.bank.stale(rows, keys)
        rows, keys, planes = rows[stale], keys[stale], planes[stale]
        if rows.size == 0:
            return
        d = len(self.radius)
        templates = self._boxes(
            keys[:, 0],
            planes,
            keys[:, -d:] - self.radius,
            self.bank.template_shape,
        )
        self.bank.put(rows, keys, templates)

    def _boxes(
        self,
        frames: np.ndarray,
        planes: np.ndarray,
        starts: np.ndarray,
        shape: tuple[int, ...],
    ) -> np.ndarray:
        """(k, *shape) boxes of `shape` at `starts` in `planes` of
        `frames`: one gather from a numpy stack, else box by box."""
        d = len(shape)
        if isinstance(self.stack, np.ndarray):
            every = sliding_window_view(
                self.stack, shape, axis=tuple(range(-d, 0))
            )
            return every[(frames, *planes.T, *starts.T)]
        boxes = np.empty((len(frames), *shape), self.stack.dtype)
        for k, (frame, plane, start) in enumerate(zip(frames, planes, starts)):
            box = tuple(slice(a, a + n) for a, n in zip(start.tolist(), shape))
            index = (int(frame), *plane.tolist(), *box)
            boxes[k] = np.asarray(self.stack[index])
        return boxes

    def _match_chunk(
        self,
        chunk: np.ndarray,
        rows: np.ndarray,
        planes: np.ndarray,
        starts: np.ndarray,
        frames: np.ndarray,
        fractions: np.ndarray,
        found: Coarse,
    ) -> None:
        """Match one chunk of windows and write its entries of `found`."""
        windows = self._boxes(frames, planes, starts, self.bank.search_shape)
        surfaces, scored = small_ncc(self.bank, rows, windows)
        peaks = argmax_indices(surfaces)
        score = surfaces[(np.arange(len(chunk)), *peaks.T)]
        second = second_peaks(surfaces, peaks)[1]
        # The template's centre over the search window's first pixel.
        corner = starts + self.radius + fractions
        flat = self.bank.flat[rows]
        verdicts = [
            (~(score >= self.min_score), Status.LOW_SCORE),
            (on_borders(peaks, surfaces.shape[1:]), Status.ON_BORDER),
        ]
        status = statuses(len(chunk))
        for mask, verdict in verdicts:
            status[mask & (status == Status.OK)] = verdict
        # A flat template has no position to find, as in match_points.
        status[flat] = Status.FLAT_TEMPLATE
        position = corner + peaks
        position[flat] = np.nan
        score[flat] = np.nan
        second[flat] = np.nan
        done = chunk[scored]
        found.done[done] = True
        found.position[done] = position[scored]
        found.score[done] = score[scored]
        found.second[done] = second[scored]
        found.status[done] = status[scored]


def _search_shape(search: tuple[int, ...]) -> tuple[int, ...]:
    """Search windows of radius `search`: 2r + 1 pixels per axis."""
    return tuple(2 * int(r) + 1 for r in search)
