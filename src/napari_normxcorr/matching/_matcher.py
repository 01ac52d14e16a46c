"""Windows and surfaces of many points: placing, reading, correlating.

A Matcher holds the two images and the radii. It places each point's
template and search windows, correlates windows of one shape in stacks
(their variances from a variance map where many windows search one plane)
and recomputes a point's surface on demand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import numpy as np

from ..core._arrays import Image, LazyArray, as_image, safe_scale
from ..core._kernel import PreparedTemplate, fft_shape, ncc_valid
from ..core._masked import MIN_OVERLAP, mask_shape_check, masked_ncc_valid
from ..core._parallel import Workspace
from ..core._validate import number
from ..core._variance import MAX_MAP_PIXELS, VarianceMap
from ..core._window_sums import is_flat
from ..core._windows import (
    Window,
    all_finite,
    as_slices,
    inside_all,
    window_bounds,
)
from ..io._chunk_cache import cached
from ._result import Status, Surface, statuses

# Maps pay off when the search windows cover their plane this many times.
_MAP_COVERAGE = 1
# The pixels of read windows.
_Arrays = list[np.ndarray]


@dataclass
class Matcher:
    """Everything needed to match (and re-match) points: images, radii.

    `template_mask` and `image_mask` (True = ignore, the shape of their
    images) and `nodata` mark pixels without data; windows with some
    are matched on the rest (masked NCC), those whose template keeps
    less than `min_valid` of its pixels are not matched.
    """

    template_image: LazyArray
    image: LazyArray
    template_radius: tuple[int, ...]
    search_radius: tuple[int, ...]
    fft_dtype: type[np.floating]
    # Variance maps per (image, plane, template shape) many windows search.
    maps: dict[tuple, VarianceMap] = field(default_factory=dict)
    template_mask: LazyArray | None = None
    image_mask: LazyArray | None = None
    nodata: float | None = None
    min_valid: float = MIN_OVERLAP

    @property
    def ndim(self) -> int:
        """Number of matched axes (the last ones of the images)."""
        return len(self.template_radius)

    @contextmanager
    def caching_chunks(self) -> Iterator[None]:
        """Within, windows placed read through caches of the images'
        decoded chunks (see `io._chunk_cache`); the images as given after."""
        images = self.template_image, self.image
        self.template_image, self.image = map(cached, images)
        try:
            yield
        finally:
            self.template_image, self.image = images

    def place(
        self,
        row: int,
        point: np.ndarray,
        image_point: np.ndarray,
        forward: bool = True,
    ) -> Window | Status:
        """Windows of one point, before reading any pixel.

        Backward (``forward=False``) cuts the template around `point` in
        the target and searches around `image_point` in the template image,
        for the consistency check. Returns a Status when the point cannot
        be matched, else a Window whose arrays are not read yet. The rules
        are `place_all`'s, on one row.
        """
        status = statuses(1)
        groups = self.place_all(
            point[np.newaxis], image_point[np.newaxis], status, forward
        )
        if status[0] != Status.OK:
            return Status(status[0])
        window = groups[0][0]
        window.row = row
        return window

    def data_status(self, window: Window) -> Status:
        """``too little data`` when less than `min_valid` of a read
        window's template holds data, else ``ok``."""
        valid = window.template_valid
        if valid is not None and np.count_nonzero(valid) < (
            self.min_valid * valid.size
        ):
            return Status.TOO_LITTLE_DATA
        return Status.OK

    def sides(
        self, point: np.ndarray, image_point: np.ndarray, forward: bool
    ) -> tuple[LazyArray, LazyArray, tuple[int, ...]] | Status:
        """The images a placement cuts from and searches, and its plane.

        Status ``outside image`` when either point lies outside its image
        or the two lie in different planes.
        """
        source, target = self.template_image, self.image
        if not forward:
            source, target = target, source
        d = self.ndim
        if not placeable(point[None], image_point[None], source, target, d)[0]:
            return Status.OUTSIDE_IMAGE
        return source, target, tuple(int(v) for v in np.rint(point[:-d]))

    def place_all(
        self,
        points: np.ndarray,
        guesses: np.ndarray,
        status: np.ndarray,
        forward: bool = True,
    ) -> list[list[Window]]:
        """Windows of every row still ``ok`` in `status`, grouped by shape
        and in reading order; rows that cannot be placed get their status.

        As `place` for each row, but all rows at once.
        """
        source, target = self.template_image, self.image
        source_mask, target_mask = self.template_mask, self.image_mask
        if not forward:
            source, target = target, source
            source_mask, target_mask = target_mask, source_mask
        rows = np.flatnonzero(status == Status.OK)
        placed = _Placement.of(self, rows, points, guesses, source, target)
        status[placed.outside] = Status.OUTSIDE_IMAGE
        status[placed.no_fit] = Status.NO_FIT
        groups = []
        for members in placed.groups():
            groups.append(
                [
                    Window(
                        row,
                        plane,
                        t_start,
                        s_start,
                        source,
                        plane + t_slices,
                        target,
                        plane + s_slices,
                        source_mask=source_mask,
                        target_mask=target_mask,
                        nodata=self.nodata,
                    )
                    for row, plane, t_start, s_start, t_slices, s_slices in (
                        placed.windows(members)
                    )
                ]
            )
        return groups

    def place_each(
        self,
        points: np.ndarray,
        guesses: np.ndarray,
        status: np.ndarray,
        forward: bool = True,
    ) -> list[list[Window]]:
        """`place_all`, one call of `place` per row (for subclasses whose
        windows need more than their bounds)."""
        groups = defaultdict(list)
        for row in range(len(points)):
            if status[row] != Status.OK:
                continue
            window = self.place(row, points[row], guesses[row], forward)
            if isinstance(window, Status):
                status[row] = window
            else:
                groups[window.shapes].append(window)
        for windows in groups.values():
            windows.sort(key=Window.reading_order)
        return list(groups.values())

    def surfaces(
        self,
        windows: list[Window],
        workers: int = -1,
        workspace: Workspace | None = None,
        runs: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """'valid' NCC surfaces of read windows that share their shapes.

        Returns the surfaces and, per window, whether its template is flat.
        The surfaces may live in `workspace`: the next call with it
        overwrites them. Windows with pixels without data get a masked NCC
        (NaN where the overlap is below `min_valid`); the others keep the
        plain path. `runs` numbers the batch each window belongs to: the
        plain windows of a batch take variance maps together or not at
        all, as if each batch were correlated alone (default: one batch).
        """
        runs = [0] * len(windows) if runs is None else runs
        masked = [k for k, w in enumerate(windows) if w.masked]
        batches: dict[int, list[int]] = defaultdict(list)
        for k, w in enumerate(windows):
            if not w.masked:
                batches[runs[k]].append(k)
        paths: dict[bool, list[int]] = {True: [], False: []}
        for members in batches.values():
            mapped = self._mapped([windows[k] for k in members])
            paths[mapped].extend(members)
        if not masked and not (paths[True] and paths[False]):
            return self._plain_surfaces(
                windows, workers, workspace, bool(paths[True])
            )
        template, search = windows[0].shapes
        out_shape = [n - m + 1 for n, m in zip(search, template)]
        # In the plain path's precision: a plain window's results do not
        # depend on whether its batch holds masked windows.
        surfaces = np.empty((len(windows), *out_shape), self.fft_dtype)
        flat = np.zeros(len(windows), dtype=bool)
        for mapped, members in paths.items():
            if members:
                part = [windows[k] for k in members]
                surfaces[members], flat[members] = self._plain_surfaces(
                    part, workers, workspace, mapped
                )
        for k in masked:
            surfaces[k], flat[k] = self._masked_surface(windows[k], workers)
        return surfaces, flat

    def _mapped(self, windows: list[Window]) -> bool:
        """Whether all of these plain windows take their variances from
        maps; a map holds the plane's own values: unscaled windows only."""
        box = windows[0].shapes[0]
        return all(
            (id(w.target), w.plane, box) in self.maps and w.scale == 1.0
            for w in windows
        )

    def _masked_surface(
        self, window: Window, workers: int
    ) -> tuple[np.ndarray, bool]:
        """Masked NCC surface of one read window, and whether its template
        is flat over its valid pixels."""
        template, search = window.template, window.search
        assert template is not None and search is not None
        t_valid, s_valid = window.template_valid, window.search_valid
        t_valid = np.isfinite(template) if t_valid is None else t_valid
        s_valid = np.isfinite(search) if s_valid is None else s_valid
        surface = masked_ncc_valid(
            template, t_valid, search, s_valid, self.min_valid, workers
        )
        values = template[t_valid].astype(np.float64)
        energy = (
            np.sum(np.square(values - values.mean())) if values.size else 0
        )
        scale = np.max(np.abs(values)) if values.size else 0
        # As the plain path: constant up to rounding carries no pattern.
        return surface, bool(is_flat(energy, values.size, scale))

    def _plain_surfaces(
        self,
        windows: list[Window],
        workers: int,
        workspace: Workspace | None,
        mapped: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Surfaces of windows without masked pixels (see `surfaces`),
        `mapped`: from their planes' variance maps."""
        # The windows are read: their pixels are arrays, not None.
        templates = np.stack(cast(_Arrays, [w.template for w in windows]))
        prepared = PreparedTemplate(templates, self.ndim, self.fft_dtype)
        workspace = workspace or Workspace()
        if mapped:
            box = windows[0].shapes[0]
            maps = [self.maps[(id(w.target), w.plane, box)] for w in windows]
            surfaces = self._surfaces_from_maps(
                windows, prepared, maps, workers, workspace
            )
        else:
            searches = np.stack(cast(_Arrays, [w.search for w in windows]))
            searches = searches.astype(np.float64)
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

    def _surfaces_from_maps(
        self,
        windows: list[Window],
        prepared: PreparedTemplate,
        maps: list[VarianceMap],
        workers: int,
        workspace: Workspace,
    ) -> np.ndarray:
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
            assert w.search is not None
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

    def prepare_maps(self, groups: list[list[Window]]) -> None:
        """Variance maps for the planes that many windows search.

        Worth it when the windows of a plane together cover it once over (a
        map costs less than the running sums of as many window pixels);
        only for in-memory planes of up to MAX_MAP_PIXELS pixels with
        finite values. Replaces the maps of an earlier pass.
        """
        self.maps = {}
        coverage: dict[tuple, int] = defaultdict(int)
        windows_by_key: dict[tuple, Window] = {}
        for windows in groups:
            # The windows of a group share their shapes.
            template, search = windows[0].shapes
            size = int(np.prod(search))
            for w in windows:
                key = (id(w.target), w.plane, template)
                coverage[key] += size
                windows_by_key[key] = w
        for key, w in windows_by_key.items():
            if not isinstance(w.target, np.ndarray):
                continue
            plane = w.target[w.plane]
            if (
                plane.size <= MAX_MAP_PIXELS
                and coverage[key] >= _MAP_COVERAGE * plane.size
                and all_finite(plane)
                and safe_scale(plane) == 1.0
            ):
                self.maps[key] = VarianceMap(plane, w.shapes[0])

    def surface(
        self, point: np.ndarray, image_point: np.ndarray
    ) -> Surface | None:
        """Surface of one point (for display), or None if it has none."""
        point = np.asarray(point, float)
        window = self.place(0, point, np.asarray(image_point, float))
        if (
            isinstance(window, Status)
            or not window.read()
            or self.data_status(window) != Status.OK
        ):
            return None
        values = self.surfaces([window])[0][0]
        origin = window.origin(point[-self.ndim :])
        return Surface(values, origin, window.plane)


class NoData(NamedTuple):
    """The no-data options of match_points, as given."""

    template_mask: Image | None
    image_mask: Image | None
    nodata: float | None
    min_valid: float

    @property
    def given(self) -> bool:
        """Whether any pixel is declared without data."""
        masks = (self.template_mask, self.image_mask, self.nodata)
        return any(m is not None for m in masks)

    def checked(self, template_image: LazyArray, image: LazyArray) -> dict:
        """The Matcher's keywords, or raise naming the faulty option."""
        if not 0 <= self.min_valid <= 1:
            raise ValueError(
                f"min_valid must lie in [0, 1], got {self.min_valid}."
            )
        masks = {}
        for name, mask, of in (
            ("template_mask", self.template_mask, template_image),
            ("image_mask", self.image_mask, image),
        ):
            if mask is not None:
                masks[name] = as_image(name, mask)
                mask_shape_check(name, masks[name].shape, of.shape)
        nodata = None if self.nodata is None else number("nodata", self.nodata)
        return dict(masks, nodata=nodata, min_valid=self.min_valid)


def placeable(
    points: np.ndarray,
    guesses: np.ndarray,
    source: LazyArray,
    target: LazyArray,
    d: int,
) -> np.ndarray:
    """Which of (n, D) `points` (in `source`) and their `guesses` (in
    `target`) can be placed: both inside their images and in one plane
    (the leading D - d coordinates, rounded); the others are ``outside
    image``."""
    # Inside first: a NaN or infinite coordinate has no plane.
    placed = inside_all(points, source.shape) & inside_all(
        guesses, target.shape
    )
    planes = np.rint(points[placed, :-d])
    placed[placed] = np.all(planes == np.rint(guesses[placed, :-d]), axis=1)
    return placed


class _Placement(NamedTuple):
    """Where the windows of many rows lie (see `Matcher.place_all`).

    `outside` and `no_fit` are the rows that cannot be placed; the
    others are `rows`, with their planes and window bounds.
    """

    outside: np.ndarray
    no_fit: np.ndarray
    rows: np.ndarray
    planes: np.ndarray
    template: tuple[np.ndarray, np.ndarray]
    search: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(
        cls,
        matcher: Matcher,
        rows: np.ndarray,
        points: np.ndarray,
        guesses: np.ndarray,
        source: LazyArray,
        target: LazyArray,
    ) -> _Placement:
        """The placement of `rows`: templates around `points` in `source`,
        searches around `guesses` in `target`."""
        d = matcher.ndim
        point, guess = points[rows], guesses[rows]
        placed = placeable(point, guess, source, target, d)
        point, guess = point[placed], guess[placed]
        template = window_bounds(
            point[:, -d:], matcher.template_radius, source.shape[-d:]
        )
        search = window_bounds(
            guess[:, -d:], matcher.search_radius, target.shape[-d:]
        )
        fits = np.all(
            template[1] - template[0] <= search[1] - search[0], axis=1
        )
        return cls(
            rows[~placed],
            rows[placed][~fits],
            rows[placed][fits],
            np.rint(point[fits, :-d]).astype(np.int64),
            (template[0][fits], template[1][fits]),
            (search[0][fits], search[1][fits]),
        )

    def groups(self) -> list[np.ndarray]:
        """Indices into `rows` per window shape (in order of first
        appearance), each in reading order (see `Window.reading_order`)."""
        if not len(self.rows):
            return []
        search = self.search[1] - self.search[0]
        shapes = np.concatenate(
            [self.template[1] - self.template[0], search], axis=1
        )
        _, first, inverse = np.unique(
            shapes, axis=0, return_index=True, return_inverse=True
        )
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first)] = np.arange(len(first))
        group = rank[inverse.ravel()]
        start = self.search[0]
        bands = start[:, :-1] // search[:, :-1]
        # lexsort sorts by its last key first; it is stable, as list.sort.
        keys = (start[:, -1], *bands.T[::-1], *self.planes.T[::-1], group)
        order = np.lexsort(keys)
        ends = np.flatnonzero(np.diff(group[order])) + 1
        return np.split(order, ends)

    def windows(self, members: np.ndarray) -> Iterator[tuple]:
        """Row, plane, template and search starts and slices of each of
        the placed rows `members` (indices into `rows`)."""
        (t_start, t_stop), (s_start, s_stop) = (
            (start[members], stop[members])
            for start, stop in (self.template, self.search)
        )
        # Python ints for the slices, in one conversion per array.
        listed = zip(
            self.rows[members].tolist(),
            self.planes[members].tolist(),
            t_start.tolist(),
            t_stop.tolist(),
            s_start.tolist(),
            s_stop.tolist(),
        )
        for k, (row, plane, t_low, t_high, s_low, s_high) in enumerate(listed):
            yield (
                row,
                tuple(plane),
                t_start[k],
                s_start[k],
                as_slices(t_low, t_high),
                as_slices(s_low, s_high),
            )
