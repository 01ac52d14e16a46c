"""Matching many points of interest at once: the engine behind the plugin."""

from __future__ import annotations

import itertools
import os
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ._io import write_columns
from ._ncc import (
    PreparedTemplate,
    Workspace,
    fft_shape,
    ncc_valid,
    thread_workspace,
)
from ._peaks import argmax_index, parabolic_shift
from ._subpixel import refine_shift
from ._validate import per_axis
from ._variance import MAX_MAP_PIXELS, VarianceMap
from ._windows import as_slices, window_bounds


class Status(str, Enum):
    """Verdict on one matched point, most serious first."""

    OK = "ok"
    OUTSIDE_IMAGE = "outside image"
    NON_FINITE = "non-finite data"
    NO_FIT = "template does not fit"
    FLAT_TEMPLATE = "flat template"
    LOW_SCORE = "low score"
    ON_BORDER = "peak on search border"
    AMBIGUOUS = "ambiguous"
    INCONSISTENT = "failed consistency"

    def __str__(self) -> str:
        return self.value


class Surface(NamedTuple):
    """Correlation surface of one point and where it lies in the target.

    Element ``q`` of `values` scores the match position ``origin + q``
    (pixel coordinates of the matched axes in the target image); `plane`
    holds the leading (unmatched) coordinates, empty for plain images.
    """

    values: np.ndarray
    origin: np.ndarray
    plane: tuple[int, ...]


_COLUMNS = (
    "score",
    "distinctiveness",
    "second_score",
    "consistency",
    "refined",
    "status",
)


@dataclass
class MatchResult:
    """Where each point of interest went; rows line up with the input points.

    Attributes
    ----------
    points : (N, D) ndarray
        The points of interest in template-image pixel coordinates.
    image_points : (N, D) ndarray
        The starting guesses in the target image.
    matched : (N, D) ndarray
        Matched positions in target-image pixel coordinates (sub-pixel when
        refined); NaN where no match could be computed.
    offset : (N, D) ndarray
        ``matched - points``: the displacement of each point.
    score : (N,) ndarray
        NCC at the match, in [-1, 1] (NaN where not computed).
    second_score : (N,) ndarray
        Best NCC peak outside the match's neighbourhood.
    distinctiveness : (N,) ndarray
        ``score - second_score``: how far the match stands above the best
        alternative (near 0 for repetitive texture).
    consistency : (N,) ndarray
        Distance in pixels between the point and the match of the matched
        position back into the template image (NaN when not checked).
    refined : (N,) ndarray of bool
        True where Gauss-Newton sub-pixel refinement converged; False where
        the position comes from a parabola fit (or whole pixels).
    status : (N,) ndarray of Status
        Verdict per point, see :class:`Status`.
    """

    points: np.ndarray
    image_points: np.ndarray
    matched: np.ndarray
    offset: np.ndarray
    score: np.ndarray
    second_score: np.ndarray
    distinctiveness: np.ndarray
    consistency: np.ndarray
    refined: np.ndarray
    status: np.ndarray
    _context: Any = field(default=None, repr=False)
    _surfaces: dict | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def concatenate(cls, results: Sequence[MatchResult]) -> MatchResult:
        """One result holding the rows of `results` in order.

        All parts must come from the same images and settings (as when a
        long run is split into chunks).
        """
        if not results:
            raise ValueError("concatenate needs at least one result")
        columns = {
            name: np.concatenate([getattr(r, name) for r in results])
            for name in ROW_FIELDS
        }
        return cls(**columns, _context=results[0]._context)

    def take(self, rows) -> MatchResult:
        """The rows `rows` (indices or a boolean mask) as a result."""
        columns = {name: getattr(self, name)[rows] for name in ROW_FIELDS}
        return MatchResult(**columns, _context=self._context)

    def surface(self, index: int) -> Surface:
        """Recompute the correlation surface of point `index`."""
        if self._surfaces and index in self._surfaces:
            return self._surfaces[index]
        if self._context is None:
            raise ValueError("this result holds no images to recompute from")
        found = self._context.surface(
            self.points[index], self.image_points[index]
        )
        if found is None:
            raise ValueError(
                f"point {index} has no correlation surface (status: "
                f"{self.status[index]})."
            )
        return found

    def to_table(self) -> dict[str, np.ndarray]:
        """Columns of the result: positions per axis, offsets, quality.

        Column names are ``point-0 ...``, ``matched-0 ...``,
        ``offset-0 ...`` (one per axis) followed by the quality columns;
        ``pandas.DataFrame(result.to_table())`` gives a data frame.
        """
        table = {}
        for name, values in (
            ("point", self.points),
            ("matched", self.matched),
            ("offset", self.offset),
        ):
            for axis in range(values.shape[1]):
                table[f"{name}-{axis}"] = values[:, axis]
        for name in _COLUMNS:
            table[name] = getattr(self, name)
        table["status"] = np.array([str(s) for s in self.status])
        return table

    def to_csv(self, path) -> None:
        """Write :meth:`to_table` as CSV (one row per point)."""
        write_columns(path, self.to_table())


# The per-row columns of a MatchResult (its other fields are shared).
ROW_FIELDS = [
    f.name for f in fields(MatchResult) if not f.name.startswith("_")
]


@dataclass
class _Window:
    """The two windows of one point: where they lie, and their pixels."""

    row: int
    plane: tuple[int, ...]
    template_start: np.ndarray
    search_start: np.ndarray
    source: Any
    template_slices: tuple
    target: Any
    search_slices: tuple
    template: np.ndarray | None = None
    search: np.ndarray | None = None
    search_sum: float = 0.0

    @property
    def shapes(self) -> tuple:
        return tuple(
            tuple(s.stop - s.start for s in slices if isinstance(s, slice))
            for slices in (self.template_slices, self.search_slices)
        )

    def read(self) -> bool:
        """Read both windows; False when they hold NaN or infinity."""
        self.template = np.asarray(self.source[self.template_slices])
        self.search = np.asarray(self.target[self.search_slices])
        self.search_sum = float(self.search.sum(dtype=np.float64))
        return _all_finite(self.template) and _all_finite(
            self.search, self.search_sum
        )

    def release(self) -> None:
        self.template = self.search = None


def _all_finite(values: np.ndarray, total: float | None = None) -> bool:
    """No NaN or infinity in `values` (whose sum is `total`, when known)."""
    # Any NaN or infinity makes the sum NaN or infinite: one fast pass,
    # and the exact test only when it is (or the sum overflowed).
    if total is None:
        total = values.sum(dtype=np.float64)
    return bool(np.isfinite(total) or np.isfinite(values).all())


@dataclass
class _Matcher:
    """Everything needed to match (and re-match) points: images, radii."""

    template_image: Any
    image: Any
    template_radius: tuple[int, ...]
    search_radius: tuple[int, ...]
    fft_dtype: Any
    # Variance maps per (image, plane, template shape) many windows search.
    maps: dict = field(default_factory=dict)

    def place(self, row, point, image_point, forward=True):
        """Windows of one point, before reading any pixel.

        Backward (``forward=False``) cuts the template around `point` in
        the target and searches around `image_point` in the template image,
        for the consistency check. Returns a Status when the point cannot
        be matched, else a _Window whose arrays are not read yet.
        """
        source, target = self.template_image, self.image
        if not forward:
            source, target = target, source
        d = self.ndim
        plane = tuple(int(v) for v in np.rint(point[:-d]))
        if not (
            _inside(point, source.shape) and _inside(image_point, target.shape)
        ) or plane != tuple(int(v) for v in np.rint(image_point[:-d])):
            return Status.OUTSIDE_IMAGE
        t_start, t_stop = window_bounds(
            point[-d:], self.template_radius, source.shape[-d:]
        )
        s_start, s_stop = window_bounds(
            image_point[-d:], self.search_radius, target.shape[-d:]
        )
        if np.any(t_stop - t_start > s_stop - s_start):
            return Status.NO_FIT
        return _Window(
            row,
            plane,
            t_start,
            s_start,
            source,
            plane + as_slices(t_start, t_stop),
            target,
            plane + as_slices(s_start, s_stop),
        )

    @property
    def ndim(self) -> int:
        return len(self.template_radius)

    def surfaces(
        self,
        windows: list[_Window],
        workers: int = -1,
        workspace: Workspace | None = None,
    ):
        """'valid' NCC surfaces of read windows that share their shapes.

        Returns the surfaces and, per window, whether its template is flat.
        The surfaces live in `workspace`: the next call with it overwrites
        them.
        """
        templates = np.stack([w.template for w in windows])
        prepared = PreparedTemplate(templates, self.ndim, self.fft_dtype)
        maps = [self.maps.get(_map_key(w)) for w in windows]
        workspace = workspace or Workspace()
        if all(m is not None for m in maps):
            surfaces = self._surfaces_from_maps(
                windows, prepared, maps, workers, workspace
            )
        else:
            searches = np.stack([w.search for w in windows]).astype(np.float64)
            axes = tuple(range(1, searches.ndim))
            searches -= searches.mean(axis=axes, keepdims=True)
            out_shape = [
                n - m + 1 for n, m in zip(searches.shape[1:], prepared.shape)
            ]
            surfaces = ncc_valid(
                prepared,
                searches,
                workers,
                workspace,
                out=workspace.get(
                    "surfaces", (len(windows), *out_shape), self.fft_dtype
                ),
            )
        return surfaces, prepared.flat.ravel()

    def _surfaces_from_maps(self, windows, prepared, maps, workers, workspace):
        """Surfaces whose variances come from variance maps.

        The windows are centred only for the transform, straight into a
        zero-padded buffer of the FFT shape, in the transform's precision.
        """
        shape = windows[0].shapes[1]
        count = len(windows)
        padded = workspace.get(
            "padded", (count, *fft_shape(shape)), self.fft_dtype
        )
        for axis, size in enumerate(shape, start=1):
            padded[(slice(None),) * axis + (slice(size, None),)] = 0.0
        inside = padded[(slice(None), *[slice(0, size) for size in shape])]
        for k, w in enumerate(windows):
            # Centred on the way in: one pass over the buffer, not three.
            mean = w.search_sum / w.search.size
            np.subtract(w.search, mean, out=inside[k], casting="unsafe")
        out_shape = tuple(s - m + 1 for s, m in zip(shape, prepared.shape))
        norms = workspace.get("norms", (count, *out_shape), self.fft_dtype)
        # A flat template carries no pattern either: an NCC of 0.
        energies = np.where(prepared.flat, np.inf, prepared.energy).ravel()
        for k, (m, w) in enumerate(zip(maps, windows)):
            m.norms(w.search_start, energies[k], norms[k])
        return ncc_valid(
            prepared,
            padded,
            workers,
            workspace,
            out=workspace.get("surfaces", norms.shape, self.fft_dtype),
            norms=norms,
            shape=shape,
        )

    def prepare_maps(self, groups: list[list[_Window]]) -> None:
        """Variance maps for the planes that many windows search.

        Worth it when the windows of a plane together cover it once over (a
        map costs less than the running sums of as many window pixels);
        only for in-memory planes of up to MAX_MAP_PIXELS pixels with
        finite values. Replaces the maps of an earlier pass.
        """
        self.maps = {}
        coverage = defaultdict(int)
        windows_by_key = {}
        for windows in groups:
            for w in windows:
                key = _map_key(w)
                coverage[key] += int(np.prod(w.shapes[1]))
                windows_by_key[key] = w
        for key, w in windows_by_key.items():
            if not isinstance(w.target, np.ndarray):
                continue
            plane = w.target[w.plane]
            if (
                plane.size <= MAX_MAP_PIXELS
                and coverage[key] >= _MAP_COVERAGE * plane.size
                and _all_finite(plane)
            ):
                self.maps[key] = VarianceMap(plane, w.shapes[0])

    def surface(self, point, image_point) -> Surface | None:
        """Surface of one point (for display), or None if it has none."""
        point = np.asarray(point, float)
        window = self.place(0, point, np.asarray(image_point, float))
        if isinstance(window, Status) or not window.read():
            return None
        values = self.surfaces([window])[0][0]
        d = self.ndim
        origin = window.search_start + (point[-d:] - window.template_start)
        return Surface(values, origin, window.plane)


# Maps pay off when the search windows cover their plane this many times.
_MAP_COVERAGE = 1


def _map_key(window: _Window) -> tuple:
    """Which plane of which image a window searches, for which template."""
    return id(window.target), window.plane, window.shapes[0]


def _inside(point, shape) -> bool:
    rounded = np.rint(point)
    return bool(np.all((rounded >= 0) & (rounded < np.asarray(shape))))


def _local_maxima(surfaces: np.ndarray, workspace: Workspace | None = None):
    """Mask of values that no neighbour exceeds (3-wide, in all but axis 0).

    A 3-wide running maximum along each axis in turn, compared in float32
    (half the memory traffic; ties from the rounding only add candidates,
    never remove the best one), in scratch arrays of `workspace`.
    """
    workspace = workspace or Workspace()
    shape = surfaces.shape
    values = surfaces
    if surfaces.dtype != np.float32:
        values = workspace.get("maxima values", shape, np.float32)
        np.copyto(values, surfaces, casting="same_kind")
    buffers = [workspace.get(f"maxima {k}", shape, np.float32) for k in "ab"]
    source = values
    for axis in range(1, values.ndim):
        target = buffers[axis % 2]
        _running_maximum(source, target, axis)
        source = target
    return values == source


def _running_maximum(source, target, axis) -> None:
    """3-wide maximum of contiguous `source` along `axis`, into `target`.

    Neighbours along `axis` lie a fixed step apart in memory: two passes
    over the flat arrays (several times faster than strided views) do the
    inside, and the two end slabs, which the flat shifts mixed with their
    neighbours across the axis' ends, are redone alone.
    """
    n = source.shape[axis]
    if n == 1:
        np.copyto(target, source)
        return
    step = int(np.prod(source.shape[axis + 1 :]))
    flat, out = source.reshape(-1), target.reshape(-1)
    inside = slice(step, flat.size - step)
    np.maximum(flat[: -2 * step], flat[2 * step :], out=out[inside])
    np.maximum(out[inside], flat[inside], out=out[inside])
    index = (slice(None),) * axis
    for end, neighbour in ((0, 1), (n - 1, n - 2)):
        np.maximum(
            source[index + (end,)],
            source[index + (neighbour,)],
            out=target[index + (end,)],
        )


def _peak_half_widths(surface: np.ndarray, peak) -> list[int]:
    """How far the peak stays above half its height, along each axis.

    Half height is halfway between the peak and the surface's median, so a
    broad peak (smooth texture) gets a broad neighbourhood. The median of
    a few thousand evenly spread values serves, at a fraction of the cost.
    """
    values = surface.ravel()
    sample = values[:: max(1, values.size // 4096)].copy()
    middle = sample.size // 2
    sample.partition(middle)
    typical = sample[middle]
    level = 0.5 * (surface[peak] + typical)
    widths = []
    for axis, index in enumerate(peak):
        line = surface[(*peak[:axis], slice(None), *peak[axis + 1 :])]
        below = np.flatnonzero(line <= level)
        before = below[below < index]
        after = below[below > index]
        left = index - before[-1] if before.size else index + 1
        right = after[0] - index if after.size else line.size - index
        widths.append(int(max(left, right)))
    return widths


def second_peak(surface: np.ndarray):
    """Index and value of the best peak outside the main peak's neighbourhood.

    The neighbourhood reaches as far as the main peak stays above half its
    height, and at least 2 pixels. The best local maximum outside it wins;
    without one, the best value outside; without any, ``(None, nan)``.
    """
    peak = argmax_index(surface)
    reach = [max(w, 2) for w in _peak_half_widths(surface, peak)]
    low = [max(p - r, 0) for p, r in zip(peak, reach)]
    high = [p + r + 1 for p, r in zip(peak, reach)]
    # One surface at a time, so that its scratch arrays stay in cache.
    maxima = _local_maxima(surface[np.newaxis], thread_workspace())[0]
    # Local maxima are few on a correlation surface: look at them alone.
    candidates = np.flatnonzero(maxima)
    coords = np.unravel_index(candidates, surface.shape)
    outside = np.zeros(candidates.size, dtype=bool)
    for c, a, b in zip(coords, low, high):
        outside |= (c < a) | (c >= b)
    candidates = candidates[outside]
    if candidates.size:
        best = candidates[np.argmax(surface.ravel()[candidates])]
    else:
        masked = surface.astype(np.float64)
        masked[tuple(slice(a, b) for a, b in zip(low, high))] = -np.inf
        best = np.argmax(masked)
        if masked.ravel()[best] == -np.inf:
            return None, np.nan
    index = tuple(int(i) for i in np.unravel_index(best, surface.shape))
    return index, float(surface[index])


def match_points(
    template_image: npt.ArrayLike,
    image: npt.ArrayLike,
    points: npt.ArrayLike,
    *,
    template_radius: int | Sequence[int] = 50,
    search_radius: int | Sequence[int] = 200,
    image_points: npt.ArrayLike | None = None,
    subpixel: bool = True,
    min_score: float = 0.5,
    min_distinctiveness: float = 0.05,
    max_consistency_error: float = 1.0,
    check_consistency: bool = True,
    keep_surfaces: bool = False,
    fft_precision: str = "single",
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> MatchResult:
    """Find where each point of interest went from one image to another.

    For each point, a window of `template_radius` around it in
    `template_image` is correlated (NCC) with a window of `search_radius`
    around its starting guess in `image`; the best position is refined to
    sub-pixel precision and scored.

    Parameters
    ----------
    template_image : (..., M0, M1[, M2]) array_like
        Image the points were picked on. numpy, dask and zarr arrays work;
        only the windows around the points are read.
    image : (..., M0', M1'[, M2']) array_like
        Target image, same number of axes.
    points : (N, D) array_like
        Points of interest (row, col, ...) in `template_image` pixel
        coordinates, one column per axis of the images; floats allowed.
        Leading coordinates (t, z, c in front of the matched axes) select
        the plane to match in, rounded.
    template_radius, search_radius : int or sequence of int, optional
        Window radii in pixels: windows are ``2 * r + 1`` wide, centred on
        the rounded point and clipped at the image borders. One int matches
        in the last two axes; a sequence gives one radius per matched axis
        (three entries match in 3-D).
    image_points : (N, D) array_like, optional
        Starting guesses in `image` (default: the same coordinates).
    subpixel : bool, optional
        Refine matches below a pixel (Gauss-Newton on the template patch,
        falling back to a parabola fit of the NCC peak).
    min_score : float, optional
        Below this NCC a match is flagged ``low score``.
    min_distinctiveness : float, optional
        Below this margin over the second-best peak a match is flagged
        ``ambiguous``.
    max_consistency_error : float, optional
        Matching back from the found position must land within this many
        pixels of the point, or the row is flagged ``failed consistency``.
    check_consistency : bool, optional
        Match back from each found position into `template_image` (doubles
        the work).
    fft_precision : {'single', 'double'}, optional
        Transform precision; single keeps peaks and scores within 1e-4.
    batch_size : int, optional
        Points correlated together; bounds memory.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.
    keep_surfaces : bool, optional
        Keep every surface so that ``result.surface(i)`` needs no new
        correlation (for a few points, e.g. live edits: memory grows with
        the number of points).

    Returns
    -------
    MatchResult
        One row per point, in input order.
    """
    matcher, points, image_points = _setup(
        template_image,
        image,
        points,
        image_points,
        template_radius,
        search_radius,
        fft_precision,
    )
    n, d = len(points), matcher.ndim
    matched = np.full(points.shape, np.nan)
    score = np.full(n, np.nan)
    second = np.full(n, np.nan)
    consistency = np.full(n, np.nan)
    refined = np.zeros(n, dtype=bool)
    status = np.full(n, Status.OK, dtype=object)
    on_border = np.zeros(n, dtype=bool)
    flat = np.zeros(n, dtype=bool)

    kept = {}
    groups = _group(matcher, points, image_points, status, forward=True)
    matcher.prepare_maps(groups)
    total = sum(len(g) for g in groups)
    done = 0

    def analyse(window, surface, is_flat) -> _Found:
        # In the worker threads: all per-point work runs on every core.
        peak = argmax_index(surface)
        corner, best, is_refined = _locate(window, surface, peak, subpixel)
        return _Found(
            corner,
            best,
            is_refined,
            second_peak(surface)[1],
            any(
                (p == 0 or p == s - 1) and s > 1
                for p, s in zip(peak, surface.shape)
            ),
            bool(is_flat),
            surface.copy() if keep_surfaces else None,
        )

    for batch, found in _in_threads(
        _worker(matcher, analyse), _batches(groups, batch_size)
    ):
        for window, f in zip(batch, found):
            row = window.row
            if f is None:
                status[row] = Status.NON_FINITE
                continue
            score[row], second[row] = f.score, f.second
            refined[row], on_border[row], flat[row] = (
                f.refined,
                f.on_border,
                f.flat,
            )
            origin = window.search_start + (
                points[row, -d:] - window.template_start
            )
            if keep_surfaces:
                kept[row] = Surface(f.surface, origin, window.plane)
            matched[row, :-d] = points[row, :-d]
            matched[row, -d:] = origin + f.corner
        done += len(batch)
        if progress is not None:
            progress(done, total)
    matcher.maps.clear()  # the result keeps the matcher, not the maps

    if check_consistency:
        consistency = _consistency(
            matcher, points, matched, status, batch_size
        )

    distinctiveness = score - second
    verdicts = [
        (flat, Status.FLAT_TEMPLATE),
        (~(score >= min_score), Status.LOW_SCORE),
        (on_border, Status.ON_BORDER),
        (distinctiveness < min_distinctiveness, Status.AMBIGUOUS),
        (consistency > max_consistency_error, Status.INCONSISTENT),
    ]
    for mask, verdict in verdicts:
        status[mask & (status == Status.OK)] = verdict
    offset = matched - points
    return MatchResult(
        points,
        image_points,
        matched,
        offset,
        score,
        second,
        distinctiveness,
        consistency,
        refined,
        status,
        matcher,
        kept if keep_surfaces else None,
    )


def _setup(
    template_image,
    image,
    points,
    image_points,
    template_radius,
    search_radius,
    fft_precision,
):
    """Check the arguments and bundle them into a _Matcher."""
    template_image = _lazy_array("template_image", template_image)
    image = _lazy_array("image", image)
    if template_image.ndim != image.ndim:
        raise ValueError(
            f"template_image has {template_image.ndim} axes and image has "
            f"{image.ndim}; they must have the same number."
        )
    # One int per radius matches in (row, col); a sequence says how many.
    sizes = [np.size(template_radius), np.size(search_radius)]
    ndim = max(sizes) if max(sizes) > 1 else min(2, image.ndim)
    if ndim > image.ndim:
        raise ValueError(
            f"the radii have {ndim} entries but the images have "
            f"{image.ndim} axes."
        )
    t_radius = per_axis("template_radius", template_radius, ndim)
    s_radius = per_axis("search_radius", search_radius, ndim)
    points = _point_array("points", points, image.ndim)
    if image_points is None:
        image_points = points.copy()
    else:
        image_points = _point_array("image_points", image_points, image.ndim)
        if image_points.shape != points.shape:
            raise ValueError(
                f"image_points has shape {image_points.shape} but points "
                f"has shape {points.shape}; give one guess per point."
            )
    if fft_precision not in ("single", "double"):
        raise ValueError(
            "fft_precision must be 'single' or 'double', got "
            f"{fft_precision!r}."
        )
    fft_dtype = np.float32 if fft_precision == "single" else np.float64
    matcher = _Matcher(template_image, image, t_radius, s_radius, fft_dtype)
    return matcher, points, image_points


def _group(matcher, points, guesses, status, forward):
    """Place every point's windows; group them by shape, note failures."""
    groups = defaultdict(list)
    for row in range(len(points)):
        if status[row] != Status.OK:
            continue
        window = matcher.place(row, points[row], guesses[row], forward)
        if isinstance(window, Status):
            status[row] = window
        else:
            groups[window.shapes].append(window)
    for windows in groups.values():
        windows.sort(key=_reading_order)
    return list(groups.values())


def _reading_order(window: _Window) -> tuple:
    """Plane, then bands one window high, then along the band.

    Neighbouring windows share pixels (and variance map entries):
    taken one after the other, they find them still in cache.
    """
    start = window.search_start
    height = window.shapes[1][:-1]
    return (
        window.plane,
        *(int(s) // h for s, h in zip(start[:-1], height)),
        int(start[-1]),
    )


def _batches(groups, batch_size):
    """Batches of windows of one shape, not read yet."""
    for windows in groups:
        for first in range(0, len(windows), batch_size):
            yield windows[first : first + batch_size]


class _Found(NamedTuple):
    """What the correlation says about one point."""

    corner: np.ndarray  # template corner in the search window, sub-pixel
    score: float
    refined: bool
    second: float
    on_border: bool
    flat: bool
    surface: np.ndarray | None


def _worker(matcher, analyse):
    """Worker body: read a batch, correlate it, analyse each window.

    Returns one entry per window: ``analyse(window, surface, is_flat)``,
    or None for a window with NaN or infinity. Pixels are read here, so
    only the batches being worked on are in memory.
    """

    def run(batch, workers, workspace):
        readable = [window.read() for window in batch]
        good = [w for w, ok in zip(batch, readable) if ok]
        found = {}
        if good:
            results = matcher.surfaces(good, workers, workspace)
            for window, *parts in zip(good, *results):
                found[window.row] = analyse(window, *parts)
        for window in batch:
            window.release()
        return [found.get(w.row) for w in batch]

    return run


def _in_threads(compute, batches):
    """Yield ``(batch, compute(batch))`` in order, on all cores.

    numpy and scipy.fft release the GIL, so batches run side by side; at
    most one batch per core is in memory at a time.
    """
    batches = iter(batches)
    first = next(batches, None)
    second = next(batches, None)
    if second is None:
        # One batch (live edits, a few points): no pool to start.
        if first is not None:
            yield first, compute(first, -1, thread_workspace())
        return
    batches = itertools.chain([first, second], batches)
    workers = os.cpu_count() or 1

    def run(batch):
        # Batches of one shape reuse one thread's scratch arrays.
        return compute(batch, 1, thread_workspace())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for batch in batches:
            pending.append((batch, pool.submit(run, batch)))
            if len(pending) >= workers:
                batch, future = pending.popleft()
                yield batch, future.result()
        while pending:
            batch, future = pending.popleft()
            yield batch, future.result()


def _lazy_array(name, values):
    """numpy, dask and zarr arrays pass as they are: windows are read later."""
    array = (
        values
        if hasattr(values, "shape") and hasattr(values, "dtype")
        else np.asarray(values)
    )
    if np.dtype(array.dtype).kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers, got dtype {array.dtype}."
        )
    if any(s == 0 for s in array.shape) or array.ndim == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}).")
    return array


def _point_array(name, values, ndim) -> np.ndarray:
    points = np.asarray(values, dtype=np.float64)
    if points.size == 0:
        return np.empty((0, ndim))
    if points.ndim != 2 or points.shape[1] != ndim:
        raise ValueError(
            f"{name} has shape {points.shape} but the images have {ndim} "
            f"axes; give an (N, {ndim}) array of (row, col, ...) "
            "coordinates."
        )
    return points


def _locate(window: _Window, surface, peak, subpixel: bool):
    """Corner of the template in the search window, its score, refined?"""
    integer = np.asarray(peak, dtype=np.float64)
    if not subpixel:
        return integer, float(surface[peak]), False
    # A surface one position wide has nothing to refine along that axis.
    if all(s > 1 for s in surface.shape):
        refinement = refine_shift(window.template, window.search, peak)
        if refinement.converged:
            return refinement.position, refinement.score, True
    return (
        integer + parabolic_shift(surface, peak),
        float(surface[peak]),
        False,
    )


def _consistency(matcher, points, matched, status, batch_size):
    """Distance from each point to the back-match of its match."""
    d = matcher.ndim
    distance = np.full(len(points), np.nan)
    # Rows already flagged keep their verdict; back-matching them is moot.
    todo = (status == Status.OK) & np.isfinite(matched).all(axis=1)
    back_status = np.full(len(points), Status.OUTSIDE_IMAGE, dtype=object)
    back_status[todo] = Status.OK
    groups = _group(matcher, matched, points, back_status, forward=False)
    matcher.prepare_maps(groups)

    def analyse(window, surface, _):
        peak = argmax_index(surface)
        return np.asarray(peak) + parabolic_shift(surface, peak)

    batches = _batches(groups, batch_size)
    back_match = _worker(matcher, analyse)
    for batch, found in _in_threads(back_match, batches):
        for window, corner in zip(batch, found):
            row = window.row
            if corner is None:
                continue  # NaN around the match: no verdict from the back
            back = (
                window.search_start
                + corner
                + (matched[row, -d:] - window.template_start)
            )
            distance[row] = float(np.linalg.norm(back - points[row, -d:]))
    matcher.maps.clear()
    return distance
