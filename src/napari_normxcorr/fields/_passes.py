"""The passes of match_field: their grids and windows, and one pass run
over the images (the fast batched path, and match_points' masked NCC for
windows with pixels missing)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..matching._match import match_points
from ..matching._result import Status
from ._deform import DeformableTarget
from ._grid import _axis
from ._grid_field import GridField
from ._pass import Limits, PassMatches, match_windows

# How far (px) the passes after the first look around the previous
# field: what one pass leaves is well under this, and a peak pinned at
# the edge of this reach says the field was wrong there.
REACH = 4


class Level(NamedTuple):
    """The grid and windows of a pass, in the pixels of the images shrunk
    `scale` times (block means)."""

    axes: list[np.ndarray]
    radius: np.ndarray
    reach: np.ndarray
    scale: int = 1

    @property
    def points(self) -> np.ndarray:
        """The grid points in the level's pixels, (n, D)."""
        grid = np.meshgrid(*self.axes, indexing="ij")
        return np.stack(grid, axis=-1).reshape(-1, len(self.axes))

    @property
    def image_points(self) -> np.ndarray:
        """The grid points in the images' pixels, (n, D)."""
        grid = np.meshgrid(*self.image_axes, indexing="ij")
        return np.stack(grid, axis=-1).reshape(-1, len(self.axes))

    @property
    def image_axes(self) -> list[np.ndarray]:
        """The grid's axes in the images' pixels (the centre of a block of
        `scale` pixels lies half a pixel short of its middle one)."""
        return [a * self.scale + (self.scale - 1) / 2 for a in self.axes]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)


def plan(
    shape: tuple[int, ...],
    step: np.ndarray,
    radius: np.ndarray,
    reach: np.ndarray,
    passes: int,
) -> list[Level]:
    """The grid, windows and search of each pass: a coarse first pass on
    the images shrunk twice where they hold two of its points per axis
    and there are later passes, then the fine grid."""
    fine = [_axis(n, s, r) for n, s, r in zip(shape, step, radius)]
    if min(len(a) for a in fine) == 0:
        raise ValueError(
            f"the image {shape} has no room for a window of template_radius "
            f"{tuple(radius)} away from its edges."
        )
    later = Level(fine, radius, np.full_like(radius, REACH))
    # The first pass looks at the images shrunk twice: windows of twice
    # the size and twice the reach, on a grid twice as coarse, for a
    # quarter of the work.
    coarse = [_axis(n // 2, s, r) for n, s, r in zip(shape, step, radius)]
    if passes > 1 and min(len(a) for a in coarse) >= 2:
        first = Level(coarse, radius, -(-reach // 2), 2)
        return [first] + [later] * (passes - 1)
    return [Level(fine, radius, reach)] + [later] * (passes - 1)


class Passes:
    """Runs the passes over the images, the fast path and match_points'."""

    def __init__(
        self,
        template: np.ndarray,
        target: np.ndarray,
        limits: Limits,
        dtype: type[np.floating],
        min_valid: float,
    ):
        self.template = template
        self.target = target
        self.deformable = DeformableTarget(target)
        self.limits = limits
        self.dtype = dtype
        self.min_valid = min_valid
        self.banks: dict = {}
        self.shrunk: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def one(
        self, level: Level, field: GridField | None, last: bool
    ) -> tuple[PassMatches, np.ndarray]:
        """The matches of one pass, through `field` (None: the target as
        it is), and the vectors they make, (*grid, D) image pixels; the
        `last` pass's matches with every check."""
        points = level.points.astype(np.intp)
        template, target = self.template, self.target
        if level.scale > 1:
            template, target = self._shrunk(level.scale)
        elif field is not None:
            target = self.deformable.warped(field)
        matches = match_windows(
            template,
            target,
            points,
            np.zeros_like(points),
            level.radius,
            level.reach,
            self.limits,
            self.dtype,
            self.banks,
            full=last,
        )
        slow = np.flatnonzero(
            ~matches.clean & (matches.status != Status.OUTSIDE_IMAGE)
        )
        if slow.size:
            self._masked(template, target, points, slow, level, matches)
        vectors = matches.offset * level.scale
        if field is not None:
            moved = points + np.nan_to_num(vectors)
            vectors = vectors + field.at(moved)
        return matches, vectors.reshape(*level.shape, -1)

    def _shrunk(self, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """Both images shrunk `scale` times by block means (NaN where a
        block misses a pixel), made once."""
        if scale not in self.shrunk:
            self.shrunk[scale] = (
                _block_means(self.template, scale),
                _block_means(self.target, scale),
            )
        return self.shrunk[scale]

    def _masked(
        self,
        template: np.ndarray,
        target: np.ndarray,
        points: np.ndarray,
        rows: np.ndarray,
        level: Level,
        matches: PassMatches,
    ) -> None:
        """Match the windows with pixels missing by match_points' masked
        NCC, into `matches`."""
        lim = self.limits
        result = match_points(
            template,
            target,
            points[rows].astype(np.float64),
            template_radius=tuple(level.radius),
            search_radius=tuple(level.radius + level.reach),
            shape_order=0,
            check_consistency=False,
            max_motion_gap=np.inf,
            max_neighbour_residual=np.inf,
            min_score=lim.min_score,
            min_peak_ratio=lim.min_peak_ratio,
            max_uncertainty=lim.max_uncertainty,
            min_valid=self.min_valid,
            fft_precision="single" if self.dtype == np.float32 else "double",
        )
        matches.offset[rows] = result.offset
        matches.score[rows] = result.score
        matches.peak_ratio[rows] = result.peak_ratio
        matches.covariance[rows] = result.covariance
        matches.status[rows] = result.status


def _block_means(image: np.ndarray, scale: int) -> np.ndarray:
    """Means of blocks of `scale` pixels per axis (a last, partial block
    left out)."""
    cut = tuple(slice(0, n - n % scale) for n in image.shape)
    blocks = image[cut]
    shape = []
    for n in blocks.shape:
        shape += [n // scale, scale]
    axes = tuple(range(1, 2 * image.ndim, 2))
    return blocks.reshape(shape).mean(axis=axes)
