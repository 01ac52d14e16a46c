"""The Matcher: two images and the radii, and what a match asks of them.

A Matcher places each point's template and search windows (see
`_placement`), says whether a read window holds enough data, correlates
read windows (see `_correlation`) and recomputes a point's surface on
demand. Its fields are all a match needs, so that it can be copied with
other images or radii (the back-match), or sent to a cluster's workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..core._arrays import Image, LazyArray, as_image
from ..core._masked import MIN_OVERLAP, mask_shape_check
from ..core._parallel import Workspace
from ..core._validate import number
from ..core._windows import Window
from ..io._chunk_cache import cached
from ._correlation import Correlator, Maps, variance_maps
from ._placement import Radii, Sides, grouped, place_rows, placeable
from ._result import Status, Surface, statuses


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
    maps: Maps = field(default_factory=dict)
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

    def directed(self, forward: bool = True) -> Sides:
        """The images (and masks) windows are cut from and searched in:
        from the template image into the image, or back (``forward=False``,
        the consistency check)."""
        sides = Sides(
            self.template_image,
            self.image,
            self.template_mask,
            self.image_mask,
            self.nodata,
        )
        return sides if forward else sides.reversed()

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
        source, target, *_ = self.directed(forward)
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

        As `place` for each row, but all rows at once (see `place_rows`).
        """
        radii = Radii(self.template_radius, self.search_radius)
        return place_rows(
            points, guesses, status, self.directed(forward), radii
        )

    def place_each(
        self,
        points: np.ndarray,
        guesses: np.ndarray,
        status: np.ndarray,
        forward: bool = True,
    ) -> list[list[Window]]:
        """`place_all`, one call of `place` per row (for subclasses whose
        windows need more than their bounds)."""
        windows = []
        for row in range(len(points)):
            if status[row] != Status.OK:
                continue
            window = self.place(row, points[row], guesses[row], forward)
            if isinstance(window, Status):
                status[row] = window
            else:
                windows.append(window)
        return grouped(windows)

    def surfaces(
        self,
        windows: list[Window],
        workers: int = -1,
        workspace: Workspace | None = None,
        runs: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """'valid' NCC surfaces of read windows that share their shapes,
        and per window whether its template is flat (see
        `Correlator.surfaces`)."""
        correlator = Correlator(
            self.ndim, self.fft_dtype, self.min_valid, self.maps
        )
        return correlator.surfaces(windows, workers, workspace, runs)

    def prepare_maps(self, groups: list[list[Window]]) -> None:
        """Variance maps for the planes that many of the placed windows
        `groups` search (see `variance_maps`); replaces the maps of an
        earlier pass."""
        self.maps = variance_maps(groups)

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
        min_valid = number("min_valid", self.min_valid)
        if not 0 <= min_valid <= 1:
            raise ValueError(
                f"min_valid must lie in [0, 1], got {self.min_valid!r}."
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
        return dict(masks, nodata=nodata, min_valid=min_valid)
